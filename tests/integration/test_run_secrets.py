"""Secrets given with -e never reach the disk, and a run's files are private: a real
deploy run (ansible-runner and ansible-playbook, a one-task playbook on localhost). The
CLI's other hostile-input checks, which stop before Ansible, are unit tests
(tests/unit/test_hostile_cli.py)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from damon_fleet import run_cli
from damon_fleet.cli import main

SECRET = "hunter2-Zq9"
TOKEN = "t0k-4Xv"


@pytest.fixture
def tiny_playbook(tmp_path, monkeypatch):
    """The run commands run a one-task playbook with the REAL ansible-runner and
    ansible-playbook."""
    book = tmp_path / "book.yml"
    book.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Use the secret\n"
        "      ansible.builtin.assert:\n"
        "        that: ansible_become_password | length > 0 and creds.api_token | length > 0\n"
        "        quiet: true\n"
    )
    real = run_cli.run_playbook

    def run_book(run_dir, playbook, *args, **kwargs):
        return real(run_dir, book, *args, **kwargs)

    monkeypatch.setattr(run_cli, "run_playbook", run_book)
    return book


def _modes(path: Path) -> set[tuple[str, int]]:
    return {
        ("dir" if p.is_dir() else "file", stat.S_IMODE(p.lstat().st_mode))
        for p in [path, *path.rglob("*")]
    }


def test_secrets_never_reach_the_disk_and_runs_are_private(tmp_path, tiny_playbook):
    runs = tmp_path / "runs"
    inv = tmp_path / "local.yml"
    inv.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    argv = ["deploy", "-i", str(inv), "--runs-dir", str(runs), "--no-progress-bar"]
    argv += [
        "-e",
        f"ansible_become_password={SECRET}",
        "-e",
        f'{{"creds": {{"api_token": "{TOKEN}"}}}}',
    ]
    argv += ["-e", f"rollout_state_dir={tmp_path / 'state'}", "-e", "ssh_key_file=/k/id"]
    assert main(argv) == 0
    (run_dir,) = run_cli.list_runs(runs)
    for path in [runs, *runs.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and TOKEN.encode() not in data, path
    assert _modes(runs) <= {("dir", 0o700), ("file", 0o600)}, _modes(runs)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["extravars"]["ansible_become_password"] == "<redacted>"
    assert run["extravars"]["creds"] == {"api_token": "<redacted>"}
    assert run["extravars"]["ssh_key_file"] == "/k/id"  # a place, not a secret
    assert run["redacted"] == ["ansible_become_password", "creds.api_token"]
    assert not (run_dir / "env" / "extravars").exists()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run"]["extravars"]["ansible_become_password"] == "<redacted>"
