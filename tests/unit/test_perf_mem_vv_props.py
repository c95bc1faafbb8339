"""Properties of the ``perf mem record -vv`` reader over the real logs.

Every mangling below is asserted to change its input (a property compared with itself
proves nothing), and every test asserts something about the answer, not only that parsing
did not raise: the events DAMON gets are opened attr blocks, the answer is consistent with
itself, and the mail transformations or the noise a workload prints do not change it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import (
    Kind,
    ParseResult,
    damon_events,
    parse,
    summarize,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "perf-mem-logs"
FIXTURES: dict[str, str] = {
    p.name: p.read_text(encoding="utf-8") for p in sorted(LOGS.glob("*.log"))
}
NAMES = sorted(FIXTURES)
ALL_LINES = sorted({line for text in FIXTURES.values() for line in text.splitlines()})
# Logs in which some event opened (the others answer "not supported" whatever one does).
WITH_EVENTS = [name for name in NAMES if parse(FIXTURES[name]).opened_events]

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TRICKY_LINES = [
    "-" * 60,
    "perf_event_attr:",
    "  { sample_period, sample_freq }",
    "  {",
    "  { bp_addr, config1 } 0x",
    "  config 0x" + "f" * 80,
    "  size " + "9" * 5000,
    "  type 4 (",
    "  sample_type 0xffffffffffffffffff",
    "  sample_type |||",
    "(mem-loads",
    "sys_perf_event_open: pid 1  cpu 0  group_fd 99  flags 0x8 = 99",
    "sys_perf_event_open: pid -1  cpu -1  group_fd -1  flags 0x8 = -1",
    "sys_perf_event_open failed, error -" + "9" * 30,
    "sys_perf_event_open failed, error -3",
    "decreasing precise_ip by one (-1)",
    "Error:",
    "failed: ",
    "x: failed: y",
    "Failure to open event '' on PMU '' which will be removed.",
    "Opening:",
    "> > >",
    "\u2028\u00b2\u0663",
]

# Lines perf and the workload print between the attr blocks, copied from the real logs:
# the reader skips them wherever they land.
NOISE_LINES = [
    "libperf: idx 0: mmapping fd 24",
    "libperf: idx 10: set output fd 22 -> 14",
    "affinity: SYS",
    "Synthesizing id index",
    "Synthesizing TSC conversion information",
    "[ perf record: Woken up 5 times to write data ]",
    "[ perf record: Captured and wrote 0.002 MB p2.data (25 samples) ]",
]
assert all(line in ALL_LINES for line in NOISE_LINES)


def check(result: ParseResult) -> dict[str, Any]:
    """What holds for the answer to any input; returns the default summary."""
    json.dumps(result.to_dict())
    assert result.opened_events == [b for b in result.blocks if b.opened]
    for block in result.opened_events:
        # opened: some open returned an fd, and perf did not drop the event
        assert any(o.fd is not None and o.fd >= 0 for o in block.opens) and not block.removed
    opened = {(b.pmu_hint, b.type, b.config, b.config1, b.config2) for b in result.opened_events}
    kinds: tuple[Kind, ...] = ("loads", "stores", "all")
    for kind in kinds:
        summary = summarize(result, kind)
        json.dumps(summary)
        assert summary["supported"] is bool(summary["damon_perf_events"])
        assert (summary["reason"] is None) is summary["supported"]
        assert len(summary["events"]) == len(result.opened_events)
        events = damon_events(result, kind)
        assert [e.to_dict() for e in events] == summary["damon_perf_events"]
        for event in events:
            # DAMON's events are a subset of the opened attr blocks, with their values
            assert (event.pmu, event.type, event.config, event.config1, event.config2) in opened
        types = [e.type for e in events if e.role != "data"]
        if kind != "all":
            assert len(types) == len(set(types)), "one load or store event per PMU"
    default: dict[str, Any] = summarize(result)
    return default


def events_of(text: str) -> tuple[list[dict[str, Any]], list[tuple[int, int, int, int]]]:
    result = parse(text)
    check(result)
    return (
        summarize(result, "all")["damon_perf_events"],
        [(b.type, b.config, b.config1, b.config2) for b in result.opened_events],
    )


def collapse(text: str) -> str:
    return "\n".join(re.sub(r"\s+", " ", line).strip() for line in text.splitlines())


def indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# Logs in which collapsing the padding changes a line (4 of the 11 are already collapsed:
# short failure logs and the RFC example, which lost its padding in the mail archive).
COLLAPSIBLE = [n for n in NAMES if collapse(FIXTURES[n]).splitlines() != FIXTURES[n].splitlines()]


def test_the_properties_cover_the_logs() -> None:
    assert len(COLLAPSIBLE) == 7, COLLAPSIBLE
    assert len(WITH_EVENTS) >= 3, WITH_EVENTS


@SETTINGS
@given(st.text())
def test_arbitrary_text_is_answered_consistently(text: str) -> None:
    check(parse(text))


@SETTINGS
@given(st.lists(st.sampled_from(ALL_LINES + TRICKY_LINES), min_size=1, max_size=80))
def test_perf_like_lines_are_answered_consistently(lines: list[str]) -> None:
    check(parse("\n".join(lines)))


@pytest.mark.parametrize("name", COLLAPSIBLE)
def test_collapsed_whitespace_gives_the_same_answer(name: str) -> None:
    text = FIXTURES[name]
    collapsed = collapse(text)
    assert collapsed.splitlines() != text.splitlines()
    assert check(parse(collapsed)) == check(parse(text))
    assert parse(collapsed).to_dict() == parse(text).to_dict()


@SETTINGS
@given(
    st.sampled_from(NAMES),
    st.text(alphabet=" \t", min_size=1, max_size=6),
    st.sampled_from(["", "> ", "> > ", ">\t"]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_indented_quoted_gives_the_same_answer(
    name: str, pad: str, quote: str, newline: str
) -> None:
    text = FIXTURES[name]
    changed = indent(text, quote + pad).replace("\n", newline)
    assert changed != text
    assert parse(changed).to_dict() == parse(text).to_dict()


@SETTINGS
@given(
    st.sampled_from(WITH_EVENTS),
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(NOISE_LINES)), min_size=1),
)
def test_noise_lines_do_not_change_the_events(name: str, inserts: list[tuple[int, str]]) -> None:
    lines = FIXTURES[name].splitlines()
    noisy = list(lines)
    for where, noise in inserts:
        noisy.insert(where % (len(noisy) + 1), noise)
    assert len(noisy) > len(lines)
    assert events_of("\n".join(noisy)) == events_of(FIXTURES[name])


@SETTINGS
@given(st.sampled_from(WITH_EVENTS), st.integers(2, 3))
def test_a_log_printed_again_gives_the_same_events(name: str, times: int) -> None:
    text = FIXTURES[name]
    again = "\n".join([text] * times)
    assert len(again) > len(text)
    events, _opened = events_of(again)
    assert events == events_of(text)[0]


@SETTINGS
@given(st.sampled_from(NAMES), st.data())
def test_a_log_cut_short_keeps_the_blocks_it_shows(name: str, data: st.DataObject) -> None:
    lines = FIXTURES[name].splitlines()
    cut = data.draw(st.integers(0, len(lines) - 1), label="cut")
    short = "\n".join(lines[:cut])
    assert short != FIXTURES[name]
    full, part = parse(FIXTURES[name]), parse(short)
    check(part)
    assert len(part.blocks) <= len(full.blocks)
    for mine, theirs in zip(part.blocks[:-1], full.blocks, strict=False):
        # every block before the cut is whole: the same event values
        assert (mine.type, mine.config, mine.config1, mine.config2, mine.sample_type) == (
            theirs.type,
            theirs.config,
            theirs.config1,
            theirs.config2,
            theirs.sample_type,
        )


@SETTINGS
@given(st.sampled_from(NAMES), st.data())
def test_truncated_logs_are_answered_consistently(name: str, data: st.DataObject) -> None:
    text = FIXTURES[name]
    start = data.draw(st.integers(0, len(text)), label="start")
    end = data.draw(st.integers(start, len(text)), label="end")
    assume((start, end) != (0, len(text)))
    assert text[start:end] != text
    check(parse(text[start:end]))


@SETTINGS
@given(st.sampled_from(NAMES), st.randoms(use_true_random=False))
def test_shuffled_logs_are_answered_consistently(name: str, rnd: Any) -> None:
    lines = FIXTURES[name].splitlines()
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assume(shuffled != lines)
    check(parse("\n".join(shuffled)))


@SETTINGS
@given(st.sampled_from(NAMES), st.data())
def test_lines_dropped_are_answered_consistently(name: str, data: st.DataObject) -> None:
    lines = FIXTURES[name].splitlines()
    keep = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    assume(not all(keep))
    kept = [line for line, k in zip(lines, keep, strict=True) if k]
    assert len(kept) < len(lines)
    check(parse("\n".join(kept)))
