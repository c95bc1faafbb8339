"""Per-host rollout records and the health gate's decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rollout_state
from ansible.module_utils.kernel_install_gate import (
    CommandResult,
    Observed,
    evaluate,
    failed_summary,
    passed,
    scan_kernel_log,
)
from ansible.module_utils.rollout_state import (
    StateError,
    file_name,
    format_table,
    is_done,
    parse,
    render,
    scan,
    summary_rows,
    update,
)
from module_harness import run_module

T0 = 1_800_000_000.0
HASH = "a" * 64
NEW = "6.12.117-lab-perf-events-abi-31bdcb99"
OLD = "6.12.117-lab-42b6b450"


def full_record() -> dict:
    record, _ = update(
        None,
        "lab1",
        T0,
        values={"inputs_hash": HASH, "kernel_release": NEW, "status": "installing",
                "kernel_before": OLD, "batch": 1},
        phase="install",
        event="start",
    )  # fmt: skip
    record, _ = update(record, "lab1", T0 + 12.5, phase="install", event="finish")
    record, _ = update(record, "lab1", T0 + 13, phase="reboot", event="start")
    record, _ = update(record, "lab1", T0 + 63, phase="reboot", event="finish")
    record, _ = update(
        record,
        "lab1",
        T0 + 66,
        values={"status": "done", "kernel_after": NEW},
        phase="gate",
        event="finish",
        result={"passed": True, "checks": [{"name": "release", "ok": True, "detail": "x"}]},
    )
    return record


def test_phases_are_timed_and_the_record_round_trips() -> None:
    record = full_record()
    assert record["phases"]["install"]["seconds"] == 12.5
    assert record["phases"]["reboot"]["seconds"] == 50.0
    assert "seconds" not in record["phases"]["gate"]  # finished without a start
    assert parse(render(record), "lab1") == record
    assert is_done(record, HASH, NEW)
    assert not is_done(record, "b" * 64, NEW)
    assert not is_done(None, HASH, NEW)


def test_same_values_are_no_change_even_later() -> None:
    record = full_record()
    again, changed = update(record, "lab1", T0 + 999, values={"status": "done", "batch": 1})
    assert not changed
    assert again["updated_at"] == record["updated_at"]


def test_a_new_build_starts_a_new_record() -> None:
    record = full_record()
    fresh, changed = update(record, "lab1", T0 + 1000, values={"inputs_hash": "b" * 64})
    assert changed
    assert fresh["phases"] == {} and fresh["status"] == "pending"
    assert fresh["previous"]["inputs_hash"] == HASH
    newer, _ = update(fresh, "lab1", T0 + 2000, values={"inputs_hash": "c" * 64})
    assert "previous" not in newer["previous"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": {"colour": "red"}}, "unknown record keys"),
        ({"values": {"status": "happy"}}, "unknown status"),
        ({"phase": "dance"}, "unknown phase"),
        ({"event": "start"}, "needs a phase"),
    ],
)
def test_bad_updates_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(StateError, match=message):
        update(None, "lab1", T0, **kwargs)


@pytest.mark.parametrize("host", ["../etc/passwd", "a/b", "..", ""])
def test_host_names_cannot_leave_the_state_dir(host: str) -> None:
    with pytest.raises(StateError):
        file_name(host)


def test_foreign_or_broken_files_are_errors() -> None:
    with pytest.raises(StateError, match="not JSON"):
        parse("{", "lab1")
    with pytest.raises(StateError, match="belongs to"):
        parse(json.dumps({"format": 1, "host": "lab2"}), "lab1")
    with pytest.raises(StateError, match="format"):
        parse(json.dumps({"format": 9, "host": "lab1"}), "lab1")


def test_report_rows_and_lines() -> None:
    failed, _ = update(
        None,
        "lab2",
        T0,
        values={"status": "failed", "kernel_before": OLD, "kernel_after": OLD, "batch": 1,
                "error": "gate failed"},
        phase="gate",
        result={"checks": [{"name": "release", "ok": False, "detail": f"running {OLD}"}]},
    )  # fmt: skip
    rows = summary_rows([failed, full_record()])
    assert [r["host"] for r in rows] == ["lab1", "lab2"]
    assert rows[0]["seconds"] == {"install": 12.5, "reboot": 50.0}
    assert rows[1]["gate"] == "release FAILED"
    lines = format_table(rows)
    assert lines[0].startswith(f"lab1: done (batch 1), kernel {OLD} -> {NEW}; gate: release ok")
    assert f"  release: running {OLD}" in lines
    assert "  error: gate failed" in lines


def state(tmp_path: Path, **args: object) -> dict:
    done = run_module(rollout_state.main, {"state_dir": str(tmp_path / "state"), **args})
    assert not done.failed, done.result
    return done.result


def test_module_writes_atomically_and_reports_changes(tmp_path: Path) -> None:
    first = state(
        tmp_path,
        host="lab1",
        values={"inputs_hash": HASH, "kernel_release": NEW, "status": "done"},
        _ansible_diff=True,
    )
    assert first["changed"] and "diff" in first
    path = tmp_path / "state" / "lab1.json"
    assert json.loads(path.read_text())["status"] == "done"
    assert sorted(p.name for p in path.parent.iterdir()) == [".lab1.lock", "lab1.json"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    second = state(tmp_path, host="lab1", values={"status": "done"})
    assert not second["changed"]
    query = state(tmp_path, host="lab1", state="query", inputs_hash=HASH, kernel_release=NEW)
    assert query["done"] and query["record"]["host"] == "lab1"
    assert state(tmp_path, host="lab9", state="query")["record"] is None
    listed = state(tmp_path, state="list")
    assert [r["host"] for r in listed["records"]] == ["lab1"]
    assert listed["lines"][0].startswith("lab1: done")


def test_module_check_mode_writes_nothing(tmp_path: Path) -> None:
    result = state(tmp_path, host="lab1", values={"status": "done"}, _ansible_check_mode=True)
    assert result["changed"]
    assert not (tmp_path / "state" / "lab1.json").exists()


def test_module_list_of_a_missing_dir_is_empty(tmp_path: Path) -> None:
    assert state(tmp_path, state="list")["records"] == []


# ------------------------------------------------------------------------------- gate

BOOT_LOG = """\
[    0.000000] Linux version 6.12.117-lab-perf-events-abi-31bdcb99 (damon-fleet@damon-fleet)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.12.117 root=/dev/vda1 ro panic=5
[    0.512000] clocksource: Switched to clocksource tsc-early
"""
SPLAT = (
    BOOT_LOG
    + """\
[    3.100000] ------------[ cut here ]------------
[    3.100001] WARNING: CPU: 0 PID: 1 at mm/damon/sysfs.c:42 damon_sysfs_init+0x1/0x2
[    3.200000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    3.200001] Oops: 0000 [#1] PREEMPT SMP NOPTI
"""
)


def observed(**kwargs: object) -> Observed:
    base: dict = {"release": NEW, "boot_id": "new", "layout": "rfc-v3", "kernel_log": BOOT_LOG}
    base.update(kwargs)
    return Observed(**base)


def test_gate_passes_on_a_clean_boot() -> None:
    checks = evaluate(observed(), NEW, "old", "rfc-v3")
    assert [c.name for c in checks] == ["release", "boot_id", "layout", "kernel_log"]
    assert passed(checks) and failed_summary(checks) == ""


def test_panic_argument_on_the_command_line_is_not_a_panic() -> None:
    assert scan_kernel_log(BOOT_LOG, [r"\bOops\b", r"\bBUG:", r"\bWARNING:", "Kernel panic"]) == []


@pytest.mark.parametrize(
    ("kwargs", "failing"),
    [
        ({"release": OLD}, ["release"]),
        ({"boot_id": "old"}, ["boot_id"]),
        ({"layout": "mainline"}, ["layout"]),
        ({"layout": None, "layout_error": "no DAMON sysfs interface"}, ["layout"]),
        ({"kernel_log": SPLAT}, ["kernel_log"]),
        ({"kernel_log": None}, ["kernel_log"]),
        ({"commands": (CommandResult("sshd", 3, "inactive"),)}, ["command:sshd"]),
    ],
)
def test_gate_failures_name_the_check(kwargs: dict, failing: list[str]) -> None:
    checks = evaluate(observed(**kwargs), NEW, "old", "rfc-v3")
    assert [c.name for c in checks if not c.ok] == failing
    assert not passed(checks)


def test_gate_log_ignore_and_layout_alias() -> None:
    checks = evaluate(
        observed(kernel_log=SPLAT, layout="rfc-v1"),
        NEW,
        None,
        "rfc-v2",
        log_ignore=[r"WARNING: CPU: 0 PID: 1 at mm/damon", "BUG:", "Oops"],
    )
    assert passed(checks), checks
    assert "boot_id" not in [c.name for c in checks]


def test_kernel_log_detail_lists_the_lines() -> None:
    checks = evaluate(observed(kernel_log=SPLAT), NEW, None, None)
    detail = next(c.detail for c in checks if c.name == "kernel_log")
    assert "WARNING: CPU: 0" in detail and "Oops: 0000" in detail


# ------------------------------------------------------------------- scan (for the CLI)


def test_scan_returns_good_records_and_names_bad_files(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "lab1.json").write_text(render(full_record()))
    (state_dir / "lab2.json").write_bytes(b'{"format": 1, "host": "lab2", "error": "\xff"}')
    (state_dir / ".lab1.lock").write_text("")
    (state_dir / "notes.txt").write_text("not a record")
    records, bad = scan(state_dir, None)
    assert [r["host"] for r in records] == ["lab1"]
    assert bad == [(state_dir / "lab2.json", "not UTF-8 text (bad byte at offset 40)")]
    assert scan(state_dir, ["lab1"]) == (records, [])
    assert scan(state_dir, ["lab3"]) == ([], [])


def test_scan_of_a_missing_dir_or_a_file(tmp_path: Path) -> None:
    assert scan(tmp_path / "none", None) == ([], [])
    (tmp_path / "file").write_text("x")
    assert scan(tmp_path / "file", None) == ([], [(tmp_path / "file", "not a directory")])
