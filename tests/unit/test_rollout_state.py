"""Per-host rollout records and the health gate's decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rollout_state
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.install_gate import (
    CommandResult,
    Observed,
    evaluate,
    failed_summary,
    passed,
    scan_kernel_log,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import (
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
from conftest import FIXTURES
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


# ------------------------------------------------------------ is_done: every condition


def test_is_done_needs_the_done_status() -> None:
    record = full_record()
    for status in ("installing", "installed", "rebooting", "gate_passed", "failed"):
        assert not is_done({**record, "status": status}, HASH, NEW), status


def test_is_done_needs_the_same_kernel_release() -> None:
    record = full_record()
    assert not is_done(record, HASH, OLD)
    assert not is_done({**record, "kernel_release": OLD}, HASH, NEW)
    assert not is_done({**record, "kernel_release": None}, HASH, NEW)


# --------------------------------------------------------------- bad records, everywhere

GOOD = {"format": 1, "host": "lab1"}
BAD_RECORDS = [
    (b"\xff\xfe{}", "not UTF-8 text (bad byte at offset 0)"),
    (b'{"format": 1, "host": "lab1", "kernel_release": "6.12\xe9"}',
     "not UTF-8 text (bad byte at offset 53)"),
    (b"{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b"[" * 100_000, "not JSON: nested too deeply"),
    (b"[]", "a list is not a JSON object"),
    (b'{"format": 1, "host": "lab1", "host": "lab2"}', "not JSON: duplicate key 'host'"),
    ({**GOOD, "phases": []}, "phases: a list is not an object"),
    ({**GOOD, "phases": {"gate": 5}}, "phases.gate: 5 is not an object"),
    ({**GOOD, "phases": {"gate": None}}, "phases.gate: None is not an object"),
    ({**GOOD, "phases": {"dance": {}}},
     "phases.dance: unknown phase; known: install, reboot, gate, default, fallback, "
     "rollback, rollback_reboot, rollback_gate"),
    ({**GOOD, "phases": {"install": {"started": "yesterday"}}},
     "phases.install.started: 'yesterday' is not a UTC time like 2026-01-31T12:00:00Z"),
    ({**GOOD, "phases": {"install": {"started": 17}}},
     "phases.install.started: 17 is not a UTC time like 2026-01-31T12:00:00Z"),
    ({**GOOD, "phases": {"install": {"started": "2026-13-01T00:00:00Z"}}},
     "phases.install.started: '2026-13-01T00:00:00Z' is not a UTC time like "
     "2026-01-31T12:00:00Z"),
    ({**GOOD, "phases": {"install": {"started": "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"}}},
     "phases.install.started: '\u0662\u0660\u0662\u0666-01-01T00:00:00Z' is not a UTC time "
     "like 2026-01-31T12:00:00Z"),
    ({**GOOD, "phases": {"install": {"seconds": "12"}}},
     "phases.install.seconds: '12' is not a number of seconds"),
    (b'{"format": 1, "host": "lab1", "phases": {"install": {"seconds": NaN}}}',
     "not JSON: NaN is not a JSON number"),
    ({**GOOD, "phases": {"gate": {"checks": [5]}}}, "phases.gate.checks[0]: 5 is not an object"),
    ({**GOOD, "phases": {"gate": {"checks": "release"}}},
     "phases.gate.checks: 'release' is not a list"),
    ({**GOOD, "phases": {"gate": {"checks": [{"name": "release", "ok": "yes"}]}}},
     "phases.gate.checks[0].ok: 'yes' is not true or false"),
    ({**GOOD, "phases": {"gate": {"passed": "no"}}},
     "phases.gate.passed: 'no' is not true, false or null"),
    ({**GOOD, "status": "happy"},
     "status: 'happy' is not one of pending, installing, installed, rebooting, gate_passed, "
     "done, failed, reboot_required, rolling_back, rolled_back"),
    ({**GOOD, "batch": "1"}, "batch: '1' is not an integer or null"),
    ({**GOOD, "batch": True}, "batch: True is not an integer or null"),
    ({**GOOD, "kernel_release": ["6.12"]}, "kernel_release: a list is not a string or null"),
    ({**GOOD, "error": "x" * 500, "kernel_after": 5}, "kernel_after: 5 is not a string or null"),
    ({**GOOD, "updated_at": "now"},
     "updated_at: 'now' is not a UTC time like 2026-01-31T12:00:00Z"),
    ({**GOOD, "colour": "red"},
     "colour: unknown key; known: batch, boot_method, boot_method_reason, error, format, host, "
     "inputs_hash, kernel_after, kernel_before, kernel_release, layout, phases, previous, "
     "series, status, updated_at"),
    ({**GOOD, "format": 2}, "format: 2 is not 1"),
    ({"format": 1, "host": "lab2"}, "host: the record belongs to 'lab2', not lab1"),
    ({**GOOD, "previous": {**GOOD, "phases": {"gate": 1}}},
     "previous.phases.gate: 1 is not an object"),
    ({**GOOD, "previous": 3}, "previous: 3 is not a JSON object"),
]  # fmt: skip


def _bytes(content: object) -> bytes:
    return content if isinstance(content, bytes) else json.dumps(content).encode()


@pytest.mark.parametrize(("content", "problem"), BAD_RECORDS)
def test_a_bad_record_is_one_error_naming_the_file_and_field(content: object, problem: str) -> None:
    with pytest.raises(StateError) as caught:
        parse(_bytes(content), "lab1", "/s/lab1.json")
    assert str(caught.value) == f"rollout record /s/lab1.json: {problem}"
    assert caught.value.problem == problem and caught.value.path == "/s/lab1.json"


def test_an_error_quotes_at_most_a_short_piece_of_the_value() -> None:
    with pytest.raises(StateError) as caught:
        parse(json.dumps({**GOOD, "status": "x" * 100_000}), "lab1")
    assert len(str(caught.value)) < 250


def test_a_record_larger_than_the_limit_is_refused() -> None:
    with pytest.raises(StateError, match=r"larger than 1048576 bytes: not a record"):
        parse(json.dumps({**GOOD, "error": "x" * 2_000_000}), "lab1")


@pytest.mark.parametrize(("content", "problem"), BAD_RECORDS)
def test_the_module_fails_the_host_naming_the_file_field_and_fix(
    tmp_path: Path, content: object, problem: str
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / "lab1.json"
    path.write_bytes(_bytes(content))
    expected = (
        f"rollout state: rollout record {path}: {problem}; move the file aside or delete it "
        "(the host's next rollout then starts a new record)"
    )
    for args in (
        {"state": "query", "inputs_hash": HASH, "kernel_release": NEW},
        {"values": {"status": "installing"}, "phase": "install", "event": "start"},
        {"values": {"status": "done"}, "_ansible_check_mode": True},
    ):
        done = run_module(rollout_state.main, {"state_dir": str(state_dir), "host": "lab1", **args})
        assert done.failed, args
        assert done.result["msg"] == expected
    assert path.read_bytes() == _bytes(content)  # left for the operator to look at
    listed = run_module(rollout_state.main, {"state_dir": str(state_dir), "state": "list"})
    assert listed.failed
    assert listed.result["msg"] == (
        f"rollout state: bad records: {path}: {problem}; move the file aside or delete it "
        "(the host's next rollout then starts a new record)"
    )
    assert listed.result["bad_records"] == [{"path": str(path), "problem": problem}]
    assert scan(state_dir, None) == ([], [(path, problem)])


def test_the_module_lists_good_records_next_to_the_bad_ones(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state(tmp_path, host="lab1", values={"status": "done"})
    (state_dir / "lab2.json").write_text(json.dumps({"format": 1, "host": "lab2", "phases": 1}))
    listed = run_module(rollout_state.main, {"state_dir": str(state_dir), "state": "list"})
    assert listed.failed
    assert [r["host"] for r in listed.result["records"]] == ["lab1"]
    assert listed.result["lines"][0].startswith("lab1: done")
    assert listed.result["bad_records"] == [
        {"path": str(state_dir / "lab2.json"), "problem": "phases: 1 is not an object"}
    ]
    # another host's bad record does not fail this host
    assert state(tmp_path, host="lab1", state="query")["record"]["status"] == "done"


def test_a_record_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "lab1.json").mkdir(parents=True)
    done = run_module(
        rollout_state.main, {"state_dir": str(state_dir), "host": "lab1", "state": "query"}
    )
    assert done.failed
    assert done.result["msg"] == (
        f"rollout state: rollout record {state_dir / 'lab1.json'}: cannot read: Is a directory; "
        "move the file aside or delete it (the host's next rollout then starts a new record)"
    )
    assert scan(state_dir, None) == ([], [(state_dir / "lab1.json", "cannot read: Is a directory")])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": {"batch": "2"}}, "values.batch: '2' is not an integer or null"),
        ({"values": {"kernel_release": 6}}, "values.kernel_release: 6 is not a string or null"),
        ({"phase": "gate", "result": {"checks": [1]}},
         "result: phases.gate.checks[0]: 1 is not an object"),
        ({"phase": "gate", "result": {"started": "soon"}},
         "result: phases.gate.started: 'soon' is not a UTC time like 2026-01-31T12:00:00Z"),
    ],
)  # fmt: skip
def test_an_update_cannot_write_what_would_not_parse(kwargs: dict, message: str) -> None:
    with pytest.raises(StateError) as caught:
        update(None, "lab1", T0, **kwargs)
    assert str(caught.value) == message


def test_update_refuses_a_bad_record_given_to_it() -> None:
    with pytest.raises(StateError) as caught:
        update({**GOOD, "phases": {"install": {"started": "x"}}}, "lab1", T0,
               phase="install", event="finish")  # fmt: skip
    assert str(caught.value) == (
        "rollout record of lab1: phases.install.started: 'x' is not a UTC time like "
        "2026-01-31T12:00:00Z"
    )


def test_a_bad_host_name_fails_before_anything_is_written(tmp_path: Path) -> None:
    done = run_module(
        rollout_state.main,
        {"state_dir": str(tmp_path / "state"), "host": "../x", "values": {"status": "done"}},
    )
    assert done.failed
    assert done.result["msg"] == (
        "rollout state: host name '../x' cannot name a state file "
        "(letters, digits and _ . : @ - only)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("state", ["present", "query"])
def test_a_state_dir_that_is_a_file_is_named(tmp_path: Path, state: str) -> None:
    (tmp_path / "state").write_text("not a folder")
    args = {"state_dir": str(tmp_path / "state"), "host": "lab1", "state": state}
    done = run_module(rollout_state.main, args)
    assert done.failed
    assert done.result["msg"] == f"rollout state: state_dir {tmp_path / 'state'} is not a directory"
    assert (tmp_path / "state").read_text() == "not a folder"
    listed = run_module(rollout_state.main, {"state_dir": str(tmp_path / "state"), "state": "list"})
    assert listed.failed and listed.result["bad_records"] == [
        {"path": str(tmp_path / "state"), "problem": "not a directory"}
    ]


def test_a_state_dir_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    state_dir = tmp_path / "file" / "state"
    done = run_module(
        rollout_state.main,
        {"state_dir": str(state_dir), "host": "lab1", "values": {"status": "done"}},
    )
    assert done.failed
    assert done.result["msg"] == f"rollout state: state_dir {state_dir} is not a directory"
    query = run_module(
        rollout_state.main, {"state_dir": str(state_dir), "host": "lab1", "state": "query"}
    )
    assert query.result["msg"] == f"rollout state: state_dir {state_dir} is not a directory"
    assert scan(state_dir, None) == ([], [(state_dir, "not a directory")])


def _records_in(value: object, out: list[dict]) -> list[dict]:
    if isinstance(value, dict):
        if {"format", "host", "phases"} <= set(value):
            out.append(value)
        for item in value.values():
            _records_in(item, out)
    elif isinstance(value, list):
        for item in value:
            _records_in(item, out)
    return out


@pytest.mark.parametrize(
    ("fixture", "count"),
    [("lab-rollout-records.json", 2), ("lab-deploy-rollout-fallback.json", 19)],
)
def test_records_of_real_lab_runs_are_valid(fixture: str, count: int) -> None:
    """The validation refuses nothing the roles really write (records captured from lab
    runs, in the runner events of tests/fixtures)."""
    events = json.loads((FIXTURES / "runner-events" / fixture).read_text(encoding="utf-8"))
    records = _records_in(events, [])
    assert len(records) == count
    for record in records:
        assert parse(render(record), record["host"]) == {**record}
