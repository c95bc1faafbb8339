"""The lab_vm module for real on this machine: qemu-img makes each VM's overlay, a
stand-in for qemu-system-x86_64 (a sleeper that writes its pidfile) plays the VM, and the
module starts, queries, stops and removes it by pid. The pure lab code (argv, ports, the
state files, the image) is unit-tested in tests/unit/test_lab_qemu.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lab_vm
import pytest

ROOT = Path(__file__).resolve().parents[2]
# The unit tier's harness: a module's main() with exit_json/fail_json captured.
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from module_harness import run_module  # noqa: E402

FAKE_QEMU = """#!/bin/bash
# Stand-in for qemu-system-x86_64 -daemonize: a long sleeper whose command line names
# the pidfile, started in the background; its pid goes to the pidfile.
pidfile=
prev=
for a in "$@"; do
  [ "$prev" = "-pidfile" ] && pidfile="$a"
  prev="$a"
done
[ -n "$FAKE_QEMU_FAIL" ] && { echo "$FAKE_QEMU_FAIL" >&2; exit 1; }
(exec -a qemu-fake {python} -c 'import time; time.sleep(120)' -pidfile "$pidfile") \
  >/dev/null 2>&1 </dev/null &
echo $! > "$pidfile"
"""


@pytest.fixture
def fake_qemu(tmp_path):
    script = tmp_path / "bin" / "qemu-fake"
    script.parent.mkdir()
    script.write_text(FAKE_QEMU.replace("{python}", sys.executable))
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def base_image(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 1024 * 1024)
    return str(image)


def _alive(pid: int) -> bool:
    """Whether process *pid* still runs: it exists and is neither a zombie nor dead (the
    stand-in's parent, a shell, is gone, so nothing may reap it at once)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _vm(state_dir, **kw):
    return {"name": "lab1", "state_dir": str(state_dir), **kw}


def test_lab_vm_start_is_idempotent_and_stop_kills_by_pid(tmp_path, fake_qemu, base_image):
    state_dir = tmp_path / "state"
    args = _vm(state_dir, base_image=base_image, qemu=fake_qemu)
    first = run_module(lab_vm.main, args)
    assert not first.failed, first.result
    assert first.result["changed"]
    vm = first.result["vm"]
    assert vm["state"] == "running"
    pid = vm["pid"]
    assert _alive(pid)
    assert os.path.exists(f"{state_dir}/lab1/disk.qcow2")
    recorded = json.loads((state_dir / "lab1" / "vm.json").read_text())
    assert recorded["ssh_port"] == vm["ssh_port"]
    assert recorded["base_image"] == os.path.realpath(base_image)
    try:
        again = run_module(lab_vm.main, args)
        assert not again.result["changed"]
        assert again.result["vm"]["pid"] == pid

        # a second VM never takes the first one's port
        other = run_module(lab_vm.main, {**args, "name": "lab2", "ssh_port": vm["ssh_port"]})
        assert other.result["vm"]["ssh_port"] != vm["ssh_port"]
        run_module(lab_vm.main, {**args, "name": "lab2", "state": "absent"})
        assert not (state_dir / "lab2").exists()

        query = run_module(lab_vm.main, _vm(state_dir, state="query"))
        assert not query.result["changed"]
        assert query.result["vm"]["state"] == "running"
    finally:
        stopped = run_module(lab_vm.main, _vm(state_dir, state="stopped", remove_disk=True))
    assert stopped.result["changed"]
    assert stopped.result["vm"]["state"] == "stopped"
    assert not _alive(pid), f"QEMU stand-in {pid} still runs"
    assert not (state_dir / "lab1" / "disk.qcow2").exists()
    assert not (state_dir / "lab1" / "qemu.pid").exists()
    assert (state_dir / "lab1" / "vm.json").exists()
    assert not run_module(lab_vm.main, _vm(state_dir, state="stopped")).result["changed"]


def test_lab_vm_check_mode_starts_nothing(tmp_path, fake_qemu, base_image):
    state_dir = tmp_path / "state"
    done = run_module(
        lab_vm.main, _vm(state_dir, base_image=base_image, qemu=fake_qemu, _ansible_check_mode=True)
    )
    assert done.result["changed"]
    assert done.result["vm"]["state"] == "stopped"
    assert not (state_dir / "lab1" / "qemu.pid").exists()


def test_lab_vm_reports_qemu_errors(tmp_path, fake_qemu, base_image, monkeypatch):
    monkeypatch.setenv("FAKE_QEMU_FAIL", "qemu: could not open disk image")
    done = run_module(lab_vm.main, _vm(tmp_path / "s", base_image=base_image, qemu=fake_qemu))
    assert done.failed
    assert "could not open disk image" in done.result["msg"]


def test_lab_vm_refuses_bad_names_and_missing_image(tmp_path, fake_qemu):
    bad = run_module(lab_vm.main, {"name": "Lab_1", "state_dir": str(tmp_path)})
    assert bad.failed
    missing = run_module(
        lab_vm.main, _vm(tmp_path, base_image=str(tmp_path / "nope.img"), qemu=fake_qemu)
    )
    assert missing.failed
    assert "does not exist" in missing.result["msg"]
