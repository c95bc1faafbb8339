"""Hostile and broken input for the ``perf mem record -vv`` reader: it never raises, always
returns the documented shape, and its cost stays linear (timings: tests/bench/bench_parse.py).

The fuzz test is seeded from the real logs (tests/fixtures/perf-mem-logs) and mutates them
the way logs really get broken: lines lost, repeated or reordered, a run cut short, bytes
damaged in transfer (decoded as perf_mem_facts and the CLI decode them, invalid UTF-8
replaced).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import (
    AttrBlock,
    Kind,
    ParseResult,
    damon_events,
    not_supported_reason,
    parse,
    summarize,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "perf-mem-logs"
RAW: dict[str, bytes] = {p.name: p.read_bytes() for p in sorted(LOGS.glob("*.log"))}
NAMES = sorted(RAW)
KINDS: tuple[Kind, ...] = ("loads", "stores", "all")

RESULT_KEYS = {
    "blocks",
    "fallbacks",
    "error",
    "errors",
    "version_hints",
    "opened_events",
    "is_vv_log",
    "unattached_opens",
}
BLOCK_KEYS = {
    "index",
    "name",
    "fields",
    "annotations",
    "type",
    "config",
    "config1",
    "config2",
    "sample_type",
    "read_format",
    "precise_ip",
    "freq",
    "sample_freq_or_period",
    "pmu_hint",
    "alias_hint",
    "opens",
    "opened",
    "removed",
    "group_leader",
    "leader_index",
    "messages_before",
}
OPEN_KEYS = {"pid", "cpu", "group_fd", "flags", "fd", "errno"}
SUMMARY_KEYS = {"supported", "reason", "events", "damon_perf_events"}
SUMMARY_EVENT_KEYS = {
    "pmu",
    "type",
    "config",
    "config1",
    "config2",
    "sample_type",
    "precise_ip",
    "alias",
    "role",
    "group_leader",
}
DAMON_EVENT_KEYS = {"pmu", "type", "config", "config1", "config2"}


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def assert_shape(result: ParseResult) -> None:
    """The documented shape of :meth:`ParseResult.to_dict` and :func:`summarize`."""
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == RESULT_KEYS
    assert isinstance(data["is_vv_log"], bool)
    assert _str_or_none(data["error"])
    assert (data["error"] is None) is (data["errors"] == [])
    for key in ("fallbacks", "errors", "version_hints"):
        assert all(isinstance(x, str) for x in data[key])
    blocks = data["blocks"]
    assert [b["index"] for b in blocks] == list(range(len(blocks)))
    assert [b["index"] for b in data["opened_events"]] == [
        b["index"] for b in blocks if b["opened"]
    ]
    for block in blocks:
        assert set(block) == BLOCK_KEYS
        for key in ("type", "config", "config1", "config2", "precise_ip"):
            assert _int(block[key]), (key, block[key])
        assert _int(block["sample_freq_or_period"])
        for key in ("opened", "removed", "group_leader", "freq"):
            assert isinstance(block[key], bool)
        for key in ("name", "pmu_hint", "alias_hint"):
            assert _str_or_none(block[key])
        assert all(isinstance(x, str) for x in block["sample_type"] + block["read_format"])
        assert all(_int(v) or isinstance(v, list) for v in block["fields"].values())
        for attempt in block["opens"]:
            assert set(attempt) == OPEN_KEYS
    for attempt in data["unattached_opens"]:
        assert set(attempt) == OPEN_KEYS
    for kind in KINDS:
        summary = json.loads(json.dumps(summarize(result, kind)))
        assert set(summary) == SUMMARY_KEYS
        assert summary["supported"] is bool(summary["damon_perf_events"])
        if summary["supported"]:
            assert summary["reason"] is None
        else:
            assert isinstance(summary["reason"], str) and summary["reason"]
            assert summary["reason"] == not_supported_reason(result, kind)
        assert len(summary["events"]) == len(result.opened_events)
        for event in summary["events"]:
            assert set(event) == SUMMARY_EVENT_KEYS
        for event in summary["damon_perf_events"]:
            assert set(event) == DAMON_EVENT_KEYS
            assert all(_int(event[k]) for k in ("type", "config", "config1", "config2"))
        assert [e.to_dict() for e in damon_events(result, kind)] == summary["damon_perf_events"]


# --------------------------------------------------------------- the reproducers, fixed


def test_a_line_of_1000_fields_is_read_without_recursion() -> None:
    text = "perf_event_attr:\n" + " ".join(f"config 0x{i:x}" for i in range(1000)) + "\n"
    result = parse(text)
    assert_shape(result)
    (block,) = result.blocks
    assert block.config == 999  # the last of the repeated field, as for a block
    assert block.fields == {"config": 999}


def test_a_line_of_100000_mixed_fields() -> None:
    fields = ("type 4 (cpu)", "config 0x1cd (mem-loads)", "{ bp_addr, config1 } 0x1f", "freq 1")
    text = "perf_event_attr:\n" + ", ".join(fields[i % 4] for i in range(100_000)) + "\n"
    result = parse(text)
    assert_shape(result)
    (block,) = result.blocks
    # the annotation of the first field runs to the last ')' of the line (perf never prints
    # two annotated fields on one line); the fields after that ')' are read
    assert block.fields == {"type": 4, "config1": 0x1F, "freq": 1}
    assert block.annotations["type"].startswith("cpu), config 0x1cd (mem-loads), {")


def test_40000_distinct_error_lines_are_all_kept() -> None:
    lines = [f"perf: failed: event 'cpu/mem-stores-{i}/P' not supported" for i in range(40_000)]
    result = parse("\n".join(lines))
    assert_shape(result)
    assert len(result.errors) == 40_000
    assert result.errors[0] == "failed: event 'cpu/mem-stores-0/P' not supported"
    assert summarize(result)["reason"] == "event 'cpu/mem-stores-0/P' not supported"


def test_repeated_error_lines_are_kept_once() -> None:
    result = parse("failed: memory events not supported\n" * 10_000)
    assert result.errors == ["failed: memory events not supported"]


def test_many_opening_names_and_removals() -> None:
    block = (
        "Opening: cpu/e{i}/\n------------------------------------------------------------\n"
        "perf_event_attr:\n  type 4\n  config 0x{i:x}\n  sample_type IP|ADDR\n"
        "  sample_period 1000\n------------------------------------------------------------\n"
        "sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8 = {fd}\n"
    )
    text = "".join(block.format(i=i, fd=i + 3) for i in range(5000))
    text += "".join(
        f"Failure to open event 'cpu/e{i}/' on PMU 'cpu' which will be removed.\n"
        for i in range(0, 5000, 2)
    )
    result = parse(text)
    assert_shape(result)
    assert [b.removed for b in result.blocks[:4]] == [True, False, True, False]
    assert len(result.opened_events) == 2500


@pytest.mark.parametrize("value", [b"perf_event_attr:\n", None, 42, ["x"]])
def test_what_is_not_text_is_not_a_log(value: Any) -> None:
    result = parse(value)
    assert_shape(result)
    assert not result.is_vv_log and result.blocks == []


# --------------------------------------------------------------- fuzz from the real logs


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@st.composite
def mutated_log(draw: st.DrawFn) -> tuple[str, bytes, bytes]:
    """(fixture name, original bytes, mutated bytes): 1 to 8 mutations of a real log."""
    name = draw(st.sampled_from(NAMES), label="log")
    data = RAW[name]
    for _ in range(draw(st.integers(1, 8), label="mutations")):
        lines = _lines(data)
        op = draw(st.sampled_from(["drop", "duplicate", "swap", "truncate", "inject"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "drop" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines[i:i] = [lines[i]] * draw(st.integers(1, 50))
        elif op == "swap" and lines:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        if op in ("drop", "duplicate", "swap"):
            data = b"\n".join(lines)
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        else:
            at = draw(st.integers(0, len(data)))
            junk = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=16),
                    st.sampled_from(
                        [b"\x00", b"\xff\xfe", b"\r", b"\x1b[31m", b"\xe2\x80\xa8", b"(", b")",
                         b"{", b"}", b" = ", b"-" * 60, b"perf_event_attr:", b", ", b"0x"]
                    ),
                )
            )  # fmt: skip
            data = data[:at] + junk + data[at:]
    return name, RAW[name], data


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(mutated_log())
def test_mutated_real_logs_never_raise_and_keep_the_shape(case: tuple[str, bytes, bytes]) -> None:
    _name, original, data = case
    assume(data != original)
    text = data.decode("utf-8", errors="replace")  # as perf_mem_facts and the CLI read
    result = parse(text)
    assert_shape(result)
    for block in result.opened_events:
        assert isinstance(block, AttrBlock) and block.opened
    # the same bytes read with surrogate escapes (lone surrogates in the str) parse too
    assert_shape(parse(data.decode("utf-8", errors="surrogateescape")))
