"""Hostile and broken input to ``damon-fleet``: one line naming the input, the exact exit
code, no traceback, and nothing written outside the expected places.

Cases: ``-e @binaryfile``, ``--resume`` over a run.json whose fields have the wrong type,
``--runs-dir`` that is a file or cannot be created, ``report``/``status`` over corrupt
``report.json``, ``run.json`` and rollout records (``{}`` included), Ansible temp folders
that cannot be written (ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TEMP, HOME), an unexpected
exception (exit 70), and secrets given with ``-e`` (never on disk, folders 0700, files
0600, ``--resume`` asks for them again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from damon_fleet import run_cli
from damon_fleet._paths import REPO_ROOT
from damon_fleet.cli import EXIT_INTERNAL, main

EVENTS = FIXTURES / "runner-events"
SECRET = "hunter2-Zq9"
TOKEN = "t0k-4Xv"


def tree(path: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every file and folder under *path*: (mode, size, content of files)."""
    out = {}
    for item in sorted(path.rglob("*")):
        info = item.lstat()
        content = item.read_bytes() if item.is_file() and not item.is_symlink() else None
        out[str(item.relative_to(path))] = (info.st_mode, info.st_size, content)
    return out


@pytest.fixture(autouse=True)
def private_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv(run_cli.RUNS_DIR_ENV, str(tmp_path / "default-runs"))
    monkeypatch.setenv(run_cli.STATE_DIR_ENV, str(tmp_path / "default-state"))
    for name in ("ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP", "ANSIBLE_REMOTE_TMP", "ANSIBLE_HOME"):
        monkeypatch.delenv(name, raising=False)
    watched = [REPO_ROOT / ".damon-fleet" / "runs", REPO_ROOT / ".damon-fleet" / "state"]
    before = [sorted(p.rglob("*")) if p.exists() else None for p in watched]
    yield
    assert [sorted(p.rglob("*")) if p.exists() else None for p in watched] == before


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n")
    return path


@pytest.fixture
def no_run(monkeypatch):
    """run_playbook must not be reached: bad input stops the run before ansible."""

    def refuse(*args, **kwargs):
        pytest.fail("ansible ran")

    monkeypatch.setattr(run_cli, "run_playbook", refuse)


def check(capsys, argv, code, *names):
    """Run the CLI; assert the exit *code*, one line on stderr naming each of *names*."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


# --- run commands: bad input before anything runs ----------------------------------------


def test_extra_vars_from_a_binary_file(tmp_path, inventory, capsys, no_run):
    binary = tmp_path / "vars.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00")
    before = tree(tmp_path)
    runs = tmp_path / "runs"
    argv = ["detect", "-i", str(inventory), "-e", f"@{binary}", "--runs-dir", str(runs)]
    line = check(capsys, argv, 2, f"-e @{binary}", "is not UTF-8 text")
    assert line == (
        f"damon-fleet detect: -e @{binary}: {binary} is not UTF-8 text (byte 8); "
        "expected a YAML or JSON mapping"
    )
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("extravars", ["a", "b"], "extravars is list, expected a mapping"),
        ("extravars", "x=1", "extravars is str, expected a mapping"),
        ("inventory", 5, "inventory is 5, expected a file name"),
        ("limit", {"a": 1}, "limit is {'a': 1}, expected a string"),
        ("rollout_state_dir", [1], "rollout_state_dir is [1], expected a string"),
    ],
)
def test_resume_over_a_run_json_with_a_wrong_field(
    tmp_path, inventory, capsys, no_run, field, value, expected
):
    runs = tmp_path / "runs"
    run_dir = runs / "20261126T100000Z"
    run_dir.mkdir(parents=True)
    run = {
        "command": "deploy",
        "inventory": str(inventory),
        "limit": None,
        "extravars": {},
        "rollout_state_dir": str(tmp_path / "state"),
        field: value,
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    before = tree(tmp_path)
    line = check(capsys, ["deploy", "--resume", "--runs-dir", str(runs)], 2)
    assert line.startswith(f"damon-fleet deploy: --resume: {run_dir / 'run.json'}: {expected}")
    assert tree(tmp_path) == before


def test_resume_over_a_run_json_that_is_not_an_object(tmp_path, capsys, no_run):
    run_dir = tmp_path / "runs" / "20261126T100000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_bytes(b"\xff\xfe{")
    # not a run: --resume finds no deploy run at all
    check(capsys, ["deploy", "--resume", "--runs-dir", str(tmp_path / "runs")], 2, "--resume")


@pytest.mark.parametrize("command", ["deploy", "detect"])
def test_runs_dir_that_is_a_file(tmp_path, inventory, capsys, no_run, command):
    runs = tmp_path / "runs"
    runs.write_text("not a folder\n")
    before = tree(tmp_path)
    line = check(capsys, [command, "-i", str(inventory), "--runs-dir", str(runs)], 2)
    assert line == f"damon-fleet {command}: --runs-dir {runs} is not a directory"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("where", ["below-a-file", "sysfs"])
def test_runs_dir_that_cannot_be_created(tmp_path, inventory, capsys, no_run, where):
    if where == "below-a-file":
        (tmp_path / "file").write_text("x")
        runs = tmp_path / "file" / "runs"
    else:
        runs = Path("/sys/damon-fleet-runs")
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs")
    before = tree(tmp_path)
    line = check(capsys, ["detect", "-i", str(inventory), "--runs-dir", str(runs)], 2)
    assert line.startswith(f"damon-fleet detect: --runs-dir {runs}: cannot create it: ")
    assert tree(tmp_path) == before
    assert not runs.exists()


@pytest.mark.parametrize("variable", ["ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP"])
def test_ansible_temp_folder_that_cannot_be_written(
    tmp_path, inventory, capsys, no_run, monkeypatch, variable
):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(variable, str(tmp_path / "file" / "tmp"))
    before = tree(tmp_path)
    runs = tmp_path / "runs"
    line = check(capsys, ["detect", "-i", str(inventory), "--runs-dir", str(runs)], 2)
    assert line.startswith(
        f"damon-fleet detect: {variable} {tmp_path / 'file' / 'tmp'}: "
        f"{tmp_path / 'file'} is not a directory; ansible-playbook creates its temporary "
        "files there"
    )
    assert tree(tmp_path) == before


def test_home_that_cannot_hold_ansible_temp(tmp_path, inventory, capsys, no_run, monkeypatch):
    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    monkeypatch.setenv("HOME", str(home))
    before = tree(tmp_path)
    line = check(capsys, ["detect", "-i", str(inventory), "--runs-dir", str(tmp_path / "r")], 2)
    assert line.startswith(
        f"damon-fleet detect: Ansible's local temp {home}/.ansible/tmp: {home} is not a directory"
    )
    assert f"or fix HOME ({home})" in line
    assert tree(tmp_path) == before


def test_remote_temp_is_checked_only_for_hosts_on_the_controller(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("ANSIBLE_REMOTE_TEMP", str(tmp_path / "file" / "tmp"))
    run_cli.check_ansible_temp(local_hosts=False)  # remote hosts: their own folder
    with pytest.raises(run_cli.BadInput, match="ANSIBLE_REMOTE_TEMP"):
        run_cli.check_ansible_temp(local_hosts=True)


# --- report and status over corrupt files ------------------------------------------------


def _good_run(runs: Path, name: str = "20261126T100000Z") -> Path:
    from damon_fleet import report as report_mod

    run_dir = runs / name
    run_dir.mkdir(parents=True)
    run = {
        "id": name,
        "command": "detect",
        "inventory": "/inv.yml",
        "hosts": ["localhost"],
        "status": "successful",
        "started": "2026-11-26T10:00:00Z",
        "finished": "2026-11-26T10:01:00Z",
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    events = json.loads((EVENTS / "localhost-detect.json").read_text())["events"]
    report = report_mod.build_report(run, events, [], ["localhost"])
    (run_dir / "report.json").write_text(report_mod.render_json(report))
    return run_dir


CORRUPT_REPORTS = [
    (b"{}", "is not a damon-fleet report: format is None, expected 1"),
    (b"[]", "is not a JSON object"),
    (b"\xff\xfe\x00garbage", "can't decode byte 0xff"),
    (b'{"format": 1, "run": {}, "hosts": 5, "summary": {}}', "hosts is missing or not a list"),
    (
        b'{"format": 1, "run": {}, "hosts": [{"host": "a", "outcome": "won"}], "summary": {}}',
        "hosts[0].outcome is 'won'",
    ),
    (
        b'{"format": 1, "run": {}, "hosts": [{"host": "a", "outcome": "done", "perf": 3}],'
        b' "summary": {}}',
        "hosts[0].perf is not an object",
    ),
    (b'{"format": 1, "run": {"finished": 7}, "hosts": [], "summary": {}}', "run.finished is int"),
]


@pytest.mark.parametrize(("content", "problem"), CORRUPT_REPORTS)
def test_report_of_a_corrupt_report_json(tmp_path, capsys, content, problem):
    runs = tmp_path / "runs"
    run_dir = _good_run(runs)
    (run_dir / "report.json").write_bytes(content)
    before = tree(tmp_path)
    line = check(capsys, ["report", "--runs-dir", str(runs)], 2, run_dir / "report.json", problem)
    assert line.startswith(f"damon-fleet report: {run_dir / 'report.json'}")
    assert tree(tmp_path) == before


@pytest.mark.parametrize(("content", "problem"), CORRUPT_REPORTS)
def test_status_lists_a_corrupt_report_and_exits_2(tmp_path, capsys, content, problem):
    runs = tmp_path / "runs"
    _good_run(runs, "20261126T090000Z")
    bad = _good_run(runs, "20261126T100000Z")
    (bad / "report.json").write_bytes(content)
    before = tree(tmp_path)
    assert main(["status", "--runs-dir", str(runs)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[2].split()[:2] == ["localhost", "6.18.44-fc-v857"]  # the good run
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith(f"damon-fleet status: {bad / 'report.json'}") and problem in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{}", "command is None"),
        (b'{"command": "detect", "hosts": "localhost"}', "hosts is not a list of host names"),
        (b"\x00\x01", "Expecting value"),
    ],
)
def test_report_and_status_without_report_json_and_a_corrupt_run_json(
    tmp_path, capsys, content, problem
):
    runs = tmp_path / "runs"
    run_dir = _good_run(runs)
    (run_dir / "report.json").unlink()
    (run_dir / "run.json").write_bytes(content)
    before = tree(tmp_path)
    line = check(capsys, ["report", run_dir.name, "--runs-dir", str(runs)], 2, problem)
    assert line.startswith(f"damon-fleet report: {run_dir / 'run.json'}")
    line = check(capsys, ["status", "--runs-dir", str(runs)], 2, problem)
    assert line.startswith(f"damon-fleet status: {run_dir / 'run.json'}")
    assert tree(tmp_path) == before


def test_report_and_status_with_a_runs_dir_that_is_a_file(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.write_text("x")
    for command in ("report", "status"):
        line = check(capsys, [command, "--runs-dir", str(runs)], 2)
        assert line == f"damon-fleet {command}: --runs-dir {runs} is not a directory"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{}", "format"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"format": 1, "host": "lab3", "phases": 5}', "phases"),
    ],
)
def test_status_lists_bad_rollout_records(tmp_path, capsys, content, problem):
    runs = tmp_path / "runs"
    _good_run(runs)
    state = tmp_path / "default-state"  # DAMON_FLEET_STATE_DIR
    state.mkdir()
    for record in json.loads((EVENTS / "lab-rollout-records.json").read_text())["records"]:
        (state / f"{record['host']}.json").write_text(json.dumps(record))
    (state / "lab3.json").write_bytes(content)
    before = tree(tmp_path)
    assert main(["status", "--runs-dir", str(runs)]) == 2
    out, err = capsys.readouterr()
    hosts = [line.split()[0] for line in out.splitlines()[2:]]
    assert hosts == ["lab1", "lab2", "localhost"]  # the good records and the run
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith(f"damon-fleet status: {state / 'lab3.json'}: unusable rollout record")
    assert problem in line
    assert tree(tmp_path) == before


def test_status_of_nothing_is_fine(tmp_path, capsys):
    assert main(["status", "--runs-dir", str(tmp_path / "none")]) == 0
    assert "no run recorded" in capsys.readouterr().out


# --- internal errors ---------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_exit_70(tmp_path, inventory, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk\nvanished")

    monkeypatch.setattr(run_cli, "read_inventory", broken)
    monkeypatch.delenv("DAMON_FLEET_DEBUG", raising=False)
    argv = ["detect", "-i", str(inventory), "--runs-dir", str(tmp_path / "r")]
    line = check(capsys, argv, EXIT_INTERNAL)
    assert line == (
        "damon-fleet: internal error: RuntimeError: the disk vanished "
        "(run again with DAMON_FLEET_DEBUG=1 for the traceback)"
    )
    monkeypatch.setenv("DAMON_FLEET_DEBUG", "1")
    with pytest.raises(RuntimeError, match="the disk"):
        main(argv)


def test_the_installed_entry_point_shows_no_traceback(tmp_path):
    binary = tmp_path / "vars.bin"
    binary.write_bytes(b"\xff" * 64)
    proc = subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", "detect", "-e", f"@{binary}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            run_cli.RUNS_DIR_ENV: str(tmp_path / "runs"),
        },
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"@{binary}" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vars.bin"]


# --- secrets -----------------------------------------------------------------------------


def test_resume_asks_for_the_secrets_again(tmp_path, inventory, capsys, monkeypatch):
    calls = []

    def fake(run_dir, playbook, inventory, limit, extravars, *args, **kwargs):
        calls.append(dict(extravars))
        return run_cli.RunResult(status="successful", rc=0, canceled=False, events=[])

    monkeypatch.setattr(run_cli, "run_playbook", fake)
    runs = tmp_path / "runs"
    argv = ["deploy", "-i", str(inventory), "--runs-dir", str(runs)]
    argv += [
        "-e",
        f"ansible_become_password={SECRET}",
        "-e",
        f'{{"creds": {{"api_token": "{TOKEN}"}}}}',
    ]
    assert main(argv) == 0
    assert calls[-1]["ansible_become_password"] == SECRET  # the run itself had it
    capsys.readouterr()
    before = tree(tmp_path)
    line = check(capsys, ["deploy", "--resume", "--runs-dir", str(runs)], 2)
    assert line == (
        "damon-fleet deploy: --resume: the previous run was given ansible_become_password, "
        "creds.api_token, which damon-fleet does not store; pass it again with -e "
        "(e.g. -e @secrets.yml)"
    )
    assert tree(tmp_path) == before and len(calls) == 1
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(f"ansible_become_password: new\ncreds: {{api_token: {TOKEN}}}\n")
    assert main(["deploy", "--resume", "-e", f"@{secrets}", "--runs-dir", str(runs)]) == 0
    assert calls[-1]["ansible_become_password"] == "new"
    assert calls[-1]["creds"] == {"api_token": TOKEN}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("ansible_become_password", True),
        ("ansible_ssh_pass", True),
        ("ansible_become_pass", True),
        ("bypass_cache", False),
        ("vault_pass", True),
        ("API_TOKEN", True),
        ("apiKey", True),
        ("db_passwd", True),
        ("client_secret", True),
        ("private_key", True),
        ("ansible_ssh_private_key_file", False),
        ("vault_password_file", False),
        ("monkey", False),
        ("kernel_build_keyring", False),
        ("rollout_state_dir", False),
    ],
)
def test_secret_names(name, secret):
    assert run_cli.is_secret_name(name) is secret


def test_redact_argv_keeps_files_and_plain_values():
    argv = [
        "deploy",
        "-e",
        "a=1 db_password=x",
        "--extra-vars=@s.yml",
        '-e{"token": 3}',
        "-e",
        "b=2",
    ]
    assert run_cli.redact_argv(argv) == [
        "deploy",
        "-e",
        '{"a": 1, "db_password": "<redacted>"}',
        "--extra-vars=@s.yml",
        '-e{"token": "<redacted>"}',
        "-e",
        "b=2",
    ]
