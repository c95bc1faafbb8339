"""deploy.yml builds the kernel only when some host is to get it.

Both runs are real ansible-playbook runs of deploy.yml (build and rollout stages) on this
machine. The kernel_build base points at a tarball that does not exist, so a build that
starts fails within seconds on the input check instead of compiling a kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


VENV_BIN = os.path.dirname(sys.executable)
LOCALHOST = """\
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""
# A rollout target that is never contacted: the build before it fails first.
WITH_TARGET = (
    LOCALHOST
    + """\
    target1:
      ansible_host: 127.0.0.1
      ansible_port: 9
"""
)


def _deploy(tmp_path: Path, inventory: str, *extra: str) -> subprocess.CompletedProcess[str]:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(inventory)
    return subprocess.run(
        [
            os.path.join(VENV_BIN, "ansible-playbook"),
            "-i",
            str(hosts),
            "deploy.yml",
            "--tags",
            "build,rollout",
            "-e",
            "kernel_build_base_type=tarball",
            "-e",
            f"kernel_build_base_tarball={tmp_path / 'missing.tar.xz'}",
            "-e",
            f"rollout_state_dir={tmp_path / 'state'}",
            *extra,
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "DAMON_FLEET_CACHE": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_no_rollout_target_skips_build_and_rollout(tmp_path: Path) -> None:
    proc = _deploy(tmp_path, LOCALHOST)
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no host to roll out to: the pattern all:!localhost:!builder matches no host" in out
    assert "build: " in out and "(skipped, no host to roll out to)" in out
    assert "cannot be read" not in out  # kernel_build never looked at its inputs
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "state").exists()


def test_a_rollout_target_makes_the_build_run(tmp_path: Path) -> None:
    proc = _deploy(tmp_path, WITH_TARGET)
    out = " ".join(proc.stdout.split())
    assert proc.returncode != 0
    assert "no host to roll out to" not in out
    assert f"input file 'base tarball' ({tmp_path / 'missing.tar.xz'}) cannot be read" in out
    assert "PLAY [Roll the kernel out in batches]" not in proc.stdout


def test_a_bad_rollout_bench_gate_is_refused_before_anything(tmp_path: Path) -> None:
    proc = _deploy(tmp_path, LOCALHOST, "-e", "rollout_bench_gate=maybe")
    out = " ".join(proc.stdout.split())
    assert proc.returncode != 0
    assert (
        'rollout: rollout_bench_gate is "maybe"; accepted: true or false '
        "(true runs the bench in the canary's gate)" in out
    )
