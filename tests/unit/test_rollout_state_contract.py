"""The rollout record as a contract: exact records, rows, lines, errors and files.

Real records come from a lab deploy (tests/fixtures/runner-events/lab-rollout-records.json:
lab1 done, lab2 failed its gate and fell back); other records are built with ``update``
as test_rollout_state.py builds them.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import (
    MAX_RECORD_BYTES,
    StateError,
    apply,
    ensure_dir,
    file_name,
    format_table,
    is_done,
    iso,
    new_record,
    parse,
    parse_iso,
    read_record,
    record_path,
    render,
    row_line,
    scan,
    summary_rows,
    update,
    write_record,
)
from conftest import FIXTURES

T0 = 1_800_000_000.0
T0_ISO = "2027-01-15T08:00:00Z"
HASH = "0c853a0da2c09c6d43f6cb906b79240a79087ea087971c8f66bf42930b0dfbc1"
RELEASE = "6.12.117-lab-perf-events-abi-0c853a0d"
BEFORE = "6.12.117-lab-1b9cc979"
STATUSES = (
    "pending, installing, installed, rebooting, gate_passed, done, failed, reboot_required, "
    "rolling_back, rolled_back"
)
KNOWN_NESTED = (
    "batch, boot_method, boot_method_reason, error, format, host, inputs_hash, kernel_after, "
    "kernel_before, kernel_release, layout, phases, series, status, updated_at"
)
NOT_TIME = "is not a UTC time like 2026-01-31T12:00:00Z"


def lab_records() -> list[dict]:
    path = FIXTURES / "runner-events" / "lab-rollout-records.json"
    return json.loads(path.read_text(encoding="utf-8"))["records"]


def lab(host: str) -> dict:
    (record,) = [r for r in lab_records() if r["host"] == host]
    return record


def parse_error(data: object, host: str = "lab1", source: str | None = None) -> StateError:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(StateError) as caught:
        parse(text, host, source)
    return caught.value


# --------------------------------------------------------------------- report rows and lines

LAB1_LINE = (
    f"lab1: done (batch 1), kernel {BEFORE} -> {RELEASE}; "
    "gate: release ok, boot_id ok, layout ok, kernel_log ok; "
    "install=78.1s reboot=37.2s gate=4.7s default=14.7s"
)
LAB2_LINE = (
    f"lab2: failed (batch 2), kernel {BEFORE} -> {BEFORE}; "
    "gate: release FAILED, boot_id ok, layout FAILED, kernel_log ok; "
    "install=71.4s reboot=47.2s gate=4.0s fallback=12.8s"
)
LAB2_ERROR = (
    f"gate failed: release: running {BEFORE}, expected {RELEASE}; "
    "layout: DAMON sysfs layout mainline, expected rfc-v3"
)


def test_summary_rows_of_a_real_lab_deploy() -> None:
    rows = summary_rows(list(reversed(lab_records())))
    assert rows == [
        {
            "host": "lab1",
            "batch": 1,
            "status": "done",
            "kernel_before": BEFORE,
            "kernel_after": RELEASE,
            "kernel_release": RELEASE,
            "gate": "release ok, boot_id ok, layout ok, kernel_log ok",
            "gate_failures": [],
            "seconds": {"install": 78.1, "reboot": 37.2, "gate": 4.7, "default": 14.7},
            "error": None,
            "line": LAB1_LINE,
        },
        {
            "host": "lab2",
            "batch": 2,
            "status": "failed",
            "kernel_before": BEFORE,
            "kernel_after": BEFORE,
            "kernel_release": RELEASE,
            "gate": "release FAILED, boot_id ok, layout FAILED, kernel_log ok",
            "gate_failures": [
                f"release: running {BEFORE}, expected {RELEASE}",
                "layout: DAMON sysfs layout mainline, expected rfc-v3",
            ],
            "seconds": {"install": 71.4, "reboot": 47.2, "gate": 4.0, "fallback": 12.8},
            "error": LAB2_ERROR,
            "line": LAB2_LINE,
        },
    ]
    assert format_table(rows) == [
        LAB1_LINE,
        LAB2_LINE,
        f"  release: running {BEFORE}, expected {RELEASE}",
        "  layout: DAMON sysfs layout mainline, expected rfc-v3",
        f"  error: {LAB2_ERROR}",
    ]


def test_a_record_without_phases_has_a_short_line() -> None:
    (row,) = summary_rows([new_record("lab3")])
    assert row == {
        "host": "lab3",
        "batch": None,
        "status": "pending",
        "kernel_before": None,
        "kernel_after": None,
        "kernel_release": None,
        "gate": None,
        "gate_failures": [],
        "seconds": {},
        "error": None,
        "line": "lab3: pending (batch None), kernel None -> None; gate: -; -",
    }
    assert row_line(row) == row["line"]
    assert format_table([row]) == [row["line"]]


# ---------------------------------------------------------------------------------- is_done


@pytest.mark.parametrize(
    ("change", "args", "done"),
    [
        ({}, (HASH, RELEASE), True),
        ({"status": "gate_passed"}, (HASH, RELEASE), False),
        ({}, ("b" * 64, RELEASE), False),
        ({"inputs_hash": None}, (HASH, RELEASE), False),
        ({}, (HASH, BEFORE), False),
        ({"kernel_release": BEFORE}, (HASH, RELEASE), False),
    ],
)
def test_is_done_needs_status_hash_and_release(change: dict, args: tuple, done: bool) -> None:
    assert is_done({**lab("lab1"), **change}, *args) is done


def test_is_done_without_a_record_or_for_a_failed_host() -> None:
    assert is_done(None, HASH, RELEASE) is False
    assert is_done(lab("lab2"), HASH, RELEASE) is False


# ------------------------------------------------------------------------------ new records


def test_a_first_update_makes_a_whole_record() -> None:
    record, changed = update(None, "lab1", T0)
    assert changed is True
    assert record == {
        "format": 1,
        "host": "lab1",
        "inputs_hash": None,
        "kernel_release": None,
        "series": None,
        "layout": None,
        "status": "pending",
        "kernel_before": None,
        "kernel_after": None,
        "batch": None,
        "error": None,
        "phases": {},
        "updated_at": T0_ISO,
    }
    assert render(record) == json.dumps(record, indent=2, sort_keys=True) + "\n"
    assert render({"b": 1, "a": [2]}) == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'


def test_times() -> None:
    assert iso(T0) == T0_ISO
    assert iso(T0 + 0.9) == T0_ISO
    assert parse_iso(T0_ISO) == T0
    moment = datetime.datetime(2026, 11, 26, 20, 9, 58, tzinfo=datetime.timezone.utc)
    assert parse_iso("2026-11-26T20:09:58Z") == moment.timestamp()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("2026-02-30T00:00:00Z", "'2026-02-30T00:00:00Z'"),
        ("2026-11-26 20:09:58Z", "'2026-11-26 20:09:58Z'"),
        (None, "None"),
        ([1], "a list"),
    ],
)
def test_parse_iso_refuses_anything_else(text: object, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_iso(text)
    assert str(caught.value) == f"{shown} {NOT_TIME}"


# ----------------------------------------------------------------------------------- update


def test_phase_events_stamp_times_and_round_seconds() -> None:
    record, _ = update(None, "lab1", T0, values={"status": "installing"}, phase="install",
                       event="start")  # fmt: skip
    assert record["phases"] == {"install": {"started": T0_ISO}}
    record, changed = update(record, "lab1", T0 + 12.46, phase="install", event="finish",
                             result={"changed": True})  # fmt: skip
    assert changed is True
    assert record["phases"] == {
        "install": {
            "started": T0_ISO,
            "finished": "2027-01-15T08:00:12Z",
            "seconds": 12.5,
            "changed": True,
        }
    }
    assert record["updated_at"] == "2027-01-15T08:00:12Z"
    # a new start forgets the earlier finish, its seconds and results
    again, changed = update(record, "lab1", T0 + 60, phase="install", event="start")
    assert changed is True
    assert again["phases"] == {"install": {"started": "2027-01-15T08:01:00Z"}}
    assert record["phases"]["install"]["seconds"] == 12.5  # the input is left as it was


def test_a_result_without_an_event_is_merged_into_the_phase() -> None:
    record = lab("lab1")
    new, changed = update(record, "lab1", T0, phase="gate", result={"passed": False})
    assert changed is True
    assert new["phases"]["gate"] == {**record["phases"]["gate"], "passed": False}
    assert new["phases"]["install"] == record["phases"]["install"]
    assert new["updated_at"] == T0_ISO
    assert record["phases"]["gate"]["passed"] is True


def test_a_finish_without_a_start_has_no_seconds() -> None:
    new, _ = update(None, "lab1", T0, phase="gate", event="finish")
    assert new["phases"] == {"gate": {"finished": T0_ISO}}


def test_the_returned_record_shares_nothing_with_the_inputs() -> None:
    result = {"passed": True, "checks": [{"name": "release", "ok": True, "detail": "x"}]}
    record, _ = update(None, "lab1", T0, values={"inputs_hash": HASH}, phase="gate",
                       result=result)  # fmt: skip
    result["checks"][0]["ok"] = False
    assert record["phases"]["gate"]["checks"] == [{"name": "release", "ok": True, "detail": "x"}]
    fresh, _ = update(record, "lab1", T0 + 1, values={"inputs_hash": "b" * 64})
    fresh["previous"]["phases"]["gate"]["checks"].clear()
    assert len(record["phases"]["gate"]["checks"]) == 1


def test_a_new_build_keeps_the_old_record_as_previous() -> None:
    record = lab("lab2")
    fresh, changed = update(record, "lab2", T0, values={"inputs_hash": "b" * 64, "batch": 1})
    assert changed is True
    assert fresh == {
        **new_record("lab2"),
        "inputs_hash": "b" * 64,
        "batch": 1,
        "updated_at": T0_ISO,
        "previous": record,
    }
    newer, _ = update(fresh, "lab2", T0 + 5, values={"inputs_hash": "c" * 64})
    assert newer["previous"] == {k: v for k, v in fresh.items() if k != "previous"}
    assert parse(render(newer), "lab2") == newer


@pytest.mark.parametrize("old_hash", [HASH, None])
def test_the_same_or_a_first_hash_keeps_the_record(old_hash: str | None) -> None:
    record = {**lab("lab1"), "inputs_hash": old_hash}
    new, changed = update(record, "lab1", T0, values={"inputs_hash": HASH})
    assert "previous" not in new
    assert new["phases"] == record["phases"]
    assert changed is (old_hash is None)


def test_nothing_new_is_no_change_and_keeps_the_time() -> None:
    record = lab("lab1")
    new, changed = update(record, "lab1", T0, values={"status": "done", "batch": 1})
    assert changed is False
    assert new == record
    new, changed = update(record, "lab1", T0, values={"status": "failed"})
    assert changed is True
    assert new == {**record, "status": "failed", "updated_at": T0_ISO}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": {"colour": "red", "batch": 1}},
         "unknown record keys ['colour']; known: inputs_hash, kernel_release, series, layout, "
         "status, kernel_before, kernel_after, batch, error, boot_method, boot_method_reason"),
        ({"values": {"status": "happy"}}, f"unknown status 'happy'; known: {STATUSES}"),
        ({"values": {"error": 5}}, "values.error: 5 is not a string or null"),
        ({"phase": "dance"},
         "unknown phase 'dance'; known: install, reboot, gate, default, fallback, "
         "rollback, rollback_reboot, rollback_gate"),
        ({"phase": "gate", "event": "stop"}, "unknown event 'stop'; known: start, finish"),
        ({"event": "start"}, "an event or a result needs a phase"),
        ({"result": {"passed": True}}, "an event or a result needs a phase"),
        ({"phase": "install", "result": {"seconds": float("inf")}},
         "result: phases.install.seconds: inf is not a number of seconds"),
        ({"phase": "install", "result": {"seconds": True}},
         "result: phases.install.seconds: True is not a number of seconds"),
        ({"phase": "gate", "result": {"finished": "later"}},
         f"result: phases.gate.finished: 'later' {NOT_TIME}"),
        ({"phase": "gate", "result": {"checks": [{"ok": True}]}},
         "result: phases.gate.checks[0].name: None is not a string"),
        ({"phase": "gate", "result": {"checks": [{"name": "a", "ok": True}, {"name": "b"}]}},
         "result: phases.gate.checks[1].ok: None is not true or false"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_with_the_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(StateError) as caught:
        update(None, "lab1", T0, **kwargs)
    assert str(caught.value) == message
    assert caught.value.problem == message and caught.value.path is None


def test_empty_values_and_a_phase_without_event_or_result() -> None:
    record, changed = update(lab("lab1"), "lab1", T0, values={}, phase="fallback")
    assert changed is True
    assert record["phases"]["fallback"] == {}
    record, changed = update(None, "lab1", T0, values=None)
    assert record["status"] == "pending" and changed is True


def test_an_update_of_a_record_with_only_the_required_keys() -> None:
    """update takes any record that validates, even one without the keys it fills in."""
    bare = {"format": 1, "host": "lab1"}
    assert update(bare, "lab1", T0) == (bare, False)
    new, changed = update(bare, "lab1", T0, values={"status": "done"})
    assert (new, changed) == ({**bare, "status": "done", "updated_at": T0_ISO}, True)
    new, changed = update(bare, "lab1", T0, phase="install", event="start")
    assert new == {**bare, "phases": {"install": {"started": T0_ISO}}, "updated_at": T0_ISO}


def test_an_update_refuses_another_host_s_record() -> None:
    with pytest.raises(StateError) as caught:
        update(lab("lab1"), "lab2", T0, values={"status": "done"})
    assert (
        str(caught.value) == "rollout record of lab2: host: the record belongs to 'lab1', not lab2"
    )
    assert caught.value.path == "of lab2"


# ---------------------------------------------------------------------------- parse/validate


@pytest.mark.parametrize("record", lab_records(), ids=lambda r: r["host"])
def test_real_records_parse_as_they_are(record: dict) -> None:
    text = render(record)
    assert parse(text, record["host"]) == record
    assert parse(text.encode(), record["host"], "/s/x.json") == record


def test_parse_fills_in_the_defaults() -> None:
    assert parse('{"format": 1, "host": "lab1"}', "lab1") == new_record("lab1")
    loose = {"format": 1, "host": "lab1", "batch": 0, "error": None, "updated_at": None,
             "phases": {"gate": {"passed": None, "checks": None, "seconds": None}}}  # fmt: skip
    assert parse(json.dumps(loose), "lab1") == {**new_record("lab1"), **loose}


def test_a_record_of_exactly_the_limit_parses() -> None:
    text = render(lab("lab1"))
    text += " " * (MAX_RECORD_BYTES - len(text))
    assert len(text) == MAX_RECORD_BYTES
    assert parse(text, "lab1") == lab("lab1")
    assert str(parse_error(text + " ")) == (
        f"rollout record of lab1: larger than {MAX_RECORD_BYTES} bytes: not a record"
    )


def test_an_error_without_a_source_names_the_host() -> None:
    error = parse_error({"format": 2, "host": "lab1"})
    assert str(error) == "rollout record of lab1: format: 2 is not 1"
    assert (error.problem, error.path) == ("format: 2 is not 1", "of lab1")
    error = parse_error("[]", source="/s/lab1.json")
    assert str(error) == "rollout record /s/lab1.json: a list is not a JSON object"
    error = parse_error('{"format": 1, "host": "lab1", "x": Infinity}')
    assert error.problem == "not JSON: Infinity is not a JSON number"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"format": 1, "host": "lab1", "status": "x" * 58},
         f"status: '{'x' * 58}' is not one of {STATUSES}"),
        ({"format": 1, "host": "lab1", "status": "x" * 59},
         f"status: '{'x' * 56}... is not one of {STATUSES}"),
        ({"format": 1, "host": "lab1", "status": {}},
         f"status: an object is not one of {STATUSES}"),
        ({"format": 1, "host": "lab1", "zz": 1, "colour": 2},
         f"colour: unknown key; known: {KNOWN_NESTED.replace('phases, ', 'phases, previous, ')}"),
        ({"format": 1, "host": "lab1", "previous": {"format": 1, "host": "lab1", "previous": {}}},
         f"previous.previous: unknown key; known: {KNOWN_NESTED}"),
        ({"format": 1, "host": "lab1", "previous": []}, "previous: a list is not a JSON object"),
        ({"format": 1, "host": "lab1", "previous": {"format": 1, "host": "lab2"}},
         "previous.host: the record belongs to 'lab2', not lab1"),
        ({"format": 1, "host": "lab1", "phases": {"gate": {"checks": {}}}},
         "phases.gate.checks: an object is not a list"),
        ({"format": 1, "host": "lab1", "phases": {"gate": {"finished": 1}}},
         f"phases.gate.finished: 1 {NOT_TIME}"),
        ({"format": 1, "host": "lab1", "phases": {"reboot": {"seconds": False}}},
         "phases.reboot.seconds: False is not a number of seconds"),
        ({"format": 1, "host": "lab1", "phases": {"gate": {"passed": 1}}},
         "phases.gate.passed: 1 is not true, false or null"),
        ({"format": 1, "host": "lab1", "phases": {"gate": {"checks": [{"name": 7, "ok": True}]}}},
         "phases.gate.checks[0].name: 7 is not a string"),
        ({"format": 1, "host": "lab1", "updated_at": "2026-11-26T20:12:53"},
         f"updated_at: '2026-11-26T20:12:53' {NOT_TIME}"),
        ({"format": 1, "host": "lab1", "series": 1.5}, "series: 1.5 is not a string or null"),
        ({"host": "lab1"}, "format: None is not 1"),
        ({"format": 1}, "host: the record belongs to None, not lab1"),
    ],
)  # fmt: skip
def test_each_field_is_checked(data: dict, problem: str) -> None:
    error = parse_error(data, source="/s/lab1.json")
    assert error.problem == problem
    assert str(error) == f"rollout record /s/lab1.json: {problem}"


def test_a_duplicate_key_is_named_and_a_value_is_kept() -> None:
    error = parse_error('{"format": 1, "host": "lab1", "phases": {"gate": {}, "gate": {}}}')
    assert error.problem == "not JSON: duplicate key 'gate'"
    assert parse('{"format": 1, "host": "lab1", "batch": 3}', "lab1")["batch"] == 3


@pytest.mark.parametrize("status", STATUSES.split(", "))
def test_every_status_parses(status: str) -> None:
    assert parse(json.dumps({"format": 1, "host": "h", "status": status}), "h")["status"] == status


# ------------------------------------------------------------------------------ file names


@pytest.mark.parametrize("host", ["lab1", "lab1.example.com", "a_b:c@d-E9", "..."])
def test_good_host_names_name_a_file(host: str, tmp_path: Path) -> None:
    assert file_name(host) == f"{host}.json"
    assert record_path(str(tmp_path), host) == tmp_path / f"{host}.json"


@pytest.mark.parametrize(
    ("host", "shown"), [(".", "'.'"), ("..", "'..'"), ("a b", "'a b'"), (5, "5"), ("x/", "'x/'")]
)
def test_bad_host_names_are_refused(host: object, shown: str) -> None:
    with pytest.raises(StateError) as caught:
        file_name(host)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"host name {shown} cannot name a state file (letters, digits and _ . : @ - only)"
    )


# ------------------------------------------------------------------------------ files: read


def test_read_record_returns_the_record_and_its_text(tmp_path: Path) -> None:
    path = tmp_path / "lab1.json"
    assert read_record(path, "lab1") == (None, "")
    text = render(lab("lab1"))
    path.write_text(text, encoding="utf-8")
    assert read_record(path, "lab1") == (lab("lab1"), text)


def test_read_record_of_a_file_at_and_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "lab1.json"
    text = render(lab("lab1"))
    path.write_text(text + " " * (MAX_RECORD_BYTES - len(text)), encoding="utf-8")
    assert read_record(path, "lab1")[0] == lab("lab1")
    path.write_text(text + " " * (MAX_RECORD_BYTES + 5 - len(text)), encoding="utf-8")
    with pytest.raises(StateError) as caught:
        read_record(path, "lab1")
    assert str(caught.value) == (
        f"rollout record {path}: larger than {MAX_RECORD_BYTES} bytes: not a record"
    )


def test_read_record_names_what_is_wrong_with_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError) as caught:
        read_record(tmp_path / "file" / "lab1.json", "lab1")
    assert (str(caught.value), caught.value.path) == (
        f"state_dir {tmp_path / 'file'} is not a directory",
        None,
    )
    (tmp_path / "lab1.json").mkdir()
    with pytest.raises(StateError) as caught:
        read_record(tmp_path / "lab1.json", "lab1")
    assert caught.value.path == str(tmp_path / "lab1.json")
    assert caught.value.problem == "cannot read: Is a directory"


# ------------------------------------------------------------------------------ files: scan


def test_scan_picks_record_files_only(tmp_path: Path) -> None:
    for record in lab_records():
        (tmp_path / f"{record['host']}.json").write_text(render(record))
    (tmp_path / ".lab1.json").write_text("hidden")
    (tmp_path / ".lab1.lock").write_text("")
    (tmp_path / "lab1.json.txt").write_text("not a record")
    (tmp_path / "a b.json").write_text("{}")
    (tmp_path / "zz.json").write_text(render(new_record("other")))
    records, bad = scan(tmp_path, None)
    assert records == lab_records()
    assert bad == [
        (
            tmp_path / "a b.json",
            "not a record file name: host name 'a b' cannot name a state file "
            "(letters, digits and _ . : @ - only)",
        ),
        (tmp_path / "zz.json", "host: the record belongs to 'other', not zz"),
    ]
    assert scan(str(tmp_path), ("lab2", "zz")) == (
        [lab("lab2")],
        [(tmp_path / "zz.json", "host: the record belongs to 'other', not zz")],
    )
    assert scan(tmp_path, []) == ([], [])


def test_scan_names_a_directory_it_cannot_list(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert scan(loop, None) == ([], [(loop, "cannot list: Too many levels of symbolic links")])


# ----------------------------------------------------------------------------- files: write


def test_ensure_dir_makes_missing_folders_and_leaves_existing_ones(tmp_path: Path) -> None:
    state_dir = tmp_path / "a" / "b" / "state"
    ensure_dir(str(state_dir))
    assert state_dir.stat().st_mode & 0o777 == 0o700
    ensure_dir(state_dir)  # again: nothing to do
    kept = tmp_path / "kept"
    kept.mkdir(mode=0o755)
    os.chmod(kept, 0o755)
    ensure_dir(kept)
    assert kept.stat().st_mode & 0o777 == 0o755
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", tmp_path / "file" / "state"):
        with pytest.raises(StateError) as caught:
            ensure_dir(bad)
        assert str(caught.value) == f"state_dir {bad} is not a directory"


def test_write_record_replaces_the_file_through_a_hidden_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state" / "lab1.json"
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(sorted(os.listdir(path.parent)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_record(str(path), "first ✓\n")
    write_record(path, "second\n")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert sorted(os.listdir(path.parent)) == ["lab1.json"]
    assert [len(names) for names in seen] == [1, 2]
    assert seen[0][0].startswith(".rollout.") and seen[1][0].startswith(".rollout.")
    assert seen[1][1] == "lab1.json"


def test_write_record_that_fails_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab1.json"
    path.write_text("old\n")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left on device"):
        write_record(path, "new\n")
    assert os.listdir(tmp_path) == ["lab1.json"]
    assert path.read_text() == "old\n"


def test_an_interrupt_right_after_the_rename_keeps_the_new_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab1.json"
    real_replace = os.replace

    def replace_then_interrupt(src: str, dst: Path) -> None:
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_record(path, "new\n")
    assert os.listdir(tmp_path) == ["lab1.json"]
    assert path.read_text() == "new\n"


# ------------------------------------------------------------------------------ files: apply


def test_apply_in_check_mode_touches_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    old, old_text, new, changed = apply(
        state_dir, "lab1", T0, values={"status": "installing"}, write=False
    )
    assert (old, old_text, changed) == (None, "", True)
    assert new == {**new_record("lab1"), "status": "installing", "updated_at": T0_ISO}
    assert not state_dir.exists()


def test_apply_writes_changes_under_the_lock_and_only_changes(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    _, _, first, changed = apply(state_dir, "lab1", T0, values={"status": "installing"})
    assert changed is True
    path = state_dir / "lab1.json"
    assert sorted(os.listdir(state_dir)) == [".lab1.lock", "lab1.json"]
    assert path.read_text() == render(first)
    inode = path.stat().st_ino
    old, old_text, again, changed = apply(state_dir, "lab1", T0 + 9, values={"batch": None})
    assert (old, old_text, again, changed) == (first, render(first), first, False)
    assert path.stat().st_ino == inode  # not rewritten
    apply(state_dir, "lab1", T0 + 9, values={"status": "done"}, write=False)
    assert path.read_text() == render(first)


def test_apply_passes_every_part_of_the_request(tmp_path: Path) -> None:
    result = {"passed": True, "checks": []}
    _, _, new, _ = apply(
        tmp_path, "lab1", T0, values={"batch": 3}, phase="gate", event="start", result=result
    )
    assert new == {
        **new_record("lab1"),
        "batch": 3,
        "phases": {"gate": {"started": T0_ISO, "passed": True, "checks": []}},
        "updated_at": T0_ISO,
    }
    assert read_record(tmp_path / "lab1.json", "lab1")[0] == new


def test_apply_takes_the_clock_when_no_time_is_given(tmp_path: Path) -> None:
    apply(tmp_path, "lab1", phase="install", event="start")
    _, _, new, _ = apply(tmp_path, "lab1", phase="install", event="finish")
    entry = new["phases"]["install"]
    assert 0.0 <= entry["seconds"] <= 5.0
    assert abs(parse_iso(entry["finished"]) - parse_iso(new["updated_at"])) == 0
