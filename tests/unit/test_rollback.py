"""Rollback and boot method in the rollout records, the ``damon-fleet rollback`` options,
and the firmware-against-kexec reboot table of the report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import (
    StateError,
    parse,
    summary_rows,
    update,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.image import (
    KEXEC_SETUP,
    LAB_GUEST_SETUP,
    LAB_IMAGE_PACKAGES,
)

from damon_fleet import cli, rollback_cli
from damon_fleet.report_rollback import format_reboots, reboot_rows
from damon_fleet.run_cli import PLAYBOOKS, parse_extra_vars

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
OLD = "6.12.117-lab-1b9cc979"
NEW = "6.12.117-lab-perf-events-abi-0c853a0d"


def rolled_out(host: str = "lab1", method: str = "kexec") -> dict:
    record, _ = update(
        None,
        host,
        T0,
        values={
            "inputs_hash": "h1",
            "kernel_release": NEW,
            "status": "rebooting",
            "kernel_before": OLD,
            "batch": 1,
            "boot_method": method,
            "boot_method_reason": None,
        },
        phase="reboot",
        event="start",
        result={"method": method, "boot_id_before": "b0"},
    )
    record, _ = update(
        record, host, T0 + 14.0, phase="reboot", event="finish", result={"elapsed": 12}
    )
    record, _ = update(record, host, T0 + 20.0, values={"status": "done", "kernel_after": NEW})
    return record


def rolled_back(record: dict, host: str = "lab1") -> dict:
    record, _ = update(
        record,
        host,
        T0 + 100.0,
        values={"status": "rolling_back"},
        phase="rollback",
        event="start",
        result={"kernel_from": NEW, "kernel_to": OLD, "damon": "removed"},
    )
    record, _ = update(
        record,
        host,
        T0 + 101.0,
        phase="rollback_reboot",
        event="start",
        result={"method": "firmware"},
    )
    record, _ = update(
        record,
        host,
        T0 + 141.0,
        phase="rollback_reboot",
        event="finish",
        result={"elapsed": 38},
    )
    record, _ = update(
        record,
        host,
        T0 + 146.0,
        values={"status": "rolled_back", "kernel_after": OLD},
        phase="rollback",
        event="finish",
        result={"packages_removed": []},
    )
    return record


# --------------------------------------------------------------------------- the records


def test_a_rolled_back_record_parses_again_and_keeps_its_build():
    record = rolled_back(rolled_out())
    again = parse(json.dumps(record), "lab1")
    assert again == record
    assert record["status"] == "rolled_back"
    assert record["inputs_hash"] == "h1" and record["kernel_release"] == NEW
    assert record["kernel_before"] == OLD and record["kernel_after"] == OLD
    assert record["phases"]["rollback"]["seconds"] == 46.0
    assert record["phases"]["rollback_reboot"]["seconds"] == 40.0
    assert "previous" not in record


def test_the_summary_line_names_the_boot_method_and_the_rollback_phases():
    (row,) = summary_rows([rolled_back(rolled_out())])
    assert row["line"] == (
        f"lab1: rolled_back (batch 1), kernel {OLD} -> {OLD}; gate: -; "
        "reboot=14.0s rollback=46.0s rollback_reboot=40.0s; boot kexec"
    )
    assert row["boot_method"] == "kexec" and row["boot_method_reason"] is None


def test_a_fallback_reason_is_in_the_line():
    record, _ = update(
        None,
        "lab2",
        T0,
        values={
            "status": "rebooting",
            "boot_method": "firmware",
            "boot_method_reason": "the kexec program (kexec-tools) is not installed",
        },
    )
    (row,) = summary_rows([record])
    assert row["line"] == (
        "lab2: rebooting (batch None), kernel None -> None; gate: -; -; boot firmware "
        "(the kexec program (kexec-tools) is not installed)"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"boot_method": "pxe"}, "values.boot_method: 'pxe' is not one of firmware, kexec or null"),
        ({"boot_method_reason": 5}, "values.boot_method_reason: 5 is not a string or null"),
    ],
)
def test_bad_boot_method_values_are_refused(values, message):
    with pytest.raises(StateError) as caught:
        update(None, "lab1", T0, values=values)
    assert str(caught.value) == message


def test_a_record_file_with_a_bad_boot_method_names_the_field():
    data = {**rolled_out(), "boot_method": "bios"}
    with pytest.raises(StateError) as caught:
        parse(json.dumps(data), "lab1", "/s/lab1.json")
    assert str(caught.value) == (
        "rollout record /s/lab1.json: boot_method: 'bios' is not one of firmware, kexec or null"
    )


# ------------------------------------------------------------------------ reboot seconds


def test_reboot_rows_put_firmware_and_kexec_side_by_side():
    rows = reboot_rows([rolled_back(rolled_out()), rolled_out("lab2", "firmware")])
    assert [
        (r["host"], r["boot_method"], r["firmware_seconds"], r["kexec_seconds"]) for r in rows
    ] == [
        ("lab1", "kexec", 38.0, 12.0),
        ("lab2", "firmware", 12.0, None),
    ]
    assert [r["what"] for r in rows[0]["reboots"]] == ["trial", "rollback"]
    assert format_reboots(rows) == [
        "reboots (seconds until the host answered again):",
        "  host  trial boot  firmware reboot  kexec reboot  record",
        "  lab1  kexec       38.0s            12.0s         rolled_back",
        "  lab2  firmware    12.0s            -             done",
    ]


def test_a_record_without_reboots_has_no_row():
    record, _ = update(None, "lab3", T0, values={"status": "installing"})
    assert reboot_rows([record]) == []
    assert format_reboots([]) == []


def test_a_reason_is_printed_under_the_table():
    record = rolled_out("lab2", "firmware")
    record["boot_method_reason"] = (
        "kernel lockdown (integrity, e.g. Secure Boot) forbids kexec_load"
    )
    lines = format_reboots(reboot_rows([record]))
    assert lines[-1] == (
        "  lab2: kexec not used: kernel lockdown (integrity, e.g. Secure Boot) forbids kexec_load"
    )


# -------------------------------------------------------------------------------- the CLI


def test_rollback_runs_playbooks_rollback_yml():
    assert PLAYBOOKS["rollback"] == ROOT / "playbooks" / "rollback.yml"
    assert PLAYBOOKS["rollback"].is_file()


def test_rollback_options_become_extra_vars_that_win(monkeypatch):
    seen = {}

    def fake_cmd_run(args):
        seen["extra"] = parse_extra_vars(args.extra_vars)
        seen["check"] = args.check
        seen["command"] = args.command
        return 0

    monkeypatch.setattr(rollback_cli, "cmd_run", fake_cmd_run)
    code = cli.main(
        ["rollback", "--limit", "lab1", "--to", OLD, "--keep-damon", "-e", "rollback_to=9.9"]
    )
    assert code == 0
    assert seen == {
        "extra": {
            "rollback_to": OLD,
            "rollback_keep_damon": True,
            "rollback_remove_packages": False,
        },
        "check": False,
        "command": "rollback",
    }


@pytest.mark.parametrize("bad", ["x;reboot", "-1", "6.1 rc", "6" + "a" * 64, ""])
def test_a_bad_to_is_refused_with_exit_2_before_anything_runs(bad, monkeypatch, capsys):
    monkeypatch.setattr(rollback_cli, "cmd_run", lambda args: pytest.fail("ran"))
    assert cli.main(["rollback", f"--to={bad}"]) == 2
    assert capsys.readouterr().err == (
        f"damon-fleet rollback: --to {bad!r} is not accepted: give a kernel release as uname "
        "-r prints it (a digit first, then letters, digits, '.', '_', '+', '~', '-'; at most "
        "64 characters)\n"
    )


# ---------------------------------------------------------------------------- lab image


def test_the_lab_image_has_kexec_tools_that_leaves_reboots_alone():
    assert "kexec-tools" in LAB_IMAGE_PACKAGES
    assert LAB_GUEST_SETUP.endswith(KEXEC_SETUP)


@pytest.mark.parametrize("before", ["LOAD_KEXEC=true\nUSE_GRUB_CONFIG=false\n", None])
def test_kexec_setup_turns_load_kexec_off(tmp_path, before):
    """The setup script itself, run with /etc/default/kexec moved into tmp_path and a
    debconf-set-selections that records what it is given."""
    if shutil.which("sed") is None:
        pytest.skip("no sed")
    default = tmp_path / "kexec"
    if before is not None:
        default.write_text(before)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "debconf-set-selections"
    stub.write_text(f"#!/bin/sh\ncat >> {tmp_path}/selections\n")
    stub.chmod(0o755)
    script = KEXEC_SETUP.replace("/etc/default/kexec", str(default))
    proc = subprocess.run(
        ["sh", "-ec", script],
        env={"PATH": f"{bindir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOAD_KEXEC=false" in default.read_text().splitlines()
    assert "LOAD_KEXEC=true" not in default.read_text()
    assert (tmp_path / "selections").read_text() == (
        "kexec-tools kexec-tools/load_kexec boolean false\n"
    )


def test_rollback_help_lists_the_options():
    proc = subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", "rollback", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--to RELEASE", "--keep-damon", "--remove-packages", "--limit LIMIT"):
        assert option in proc.stdout


def test_the_report_renderings_carry_the_reboot_table():
    from damon_fleet import run_cli

    records = [rolled_back(rolled_out())]
    run = {
        "format": 1,
        "command": "rollback",
        "id": "20270115T080000Z",
        "inventory": "/inv.yml",
        "hosts": ["lab1"],
        "status": "successful",
        "started": "2027-01-15T08:00:00Z",
        "finished": "2027-01-15T08:05:00Z",
    }
    report = run_cli.report_mod.build_report(run, [], records, ["lab1"])
    report["reboots"] = reboot_rows(records)
    table = [
        "reboots (seconds until the host answered again):",
        "  host  trial boot  firmware reboot  kexec reboot  record",
        "  lab1  kexec       38.0s            12.0s         rolled_back",
    ]
    assert run_cli.render(report, "table").splitlines()[-3:] == table
    markdown = run_cli.render(report, "markdown")
    assert markdown.endswith("\n\n" + "".join(f"    {line}\n" for line in table))
    del report["reboots"]
    assert "reboots" not in run_cli.render(report, "table")
