"""Hostile and broken input to the kernel build and install, through the roles (issue 13,
items 1, 2 and 4).

The roles run for real (``ansible-playbook`` on localhost, concurrently, a few seconds in
all): each hostile value is refused with one line naming the input, before anything runs,
and the marker file the value would create is never created. (The argv checks that need
no Ansible run are in tests/unit/test_hostile_kernel.py.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import shown

ROOT = Path(__file__).resolve().parents[2]

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
LOCAL = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
}
HOSTILE_HOST = "db-01;touch {marker}"

# One play runs every case side by side, one inventory host per case: each host includes
# the role (or task file) under test with its hostile input as a host variable.
PLAY = [
    {
        "name": "Hostile input, one host per case",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the kernel_build role",
                "ansible.builtin.include_role": {"name": "kernel_build"},
                "when": "case == 'build'",
            },
            {
                "name": "Run the kernel_install role",
                "ansible.builtin.include_role": {"name": "kernel_install"},
                "when": "case == 'install'",
            },
            {
                "name": "Run the drain task file of the kernel_install role",
                "ansible.builtin.include_role": {"name": "kernel_install", "tasks_from": "drain"},
                "when": "case == 'drain'",
            },
        ],
    }
]


def _cases(tmp: Path) -> dict[str, dict[str, Any]]:
    """Inventory host -> its variables (the hostile input of the case)."""
    return {
        "make-target": {
            "case": "build",
            "kernel_build_config_target": f"--eval=$(shell touch {tmp / 'make-target.MARKER'})",
        },
        "series": {"case": "build", "kernel_build_series": "../../tmp/evil"},
        HOSTILE_HOST.format(marker=tmp / "drain.MARKER"): {
            "case": "drain",
            "__kernel_install_drain_argv": [
                "sh",
                "-c",
                f'printf "%s|%s\\n" "$DAMON_FLEET_PHASE" "$DAMON_FLEET_HOST" >> {tmp / "seen"}',
            ],
            "__kernel_install_drain_phase": "drain",
        },
        "drain-string": {
            "case": "install",
            "kernel_install_release": "6.12.117-lab",
            "kernel_install_drain_command": (
                f"touch {tmp / 'drain-string.MARKER'}; echo drain {{{{ inventory_hostname }}}}"
            ),
        },
        "panic": {
            "case": "install",
            "kernel_install_release": "6.12.117-lab",
            "kernel_install_trial_cmdline_extra": "quiet panic=0",
            "kernel_install_grub_cfg": str(tmp / "grub.cfg"),
        },
    }


@dataclass
class Run:
    """One ansible-playbook run: exit code, output, and each host's failure message."""

    rc: int
    output: str
    tmp: Path

    def failure(self, host: str) -> dict[str, Any]:
        """The result of the task that failed on *host* (the callback prints it as JSON)."""
        pattern = re.compile(
            r"(?:fatal|failed): \[" + re.escape(host) + r"(?: -> localhost)?\]:?"
            r"(?: \(item=[^)]*\))?(?: FAILED!)? => (\{.*\})"
        )
        for line in self.output.splitlines():
            match = pattern.fullmatch(line)
            if match:
                result: dict[str, Any] = json.loads(match[1])
                return result
        raise AssertionError(f"{host} did not fail:\n{self.output}")


def _start(
    tmp: Path, playbook: Path, inventory: dict[str, Any], *extra: str
) -> subprocess.Popen[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "DAMON_FLEET_CACHE": str(tmp / "cache"),
    }
    return subprocess.Popen(
        [ANSIBLE_PLAYBOOK, "-i", str(tmp / "inventory.yml"), str(playbook), *extra],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], tmp: Path) -> Run:
    out, _ = proc.communicate(timeout=300)
    return Run(proc.returncode, out, tmp)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The issue's reproducer through playbooks/build.yml, and the other cases in one play,
    both started at once."""
    base = tmp_path_factory.mktemp("hostile-kernel")
    repro_tmp = base / "reproducer"
    repro_tmp.mkdir()
    # 1. The reproducer: a git URL that git would read as --upload-pack.
    hostile_url = f"--upload-pack=touch {repro_tmp / 'MARKER'};git-upload-pack"
    repro = _start(
        repro_tmp,
        ROOT / "playbooks" / "build.yml",
        {"all": {"hosts": {"localhost": LOCAL}}},
        "-e",
        json.dumps({"kernel_build_base_git_url": hostile_url}),
        "-e",
        f"kernel_build_base_git_ref={base / 'local-repo'}",
    )
    cases_tmp = base / "cases"
    cases_tmp.mkdir()
    playbook = cases_tmp / "play.yml"
    playbook.write_text(yaml.safe_dump(PLAY, sort_keys=False))
    hosts = {name: {**LOCAL, **hostvars} for name, hostvars in _cases(cases_tmp).items()}
    cases = _start(cases_tmp / "run", playbook, {"all": {"hosts": hosts}})
    return {"reproducer": _finish(repro, repro_tmp), "cases": _finish(cases, cases_tmp)}


def test_git_url_reproducer_is_refused_and_runs_nothing(runs: dict[str, Run]) -> None:
    run = runs["reproducer"]
    assert run.rc == 2, run.output
    msg = run.failure("localhost")["msg"]
    hostile = f"--upload-pack=touch {run.tmp / 'MARKER'};git-upload-pack"
    assert msg == (
        f"kernel_build: kernel_build_base_git_url: {shown(hostile)} is not accepted (an "
        "https://, http://, git://, ssh:// or file:// URL, an absolute path or "
        "user@host:path; never a leading '-')"
    )
    assert not (run.tmp / "MARKER").exists()
    assert not (run.tmp / "cache").exists()


def test_cases_run_as_one_play(runs: dict[str, Run]) -> None:
    """Four hosts fail (the hostile inputs), one passes (the drain with a hostile name)."""
    run = runs["cases"]
    assert run.rc == 2, run.output
    assert "failed=1" in run.output
    assert sorted(
        re.findall(r"^(\S+)\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1", run.output, re.M)
    ) == [
        "drain-string",
        "make-target",
        "panic",
        "series",
    ]
    assert not (run.tmp / "run" / "cache").exists()


def test_make_target_option_is_refused(runs: dict[str, Run]) -> None:
    run = runs["cases"]
    hostile = f"--eval=$(shell touch {run.tmp / 'make-target.MARKER'})"
    assert run.failure("make-target")["msg"] == (
        f"kernel_build: kernel_build_config_target: {shown(hostile)} is not accepted (a make "
        "target: letters, digits, '_', '.', '-'; no leading '-')"
    )
    assert not (run.tmp / "make-target.MARKER").exists()


def test_series_outside_kernel_patches_is_refused(runs: dict[str, Run]) -> None:
    assert runs["cases"].failure("series")["msg"] == (
        "kernel_build: kernel_build_series: '../../tmp/evil' is not accepted (a folder name "
        "of kernel-patches/: lower-case letters, digits, '.', '+', '-', starting with a "
        "letter or digit (no '/'), or 'none')"
    )


def test_drain_gets_the_host_in_the_environment_not_a_shell(runs: dict[str, Run]) -> None:
    run = runs["cases"]
    host = HOSTILE_HOST.format(marker=run.tmp / "drain.MARKER")
    assert f"fatal: [{host}]" not in run.output
    assert (run.tmp / "seen").read_text() == f"drain|{host}\n"
    assert not (run.tmp / "drain.MARKER").exists()


def test_a_shell_string_drain_command_is_refused(runs: dict[str, Run]) -> None:
    run = runs["cases"]
    item = run.failure("drain-string")
    assert item["item"]["key"] == "kernel_install_drain_command"
    msg = item["msg"]
    assert msg.startswith('kernel_install: kernel_install_drain_command is "touch'), msg
    assert msg.endswith(
        "not accepted: give an argv list of non-empty strings, run on the controller "
        "without a shell, with the host in the environment variable DAMON_FLEET_HOST (and "
        "drain or undrain in DAMON_FLEET_PHASE), e.g. [sh, -c, 'kubectl drain -- "
        '"$DAMON_FLEET_HOST"\']; [] for none.'
    ), msg
    assert not (run.tmp / "drain-string.MARKER").exists()


def test_panic_in_the_trial_arguments_is_refused_before_grub_is_read(runs: dict[str, Run]) -> None:
    msg = runs["cases"].failure("panic")["msg"]
    # Refused by the first GRUB task, before the (missing) grub.cfg was even read.
    assert msg == (
        "kernel_install_grub (query): extra_args (kernel_install_trial_cmdline_extra): "
        "'panic=0' is not accepted: the trial entry sets panic=N itself (panic_timeout, role "
        "input kernel_install_panic_timeout) so that a kernel that panics reboots into the "
        "previous one; another panic= would override it (panic=0 never reboots)"
    )
