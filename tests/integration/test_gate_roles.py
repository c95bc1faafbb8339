"""kernel_install's gate roles (kernel_install_gate_roles), through real ansible-playbook.

roles/kernel_install/tasks/gate_roles.yml runs on localhost after a gate that passed, with
roles written by the test into a temporary roles path: one that passes, one that fails with
a message, one after it. The gate the tasks leave behind is written to a file and checked:
each role is a check named role:<name>, a failing role fails the gate with its message,
and the roles after it do not run. The bench gate of the rollout (rollout_bench_gate:
perf_detect then damon_bench) goes through these same tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = os.path.dirname(sys.executable)
GATE_ROLES = ROOT / "roles" / "kernel_install" / "tasks" / "gate_roles.yml"

PLAY = """\
- name: Run the gate roles after a gate that passed
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    __kernel_install_gate:
      passed: true
      release: 6.12.0-test
      checks: [{{name: release, ok: true, detail: 6.12.0-test}}]
  tasks:
    - name: Run the tasks under test
      ansible.builtin.include_tasks: {gate_roles}

    - name: Keep the gate for the test
      ansible.builtin.copy:
        content: "{{{{ __kernel_install_gate | to_json }}}}"
        dest: {out}
        mode: "0644"
"""


def _role(roles: Path, name: str, tasks: str) -> None:
    (roles / name / "tasks").mkdir(parents=True)
    (roles / name / "tasks" / "main.yml").write_text(tasks)


def _gate(tmp_path: Path, gate_roles: list[str]) -> dict[str, object]:
    roles = tmp_path / "roles"
    marker = tmp_path / "ran"
    _role(
        roles,
        "passes",
        "- name: Pass\n  ansible.builtin.debug:\n    msg: ok\n",
    )
    _role(
        roles,
        "fails",
        "- name: Fail\n  ansible.builtin.fail:\n    msg: bench decided accessed-bits (test)\n",
    )
    _role(
        roles,
        "after",
        f"- name: Leave a mark\n  ansible.builtin.file:\n    path: {marker}\n    state: touch\n"
        '    mode: "0644"\n',
    )
    out = tmp_path / "gate.json"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(gate_roles=GATE_ROLES, out=out))
    done = subprocess.run(
        [
            os.path.join(VENV_BIN, "ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            "ansible_python_interpreter={{ ansible_playbook_python }}",
            "-e",
            json.dumps({"kernel_install_gate_roles": gate_roles}),
            str(play),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(roles),
            "ANSIBLE_NOCOLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    gate = json.loads(out.read_text())
    gate["after_ran"] = marker.exists()
    return gate


def test_roles_that_pass_are_checks_of_a_gate_that_passes(tmp_path: Path) -> None:
    gate = _gate(tmp_path, ["passes", "after"])
    assert gate["passed"] is True
    assert gate["checks"] == [
        {"name": "release", "ok": True, "detail": "6.12.0-test"},
        {"name": "role:passes", "ok": True, "detail": "passed"},
        {"name": "role:after", "ok": True, "detail": "passed"},
    ]
    assert gate["after_ran"] is True


def test_a_failing_role_fails_the_gate_and_the_roles_after_it_do_not_run(
    tmp_path: Path,
) -> None:
    gate = _gate(tmp_path, ["passes", "fails", "after"])
    assert gate["passed"] is False
    assert gate["checks"] == [
        {"name": "release", "ok": True, "detail": "6.12.0-test"},
        {"name": "role:passes", "ok": True, "detail": "passed"},
        {"name": "role:fails", "ok": False, "detail": "bench decided accessed-bits (test)"},
        {"name": "role:after", "ok": False, "detail": "not run: role:fails failed first"},
    ]
    assert gate["after_ran"] is False
