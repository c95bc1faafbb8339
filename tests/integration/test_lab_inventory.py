"""The lab leaves the tracked files alone: `damon-fleet lab down` (a real ansible-playbook
run of playbooks/lab.yml, no VM to stop) writes the fleet's inventory into its state
directory only, and the default inventory reads that directory through the lab_fleet
inventory plugin (ansible-inventory, as ansible-playbook parses it)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"
VENV_BIN = Path(sys.executable).parent


def _env(state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "DAMON_FLEET_LAB_STATE": str(state),
    }


def _tracked_lab_files() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((ROOT / "inventories").rglob("*"))
        if p.is_file()
    }


def _inventory(state: Path) -> dict[str, object]:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(DEFAULT_INVENTORY), "--list"],
        cwd=ROOT,
        env=_env(state),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_lab_down_writes_the_state_dir_and_no_tracked_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    before = _tracked_lab_files()
    assert sorted(_inventory(state)["_meta"]["hostvars"]) == ["localhost"]  # type: ignore[index]
    proc = subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", "lab", "down", "--state-dir", str(state)],
        cwd=tmp_path,
        env=_env(state),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1].startswith("damon-fleet lab down: done in ")
    assert _tracked_lab_files() == before
    written = (state / "hosts.yml").read_text()
    assert "\n    lab:\n      hosts: {}\n" in written
    # A fleet taken down is this machine again, as before the first `lab up`.
    listed = _inventory(state)
    assert sorted(listed["_meta"]["hostvars"]) == ["localhost"]  # type: ignore[index]
    assert not listed.get("lab", {}).get("hosts")  # type: ignore[attr-defined]
