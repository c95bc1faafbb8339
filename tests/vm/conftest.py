"""VM test fixtures: a real 6.12 lab kernel with DAMON booted under QEMU.

Every test under ``tests/vm`` carries the ``vm`` marker.  They are skipped
unless selected explicitly -- ``pytest -m vm tests/vm`` -- or
``DAMON_FLEET_VM=1`` is set, because a cold cache means a kernel build
(~7 min on 2 cores) and a debootstrap run.  The VMs boot the lab kernel directly on an
overlay of the lab fleet's disk image, the one ``damon-fleet lab up`` boots
(``labvm.build_image``).  Kernel and image are cached under ``$DAMON_FLEET_CACHE``
(default ``~/.cache/damon-fleet``), shared with the lab fleet; QEMU uses TCG unless
``DAMON_FLEET_ACCEL=kvm``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kernel_build_play import kernel_build_play
from labvm import LabVm, build_image, build_kernel, ssh_key_path

from damon_fleet._paths import REPO_ROOT, runner_envvars

VM_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm: boots the QEMU lab VM (real DAMON kernel); select with -m vm"
    )


def _vm_selected(config: pytest.Config) -> bool:
    if os.environ.get("DAMON_FLEET_VM") == "1":
        return True
    markexpr = str(config.getoption("markexpr", default="") or "")
    return "vm" in markexpr.replace("not vm", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = _vm_selected(config)
    skip = pytest.mark.skip(reason="VM tests: run with `pytest -m vm` or DAMON_FLEET_VM=1")
    for item in items:
        if VM_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.vm)
            if not selected:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def lab_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabVm]:
    """A started lab VM (SSH reachable), shared by the session and stopped at its end."""
    started = time.monotonic()
    kernel = build_kernel()
    image = build_image()
    prepared = time.monotonic() - started
    vm = LabVm(kernel, image, ssh_key=ssh_key_path(), workdir=tmp_path_factory.mktemp("labvm"))
    vm.start()
    try:
        boot = vm.wait_ssh()
        print(
            f"\nlab VM: kernel+image ready in {prepared:.1f}s, boot to SSH {boot:.1f}s, "
            f"port {vm.port}"
        )
        yield vm
    finally:
        vm.stop()


def lab_series_build_vars() -> dict[str, Any]:
    """The series build of the lab fleet (``inventories/lab/group_vars/all.yml``), tree kept.

    The same inputs as ``deploy.yml`` on the lab and ``test_kernel_build.py``, so all of
    them share one cached build of ``kernel-patches/lab-perf-events-abi``.
    """
    group_vars = yaml.safe_load(
        (REPO_ROOT / "inventories" / "lab" / "group_vars" / "all.yml").read_text()
    )
    return {
        **{key: value for key, value in group_vars.items() if key.startswith("kernel_build_")},
        "kernel_build_keep_tree": True,
    }


def build_lab_series(workdir: Path) -> dict[str, Any]:
    """Run the kernel_build role on the lab series (a no-op when cached); return its result."""
    result = workdir / "kernel_build_result.json"
    play = kernel_build_play(result, "Build the lab series kernel")
    (workdir / "build.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (workdir / "vars.yml").write_text(yaml.safe_dump(lab_series_build_vars()))
    proc = subprocess.run(
        ["ansible-playbook", str(workdir / "build.yml"), "-e", f"@{workdir / 'vars.yml'}"],
        cwd=REPO_ROOT,
        env={**os.environ, **runner_envvars(), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=5400,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"lab series build failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    data: dict[str, Any] = json.loads(result.read_text())
    return data


def bzimage_from_build(build: dict[str, Any], dest: Path) -> Path:
    """Unpack the ``bzImage`` of the build's linux-image package into *dest*."""
    images = [p for p in build["packages"] if Path(p).name.startswith("linux-image-")]
    assert len(images) == 1, build["packages"]
    subprocess.run(["dpkg-deb", "-x", images[0], str(dest)], check=True, capture_output=True)
    kernel = dest / "boot" / f"vmlinuz-{build['kernel_release']}"
    assert kernel.is_file(), f"{images[0]} has no boot/{kernel.name}"
    return kernel


@pytest.fixture(scope="session")
def lab_series_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The kernel_build role's result for the lab series (built once, then cached)."""
    started = time.monotonic()
    build = build_lab_series(tmp_path_factory.mktemp("lab-series-build"))
    print(
        f"\nlab series kernel {build['kernel_release']}: "
        f"{'built' if build['built'] else 'cached'} in {time.monotonic() - started:.1f}s"
    )
    return build


@pytest.fixture(scope="session")
def lab_series_vm(
    lab_series_build: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabVm]:
    """A started VM on the lab series kernel (SSH reachable), shared by the session."""
    kernel = bzimage_from_build(lab_series_build, tmp_path_factory.mktemp("lab-series-kernel"))
    image = build_image()
    vm = LabVm(
        kernel, image, ssh_key=ssh_key_path(), workdir=tmp_path_factory.mktemp("lab-series-vm")
    )
    vm.start()
    try:
        boot = vm.wait_ssh()
        print(f"\nlab series VM: boot to SSH {boot:.1f}s, port {vm.port}")
        yield vm
    finally:
        vm.stop()
