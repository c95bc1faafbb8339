"""Properties of the ``perf mem record -vv`` reader: it never raises, and the mail
transformations of a log (indentation, collapsed padding) do not change the answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.perf_mem_vv import Kind, damon_events, parse, summarize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "perf-mem-logs"
FIXTURES: dict[str, str] = {
    p.name: p.read_text(encoding="utf-8") for p in sorted(LOGS.glob("*.log"))
}
NAMES = sorted(FIXTURES)
ALL_LINES = sorted({line for text in FIXTURES.values() for line in text.splitlines()})

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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


def exercise(text: str) -> dict[str, Any]:
    """Everything a caller does with a log; must not raise, must be JSON-ready."""
    result = parse(text)
    json.dumps(result.to_dict())
    kinds: tuple[Kind, ...] = ("loads", "stores", "all")
    for kind in kinds:
        summary = summarize(result, kind)
        json.dumps(summary)
        assert summary["supported"] is bool(summary["damon_perf_events"])
        assert (summary["reason"] is None) is summary["supported"]
        for event in damon_events(result, kind):
            assert set(event.to_dict()) == {"pmu", "type", "config", "config1", "config2"}
    default: dict[str, Any] = summarize(result)
    return default


def collapse(text: str) -> str:
    return "\n".join(re.sub(r"\s+", " ", line).strip() for line in text.splitlines())


def indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


@SETTINGS
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    exercise(text)


@SETTINGS
@given(st.lists(st.sampled_from(ALL_LINES + TRICKY_LINES), max_size=80))
def test_perf_like_lines_never_raise(lines: list[str]) -> None:
    exercise("\n".join(lines))


@SETTINGS
@given(st.sampled_from(NAMES), st.data())
def test_truncated_logs_never_raise(name: str, data: st.DataObject) -> None:
    text = FIXTURES[name]
    start = data.draw(st.integers(0, len(text)), label="start")
    end = data.draw(st.integers(start, len(text)), label="end")
    exercise(text[start:end])


@SETTINGS
@given(st.sampled_from(NAMES), st.randoms(use_true_random=False))
def test_shuffled_logs_never_raise(name: str, rnd: Any) -> None:
    lines = FIXTURES[name].splitlines()
    rnd.shuffle(lines)
    exercise("\n".join(lines))


@SETTINGS
@given(st.sampled_from(NAMES), st.data())
def test_lines_dropped_never_raise(name: str, data: st.DataObject) -> None:
    lines = FIXTURES[name].splitlines()
    keep = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    exercise("\n".join(line for line, k in zip(lines, keep, strict=True) if k))


@pytest.mark.parametrize("name", NAMES)
def test_collapsed_whitespace_gives_the_same_answer(name: str) -> None:
    text = FIXTURES[name]
    assert exercise(collapse(text)) == exercise(text)
    assert parse(collapse(text)).to_dict() == parse(text).to_dict()


@SETTINGS
@given(
    st.sampled_from(NAMES),
    st.text(alphabet=" \t", max_size=6),
    st.sampled_from(["", "> ", "> > ", ">\t"]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_indented_quoted_gives_the_same_answer(
    name: str, pad: str, quote: str, newline: str
) -> None:
    text = FIXTURES[name]
    changed = indent(text, quote + pad).replace("\n", newline)
    assert parse(changed).to_dict() == parse(text).to_dict()
