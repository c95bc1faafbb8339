"""The VM tier's harness (tests/labvm.py) boots the lab fleet's own disk image: the same
``lab_image`` stages with the same inputs as ``damon-fleet lab up``, and the root device
that image's fstab and GRUB entries name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.image import (
    GRUB_PROBE_STUB,
    LAB_GUEST_FILES,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import labvm  # noqa: E402

MODULE_NAMES = ("lab_image", "damon_fleet.fleet.lab_image")


def lab_image_stages(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{stage: module arguments}`` of the lab_image tasks among *tasks*."""
    stages = {}
    for task in tasks:
        for name in MODULE_NAMES:
            if name in task:
                stages[task[name]["stage"]] = dict(task[name])
    return stages


def test_the_image_play_runs_the_stages_of_lab_up_with_the_roles_inputs(tmp_path: Path) -> None:
    up = yaml.safe_load((ROOT / "roles" / "lab_fleet" / "tasks" / "up.yml").read_text())
    role = lab_image_stages(up)
    [play] = labvm.image_play(tmp_path / "result.json")
    harness = lab_image_stages(play["tasks"])
    assert sorted(role) == sorted(harness) == ["disk", "rootfs"]
    # The kernel packages: the role's fact from its kernel build, the harness's extra
    # variable from build_kernel's result (playbooks/lab-kernel.yml: the same build).
    assert role["disk"].pop("kernel_packages") == "{{ __lab_fleet_kernel_packages }}"
    assert harness["disk"].pop("kernel_packages") == "{{ labvm_kernel_packages }}"
    assert harness == role  # cache folder, mirror, timeout, size: the role's variables
    assert play["vars_files"] == [
        str(ROOT / "playbooks" / "vars" / "contracts.yml"),
        str(ROOT / "roles" / "lab_fleet" / "defaults" / "main.yml"),
        str(ROOT / "roles" / "lab_fleet" / "vars" / "main.yml"),
    ]
    assert all(Path(path).is_file() for path in play["vars_files"])


def test_the_direct_boot_mounts_the_root_partition_the_image_names() -> None:
    [root] = [arg for arg in labvm.KERNEL_CMDLINE.split() if arg.startswith("root=")]
    assert root == "root=/dev/vda1"
    mounts = [line.split("\t") for line in LAB_GUEST_FILES["etc/fstab"].splitlines()]
    assert [fields[0] for fields in mounts if fields[1:2] == ["/"]] == ["/dev/vda1"]
    assert "device) echo /dev/vda1 ;;" in GRUB_PROBE_STUB  # what update-grub puts in root=
