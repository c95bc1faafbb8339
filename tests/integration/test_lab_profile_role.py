"""The lab_profile role, run for real on this machine (ansible-playbook on localhost):
it installs a profile, and a second run changes nothing. The profiles' content and the
detection on each are unit tests (tests/unit/test_lab_profiles.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import perf_mem_facts
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "lab_profile"
VENV_BIN = os.path.dirname(sys.executable)

# The unit tier's harness: a module's main() with exit_json/fail_json captured.
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from module_harness import run_module  # noqa: E402


def detect(profile_dir: Path) -> dict[str, Any]:
    """perf_mem_facts main() with its real command runner: the stand-in perf runs."""
    done = run_module(
        perf_mem_facts.main,
        {
            "perf_path": str(profile_dir / "bin" / "perf"),
            "sysfs_root": str(profile_dir / "sys"),
            "proc_root": str(profile_dir / "proc"),
        },
    )
    assert not done.failed, done.result
    facts: dict[str, Any] = done.result["ansible_facts"]["damon_perf"]
    return facts


def test_role_installs_a_profile_and_changes_nothing_the_second_time(tmp_path: Path) -> None:
    """One ansible-playbook run: play 1 installs, play 2 re-applies
    and must change nothing."""
    target = tmp_path / "opt" / "profile"
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"lab_profile_name": "raptorlake-hybrid", "lab_profile_dir": str(target)},
        "roles": [{"role": str(ROLE)}],
    }
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": "Install", **play}, {"name": "Install again", **play}])
    )
    proc = subprocess.run(
        [
            os.path.join(VENV_BIN, "ansible-playbook"),
            "-i",
            "localhost,",
            str(playbook),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    first, again = proc.stdout.split("PLAY [Install again]")

    def changed_tasks(text: str) -> list[str]:
        tasks = re.split(r"^TASK \[\S*lab_profile : (.*)\] \**$", text, flags=re.M)
        return [
            name for name, out in zip(tasks[1::2], tasks[2::2], strict=True) if "changed: [" in out
        ]

    assert changed_tasks(first) == [
        "Create the profile's folder on the host",
        "Unpack the profile on the host",
        "Link the profile's proc/sys to the host's own (real sysctls and kernel release)",
        f"Link the unpacked profile to {target}",
    ]
    assert changed_tasks(again) == []
    assert (
        f"msg: localhost plays raptorlake-hybrid (perf version 6.10-dev replay, {target})" in first
    )
    assert target.is_symlink()
    assert re.fullmatch(r"raptorlake-hybrid-[0-9a-f]{12}", target.resolve().name)
    assert os.readlink(target / "proc" / "sys") == "/proc/sys"
    assert os.access(target / "bin" / "perf", os.X_OK)
    # What the machine detects (as tests/unit/test_lab_profiles.py EXPECTED has it).
    assert detect(target)["damon_perf_events"] == [
        {"pmu": "cpu_atom", "type": 10, "config": 0x5D0, "config1": 0x1F, "config2": 0}
    ]
