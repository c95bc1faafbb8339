"""Contract tests for the ``perf mem record -vv`` reader: exact values for each rule.

The logs here are synthetic: rows built the way tests/unit/test_perf_mem_vv.py builds them
(perf's ``%-32s %s`` layout, the documented open and error lines of docs/perf-mem-vv.md),
for the cases no real fixture in tests/fixtures/perf-mem-logs covers.  Real fixtures are
used where one shows the rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import (
    HINT_BARE,
    HINT_OMITTED,
    HINT_PERF_TYPE,
    HINT_PERF_TYPE_AMBIGUOUS,
    HINT_PMU_NAMES,
    REASON_NEVER_OPENED,
    REASON_NO_ADDR,
    AttrBlock,
    damon_events,
    event_role,
    not_supported_reason,
    parse,
    summarize,
)

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "perf-mem-logs"
SEP = "-" * 60
ADDR_TYPES = "IP|TID|TIME|ADDR|PERIOD|DATA_SRC|WEIGHT_STRUCT"


def load(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


def row(name: str, value: str) -> str:
    return f"{name:<32} {value}"


def attr(*lines: str) -> str:
    return "\n".join([SEP, "perf_event_attr:", *(f"  {line}" for line in lines), SEP]) + "\n"


def open_ok(fd: int, cpu: int = 0, group_fd: int = -1, pid: int = 1) -> str:
    return f"sys_perf_event_open: pid {pid}  cpu {cpu}  group_fd {group_fd}  flags 0x8 = {fd}\n"


def open_fail(errno: int, cpu: int = 0, pid: int = 1) -> str:
    return (
        f"sys_perf_event_open: pid {pid}  cpu {cpu}  group_fd -1  flags 0x8\n"
        f"sys_perf_event_open failed, error -{errno}\n"
    )


def sampling(type_: str, config: str, *extra: str, sample_type: str = ADDR_TYPES) -> str:
    """A sampling event block: type, config, period 4000, the given sample_type."""
    return attr(
        row("type", type_),
        row("config", config),
        row("{ sample_period, sample_freq }", "4000"),
        row("sample_type", sample_type),
        *extra,
    )


def one_block(*lines: str) -> AttrBlock:
    (block,) = parse(attr(*lines)).blocks
    return block


def roles(text: str, kind: str = "all") -> list[tuple[int, int, str]]:
    return [(e.type, e.config, e.role) for e in damon_events(parse(text), kind)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- to_dict


def test_to_dict_has_every_value() -> None:
    text = (
        open_ok(2, pid=9)
        + "switching off cloexec flag\n"
        + "Opening: cpu/mem-loads,ldlat=30/P\n"
        + sampling(
            "4 (cpu)",
            "0x1cd (mem-loads)",
            row("read_format", "ID|LOST"),
            row("freq", "1"),
            row("precise_ip", "3"),
            row("{ bp_addr, config1 }", "0x1f"),
            row("{ bp_len, config2 }", "0x2"),
        )
        + open_ok(5)
        + open_fail(3, cpu=1)
        + "failed: something else\n"
    )
    result = parse(text)
    assert result.to_dict() == {
        "blocks": [
            {
                "index": 0,
                "name": "cpu/mem-loads,ldlat=30/P",
                "fields": {
                    "type": 4,
                    "config": 0x1CD,
                    "sample_freq": 4000,
                    "sample_type": ADDR_TYPES.split("|"),
                    "read_format": ["ID", "LOST"],
                    "freq": 1,
                    "precise_ip": 3,
                    "config1": 0x1F,
                    "config2": 2,
                },
                "annotations": {"type": "cpu", "config": "mem-loads"},
                "type": 4,
                "config": 0x1CD,
                "config1": 0x1F,
                "config2": 2,
                "sample_type": ADDR_TYPES.split("|"),
                "read_format": ["ID", "LOST"],
                "precise_ip": 3,
                "freq": True,
                "sample_freq_or_period": 4000,
                "pmu_hint": "cpu",
                "alias_hint": "mem-loads",
                "opens": [
                    {"pid": 1, "cpu": 0, "group_fd": -1, "flags": 8, "fd": 5, "errno": None},
                    {"pid": 1, "cpu": 1, "group_fd": -1, "flags": 8, "fd": None, "errno": 3},
                ],
                "opened": True,
                "removed": False,
                "group_leader": False,
                "leader_index": None,
                "messages_before": ["switching off cloexec flag"],
            }
        ],
        "fallbacks": ["switching off cloexec flag"],
        "error": "failed: something else",
        "errors": ["failed: something else"],
        "version_hints": [HINT_PMU_NAMES],
        "opened_events": [result.blocks[0].to_dict()],
        "is_vv_log": True,
        "unattached_opens": [
            {"pid": 9, "cpu": 0, "group_fd": -1, "flags": 8, "fd": 2, "errno": None}
        ],
    }
    (event,) = damon_events(result)
    assert event.to_dict() == {
        "pmu": "cpu",
        "type": 4,
        "config": 0x1CD,
        "config1": 0x1F,
        "config2": 2,
    }


# --------------------------------------------------------------------------- values


def test_flag_bits_beyond_the_known_names_are_hex() -> None:
    block = one_block(
        row("type", "4"),
        row("sample_type", "0x2000008"),
        row("read_format", "0x21"),
        row("branch_sample_type", "0x100001"),
    )
    assert block.sample_type == ["ADDR", "0x2000000"]
    assert block.read_format == ["TOTAL_TIME_ENABLED", "0x20"]
    assert block.fields["branch_sample_type"] == ["USER", "0x100000"]


def test_flag_number_wider_than_64_bits_keeps_the_low_64() -> None:
    block = one_block(row("sample_type", "0x10000000000000008"))
    assert block.sample_type == ["ADDR"]


def test_flag_names_with_spaces_around_bars() -> None:
    block = one_block(row("sample_type", "IP | ADDR |PHYS_ADDR"))
    assert block.sample_type == ["IP", "ADDR", "PHYS_ADDR"]
    assert "sample_type" not in one_block(row("sample_type", "|ADDR")).fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0X1CD", 0x1CD),
        ("0x1CD", 0x1CD),
        ("461", 461),
        ("-1", -1),
        ("-0x10", -16),
        ("0x1cd (mem-loads)", 0x1CD),
    ],
)
def test_numbers_decimal_hex_and_signed(value: str, expected: int) -> None:
    assert one_block(row("config", value)).fields["config"] == expected


@pytest.mark.parametrize("value", ["0x1cdg", "12abc", "0x", "x12", "- 1"])
def test_malformed_numbers_are_not_fields(value: str) -> None:
    assert one_block(row("type", "4"), row("config", value)).fields == {"type": 4}


def test_annotations_empty_unclosed_nested() -> None:
    assert one_block(row("config", "0x1cd ()")).annotations == {}
    assert one_block(row("config", "0x1cd (  )")).alias_hint is None
    assert one_block(row("config", "0x1cd (mem-loads")).annotations == {"config": "mem-loads"}
    assert one_block(row("config", "0x1cd  ( a (b) )  ")).annotations == {"config": "a (b)"}
    assert one_block(row("type", "4(cpu)")).annotations == {"type": "cpu"}


def test_several_fields_on_one_line_with_commas() -> None:
    block = one_block("disabled 1,, inherit 1 ,precise_ip 2", "config1 0x1f, bp_len 0x4")
    assert block.fields == {
        "disabled": 1,
        "inherit": 1,
        "precise_ip": 2,
        "config1": 0x1F,
        "config2": 4,
    }


def test_a_line_that_stops_being_fields_keeps_the_first() -> None:
    block = one_block("disabled 1, ???, inherit 1")
    assert block.fields == {"disabled": 1}


def test_separators_between_name_and_value() -> None:
    block = one_block("type: 4", "config=0x1cd", "precise_ip\t2", "freq")
    assert block.fields == {"type": 4, "config": 0x1CD, "precise_ip": 2}


def test_brace_names() -> None:
    block = one_block(
        "{sample_period,sample_freq} 100",
        "{ wakeup_events, wakeup_watermark }  7",
        "{ foo, bar } 1",
        "{ bp_addr, config1",
    )
    assert block.fields == {"sample_period": 100, "wakeup_events": 7}
    assert block.sample_freq_or_period == 100


def test_unknown_names_only_in_perfs_layout() -> None:
    long_name = "an_unknown_attribute_name_of_40_chars_xx"
    block = one_block(
        row("type", "4"),
        f"{'x' * 20}{' ' * 13}1",  # 20 + 13 = 33 columns: perf's layout
        f"{'y' * 20}{' ' * 12}2",  # 32 columns: not
        row("Mixed_Case", "3"),
        f"{long_name}=5",
        f"{long_name} 6 (x)",
        row("z_unknown", "7 trailing"),
        row("w_unknown", "0x8"),
        row("v_unknown", "9 (x)y"),
    )
    assert block.fields == {"type": 4, "x" * 20: 1, long_name: 6, "w_unknown": 8}
    assert block.annotations == {long_name: "x"}


# --------------------------------------------------------------------------- lines


def test_short_dash_lines_do_not_end_a_block() -> None:
    text = (
        f"{SEP}\nperf_event_attr:\n"
        + "  "
        + row("type", "4")
        + "\n"
        + "-" * 19
        + "\n  "
        + row("config", "0x1cd")
        + "\n"
        + "-" * 20
        + "\n  "
        + row("precise_ip", "3")
        + "\n"
    )
    (block,) = parse(text).blocks
    assert block.fields == {"type": 4, "config": 0x1CD}


def test_wrapped_annotation_line() -> None:
    text = (
        f"{SEP}\nperf_event_attr:\n  {row('type', '4')}\n  (cpu)\n  (second)\n"
        f"  {row('config', '0x1cd (mem-loads)')}\n  (ignored)\n{SEP}\n"
    )
    (block,) = parse(text).blocks
    assert block.annotations == {"type": "cpu", "config": "mem-loads"}
    assert block.pmu_hint == "cpu"


def test_fields_on_the_perf_event_attr_line() -> None:
    (block,) = parse(f"perf_event_attr: {row('type', '11 (ibs_op)')}\n").blocks
    assert block.fields == {"type": 11} and block.pmu_hint == "ibs_op"
    (empty,) = parse("perf_event_attr:   garbage here\n").blocks
    assert empty.fields == {}


def test_mail_quote_marks_are_stripped() -> None:
    text = "\n".join(f"> > {line}" for line in attr(row("type", "4")).splitlines())
    assert parse(text).blocks[0].fields == {"type": 4}
    assert parse(">\n>  \n").blocks == []


def test_opening_names_and_comment_lines() -> None:
    text = (
        "Opening:   \n"
        + attr(row("type", "4"))
        + "# comment line\n"
        + "Opening: cpu/mem-stores/P\n"
        + attr(row("type", "4"))
    )
    first, second = parse(text).blocks
    assert (first.name, second.name) == (None, "cpu/mem-stores/P")


def test_paragraph_is_capped_at_25_lines() -> None:
    lines = [f"line {i}" for i in range(30)]
    result = parse("Error:\n" + "\n".join(lines) + "\n")
    assert result.errors == [" ".join(lines[:25])]


def test_error_first_line_and_event_syntax_error() -> None:
    result = parse("Error: bad thing\nmore text\n\nevent syntax error: 'x'\n  \\___ here\n")
    assert result.errors == ["bad thing more text", "event syntax error: 'x' \\___ here"]
    assert result.error == "bad thing more text; event syntax error: 'x' \\___ here"


def test_duplicate_errors_are_kept_once() -> None:
    text = "Workload failed: No such file\nWorkload failed: No such file\n"
    assert parse(text).errors == ["Workload failed: No such file"]


def test_a_new_error_header_ends_a_paragraph() -> None:
    result = parse("Error:\nfirst\nError:\nsecond\n")
    assert result.errors == ["first", "second"]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("failed: x", "failed: x"),
        ("perf: failed: x", "failed: x"),
        (": failed: x", "failed: x"),
        ("a: failed: x", "failed: x"),
    ],
)
def test_failed_lines(line: str, error: str) -> None:
    result = parse(line + "\n")
    assert result.errors == [error] and result.is_vv_log


@pytest.mark.parametrize("line", ["xfailed: x", "a:failed: x", "it failed: x"])
def test_not_failed_lines(line: str) -> None:
    result = parse(line + "\n")
    assert result.errors == [] and not result.is_vv_log


def test_failed_line_ends_the_block() -> None:
    text = f"{SEP}\nperf_event_attr:\n  {row('type', '4')}\nfailed: x\n  {row('config', '1')}\n"
    (block,) = parse(text).blocks
    assert block.fields == {"type": 4}


def test_paranoid_line_starts_a_paragraph_once() -> None:
    text = (
        "perf_event_paranoid setting is 4\nsee the docs\n\n"
        "Check /proc/sys/kernel/perf_event_paranoid again\n"
    )
    result = parse(text)
    assert result.errors == ["perf_event_paranoid setting is 4 see the docs"]
    assert result.is_vv_log


def test_fallback_phrases_any_case() -> None:
    text = (
        "Trying to fall back to excluding guest samples\n"
        "Something FALLING BACK TO other\n"
        "plain line\n"
        "Using PERF_SAMPLE_READ / :S modifier\n"
        "switching off sample_id_all\n"
        "decreasing precise_ip by one (1)\n"
    )
    result = parse(text)
    assert result.fallbacks == [
        "Trying to fall back to excluding guest samples",
        "Something FALLING BACK TO other",
        "Using PERF_SAMPLE_READ / :S modifier",
        "switching off sample_id_all",
        "decreasing precise_ip by one (1)",
    ]
    assert not result.is_vv_log


def test_fallback_line_ends_a_paragraph_and_the_block() -> None:
    text = (
        f"{SEP}\nperf_event_attr:\n  {row('type', '4')}\nswitching off x\n  {row('config', '1')}\n"
    )
    (block,) = parse(text).blocks
    assert block.fields == {"type": 4}


# --------------------------------------------------------------------------- opens


def test_open_line_number_forms() -> None:
    text = (
        attr(row("type", "4"))
        + "sys_perf_event_open: pid -1  cpu 3  group_fd -1  flags 0X8 = 7\n"
        + "sys_perf_event_open: pid 2  cpu 1  group_fd -1  flags 8 = -1\n"
        + "sys_perf_event_open: pid 2 cpu 1 group_fd -1 flags 0x10=9\n"
    )
    (block,) = parse(text).blocks
    assert [o.to_dict() for o in block.opens] == [
        {"pid": -1, "cpu": 3, "group_fd": -1, "flags": 8, "fd": 7, "errno": None},
        {"pid": 2, "cpu": 1, "group_fd": -1, "flags": 8, "fd": -1, "errno": None},
        {"pid": 2, "cpu": 1, "group_fd": -1, "flags": 16, "fd": 9, "errno": None},
    ]
    assert [o.succeeded for o in block.opens] == [True, False, True]


def test_open_with_fd_zero_succeeded() -> None:
    (block,) = parse(sampling("4", "0x1cd") + open_ok(0)).blocks
    assert block.opens[0].succeeded and block.opened


def test_failed_open_without_fd_is_reported_without_errno() -> None:
    text = (
        sampling("4", "0x1cd") + "sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8 = -1\n"
    )
    result = parse(text)
    assert result.opened_events == []
    assert not_supported_reason(result) == (
        "no event opened: sys_perf_event_open failed with no fd returned"
    )


def test_unknown_errno_has_no_name() -> None:
    result = parse(sampling("4", "0x1cd") + open_fail(99))
    assert (
        not_supported_reason(result) == "no event opened: sys_perf_event_open failed with error -99"
    )


def test_last_errno_of_all_attempts_is_reported() -> None:
    text = sampling("4", "0x1cd") + open_fail(95) + sampling("4", "0x1cd") + open_fail(22)
    result = parse(text)
    assert [b.last_errno for b in result.blocks] == [95, 22]
    assert not_supported_reason(result) == (
        "no event opened: sys_perf_event_open failed with error -22 (EINVAL)"
    )


def test_last_errno_skips_later_attempts_without_errno() -> None:
    text = sampling("4", "0x1cd") + open_fail(13) + open_ok(4, cpu=1)
    (block,) = parse(text).blocks
    assert block.last_errno == 13 and block.opened
    assert parse(sampling("4", "0x1cd") + open_ok(3)).blocks[0].last_errno is None


def test_failed_line_before_any_block() -> None:
    text = "sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8\n"
    text += "sys_perf_event_open failed, error -13\nsys_perf_event_open failed, error -1\n"
    result = parse(text)
    assert [o.to_dict() for o in result.unattached_opens] == [
        {"pid": 1, "cpu": 0, "group_fd": -1, "flags": 8, "fd": None, "errno": 13}
    ]
    assert result.is_vv_log and result.blocks == []


def test_failed_line_after_a_failed_open_adds_an_attempt() -> None:
    text = sampling("4", "0x1cd") + open_fail(95) + "sys_perf_event_open failed, error 22\n"
    (block,) = parse(text).blocks
    assert [(o.pid, o.cpu, o.group_fd, o.flags, o.fd, o.errno) for o in block.opens] == [
        (1, 0, -1, 8, None, 95),
        (-1, -1, -1, 0, None, 22),
    ]


def test_failed_line_on_the_open_line() -> None:
    text = sampling("4", "0x1cd")
    text += "sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8"
    text += " sys_perf_event_open failed, error -2\n"
    (block,) = parse(text).blocks
    assert [(o.fd, o.errno) for o in block.opens] == [(None, 2)]


def test_precise_retry_to_zero_drops_the_field() -> None:
    text = (
        sampling("4", "0x1cd", row("precise_ip", "1"))
        + open_fail(95)
        + "decreasing precise_ip by one (0)\n"
        + open_ok(3)
    )
    (block,) = parse(text).blocks
    assert block.precise_ip == 0 and "precise_ip" not in block.fields
    assert block.opened


def test_precise_retry_negative_is_zero() -> None:
    text = (
        sampling("4", "0x1cd", row("precise_ip", "1"))
        + open_fail(95)
        + "decreasing precise_ip by one (-1)\n"
        + open_ok(3)
    )
    (block,) = parse(text).blocks
    assert block.precise_ip == 0 and "precise_ip" not in block.fields


def test_precise_retry_applies_to_its_own_block_only() -> None:
    text = (
        sampling("4", "0x1cd", row("precise_ip", "3"))
        + open_fail(95)
        + "decreasing precise_ip by one (2)\n"
        + sampling("4", "0x1cd", row("precise_ip", "2"))
        + open_ok(3)
    )
    first, second = parse(text).blocks
    assert (first.precise_ip, second.precise_ip) == (3, 2)
    assert second.messages_before == ["decreasing precise_ip by one (2)"]


def test_precise_line_before_any_block_is_only_a_fallback() -> None:
    text = "decreasing precise_ip by one (1)\n" + sampling("4", "0x1cd") + open_ok(3)
    (block,) = parse(text).blocks
    assert block.precise_ip == 0 and block.messages_before == ["decreasing precise_ip by one (1)"]


def test_group_member_of_its_own_fd_is_no_leader() -> None:
    text = sampling("4", "0x1cd") + open_ok(3) + open_ok(4, cpu=1, group_fd=3)
    (block,) = parse(text).blocks
    assert not block.group_leader and block.leader_index is None


def test_group_fd_of_unknown_fd_is_ignored() -> None:
    text = sampling("4", "0x1cd") + open_ok(4, group_fd=3)
    (block,) = parse(text).blocks
    assert not block.group_leader and block.leader_index is None


def test_failed_fd_is_not_an_owner() -> None:
    text = (
        sampling("4", "0x8203")
        + "sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8 = -1\n"
        + sampling("4", "0x1cd")
        + open_ok(5, group_fd=-1)
    )
    first, second = parse(text).blocks
    assert not first.group_leader and second.leader_index is None


def test_group_leader_index() -> None:
    text = (
        sampling("4", "0x1")
        + open_ok(3)
        + sampling("4", "0x8203")
        + open_ok(4)
        + sampling("4", "0x1cd")
        + open_ok(5, group_fd=4)
    )
    blocks = parse(text).blocks
    assert [b.group_leader for b in blocks] == [False, True, False]
    assert [b.leader_index for b in blocks] == [None, None, 1]


# --------------------------------------------------------------------------- removal


def _removal_log(failure: str) -> str:
    """cpu_core aux (cpu 1 ends with ESRCH, so it counts as opened), then cpu_atom loads."""
    return (
        sampling("4 (cpu_core)", "0x1cd (mem-loads)", row("{ bp_addr, config1 }", "0x1f"))
        + open_ok(5)
        + open_fail(3, cpu=1)
        + sampling("10 (cpu_atom)", "0x5d0 (mem-loads)", row("{ bp_addr, config1 }", "0x1f"))
        + open_ok(6)
        + failure
    )


def test_removal_by_pmu_name() -> None:
    result = parse(
        _removal_log(
            "Failure to open event 'cpu_core/mem-loads/' on PMU 'cpu_core' which will be removed.\n"
        )
    )
    assert [b.removed for b in result.blocks] == [True, False]
    assert [e.pmu for e in damon_events(result)] == ["cpu_atom"]


def test_removal_of_unknown_event_and_pmu_keeps_opened_blocks() -> None:
    result = parse(
        _removal_log("Failure to open event 'x/y/' on PMU 'nope' which will be removed.\n")
    )
    assert [b.removed for b in result.blocks] == [False, False]
    assert [e.pmu for e in damon_events(result)] == ["cpu_core", "cpu_atom"]
    assert result.errors == ["Failure to open event 'x/y/' on PMU 'nope' which will be removed."]


def test_removal_without_pmu_takes_the_last_failed_block() -> None:
    text = (
        sampling("4 (cpu)", "0x1cd")
        + open_ok(3)
        + sampling("4 (cpu)", "0x82d0")
        + open_ok(4)
        + sampling("10 (cpu_atom)", "0x5d0")
        + open_ok(5)
        + open_fail(3, cpu=1)
        + "Failure to open event 'cpu_atom/mem-loads/' which will be removed.\n"
    )
    result = parse(text)
    assert [b.removed for b in result.blocks] == [False, False, True]


def test_removal_without_pmu_spares_a_succeeded_last_open() -> None:
    text = (
        sampling("4", "0x1cd")
        + open_fail(3)
        + sampling("4", "0x82d0")
        + open_fail(3)
        + open_ok(4, cpu=1)
        + "Failure to open event 'x' which will be removed.\n"
    )
    assert [b.removed for b in parse(text).blocks] == [False, False]


def test_removal_without_blocks_or_opens() -> None:
    assert parse("Failure to open event 'x' which will be removed.\n").blocks == []
    (block,) = parse(attr(row("type", "4")) + "Failure to open event 'x'.\n").blocks
    assert not block.removed


# --------------------------------------------------------------------------- derived


def test_wakeup_union_follows_watermark() -> None:
    block = one_block(row("watermark", "1"), row("{ wakeup_events, wakeup_watermark }", "1"))
    assert block.fields == {"watermark": 1, "wakeup_watermark": 1}
    block = one_block(row("watermark", "0"), row("{ wakeup_events, wakeup_watermark }", "3"))
    assert block.fields == {"watermark": 0, "wakeup_events": 3}


def test_flag_field_given_as_number_field_is_not_a_list() -> None:
    block = one_block(row("type", "4"), row("precise_ip", "2"))
    assert block.sample_type == [] and block.read_format == []
    assert block.freq is False and block.sample_freq_or_period == 0


def test_pmu_hint_from_a_hardware_config_annotation() -> None:
    block = one_block(
        row("type", "0 (PERF_TYPE_HARDWARE)"), row("config", "0xa00000000 (cpu_atom/cycles/)")
    )
    assert block.pmu_hint == "cpu_atom"
    assert block.alias_hint == "cpu_atom/cycles/"
    assert one_block(row("config", "0x1 (/cycles/)")).pmu_hint is None
    assert one_block(row("config", "0x1 (cycles/)")).pmu_hint is None
    assert one_block(row("config", "0x1 (a/b)")).pmu_hint is None
    assert one_block(row("type", "4 (PERF_TYPE_RAW)")).pmu_hint is None


def test_type_annotation_wins_over_config_annotation() -> None:
    block = one_block(row("type", "8 (cpu_core)"), row("config", "0x1 (cpu_atom/x/)"))
    assert block.pmu_hint == "cpu_core"


@pytest.mark.parametrize(
    ("lines", "hints"),
    [
        ((row("type", "4 (cpu)"), row("config", "0x1cd")), [HINT_PMU_NAMES]),
        ((row("type", "4"), row("config", "0x1cd (mem-loads)")), [HINT_PMU_NAMES]),
        ((row("type", "4"), row("config", "0x1cd (ldlat-loads)")), []),
        ((row("type", "1 (PERF_TYPE_SOFTWARE)"), row("config", "0x9")), [HINT_PERF_TYPE]),
        ((row("type", "4 (PERF_TYPE_RAW)"), row("config", "0x1cd")), [HINT_PERF_TYPE]),
        (
            (row("type", "0 (PERF_TYPE_HARDWARE)"), row("config", "0")),
            [HINT_PERF_TYPE_AMBIGUOUS],
        ),
        ((row("type", "4"), row("config", "0x1cd")), [HINT_BARE]),
        ((row("type", "4"),), [HINT_BARE, HINT_OMITTED]),
        ((row("config", "0x1cd"),), [HINT_BARE, HINT_OMITTED]),
        ((row("config", "0 (x)"),), [HINT_OMITTED]),
    ],
)
def test_version_hints(lines: tuple[str, ...], hints: list[str]) -> None:
    assert parse(attr(*lines)).version_hints == hints


def test_no_hints_without_blocks_and_none_for_empty_blocks() -> None:
    assert parse("failed: x\n").version_hints == []
    assert parse(attr()).version_hints == [HINT_BARE]


# --------------------------------------------------------------------------- roles


def _block(text: str) -> AttrBlock:
    (block,) = parse(text + open_ok(3)).blocks
    return block


@pytest.mark.parametrize(
    ("type_", "config", "extra", "role"),
    [
        ("1", "0x9", (), "software"),
        ("2 (tracepoint)", "0x9", (), "software"),
        ("9 (kprobe)", "0x0", (), "software"),
        ("0", "0x1cd", (), "other"),
        ("3", "0x1cd", (), "other"),
        ("5", "0x1cd", (), "other"),
        ("4", "0x1cd", (), "load"),
        ("4", "0x10000001cd", (), "load"),
        ("4", "0x100b", (), "load"),
        ("4", "0x5d0", (), "load"),
        ("4", "0x82d0", (), "store"),
        ("4", "0x2cd", (), "store"),
        ("4", "0x6d0", (), "store"),
        ("4 (cpu_core)", "0x82d0", (), "store"),
        ("10 (cpu_atom)", "0x5d0", (), "load"),
        ("4", "0x8203", (), "aux"),
        ("4", "0x1000008203", (), "aux"),
        ("4 (cpu)", "0x8203", (), "aux"),
        ("10 (ibs_op)", "0x8203", (), "data"),
        ("4", "0x1234 (ldlat-loads)", (), "load"),
        ("4", "0x1234 (ldlat-stores)", (), "store"),
        ("4", "0x1234 (MEM-LOADS)", (), "load"),
        ("12 (cpu_atom)", "0x1234 (mem-loads-aux)", (), "aux"),
        ("4 (cpu)", "0x1234", (), "data"),
        ("4", "0x1234", (row("{ bp_addr, config1 }", "0x3"),), "load"),
        ("10", "0x1234", (row("{ bp_addr, config1 }", "0x3"),), "data"),
        ("10 (cpu_atom)", "0x1234", (row("{ bp_addr, config1 }", "0x3"),), "load"),
        ("10 (uncore)", "0x1234", (row("{ bp_addr, config1 }", "0x3"),), "data"),
        ("10 (uncore)", "0x1cd", (), "data"),
        ("10 (arm_spe_0)", "0x1cd", (row("{ bp_addr, config1 }", "0x3"),), "data"),
        ("10 (ibs_op)", "0x1234 (store-ish)", (), "data"),
        ("10 (uncore)", "0x1234 (some-store-event)", (), "store"),
        ("10 (uncore)", "0x1234 (some-load-event)", (), "load"),
        ("10 (uncore)", "0x1234 (perf_count_load)", (), "data"),
        ("10 (uncore)", "0x1234 (other)", (), "data"),
    ],
)
def test_event_role(type_: str, config: str, extra: tuple[str, ...], role: str) -> None:
    assert event_role(_block(sampling(type_, config, *extra))) == role


def test_event_role_without_addr_is_other() -> None:
    assert event_role(_block(sampling("10 (ibs_op)", "0", sample_type="IP|TID"))) == "other"
    assert event_role(_block(sampling("10 (ibs_op)", "0", sample_type="IP|PHYS_ADDR"))) == "data"


def test_aux_without_annotation_is_not_damons_in_any_kind() -> None:
    text = sampling("4", "0x8203") + open_ok(3) + sampling("4", "0x1cd") + open_ok(4, group_fd=3)
    assert roles(text, "all") == [(4, 0x1CD, "load")]


# --------------------------------------------------------------------------- choice


def test_stores_kind_falls_back_to_data_and_all_lists_data() -> None:
    text = (
        sampling("10 (ibs_op)", "0")
        + open_ok(3)
        + sampling("4", "0x1cd")
        + open_ok(4)
        + sampling("4", "0x82d0")
        + open_ok(5)
        + sampling("4", "0x1d3")
        + open_ok(6)
    )
    assert roles(text, "loads") == [(10, 0, "data"), (4, 0x1CD, "load")]
    assert roles(text, "stores") == [(10, 0, "data"), (4, 0x82D0, "store")]
    assert roles(text, "all") == [
        (10, 0, "data"),
        (4, 0x1CD, "load"),
        (4, 0x82D0, "store"),
        (4, 0x1D3, "data"),
    ]


def test_all_kind_is_in_log_order_within_a_pmu() -> None:
    text = (
        sampling("4", "0x1d3")
        + open_ok(3)
        + sampling("4", "0x82d0")
        + open_ok(4)
        + sampling("4", "0x1cd")
        + open_ok(5)
    )
    assert roles(text, "all") == [(4, 0x1D3, "data"), (4, 0x82D0, "store"), (4, 0x1CD, "load")]
    assert roles(text, "loads") == [(4, 0x1CD, "load")]
    assert roles(text, "stores") == [(4, 0x82D0, "store")]


def test_stores_kind_without_store_or_data_gives_nothing_for_that_pmu() -> None:
    text = sampling("4", "0x1cd") + open_ok(3) + sampling("10 (ibs_op)", "0") + open_ok(4)
    assert roles(text, "stores") == [(10, 0, "data")]


def test_loads_kind_takes_data_before_store() -> None:
    text = sampling("10", "0x82d0") + open_ok(3) + sampling("10", "0x1234") + open_ok(4)
    assert roles(text, "loads") == [(10, 0x1234, "data")]


def test_zero_period_or_unopened_blocks_are_not_candidates() -> None:
    zero = attr(row("type", "4"), row("config", "0x1cd"), row("sample_type", ADDR_TYPES))
    assert roles(zero + open_ok(3)) == []
    assert roles(sampling("4", "0x1cd")) == []
    assert roles(sampling("4", "0x1cd", sample_type="IP|TID") + open_ok(3)) == []
    assert roles(sampling("1", "0x9") + open_ok(3)) == []


def test_damon_event_pmu_role_and_values() -> None:
    text = sampling(
        "8 (arm_spe_0)",
        "0x1",
        row("{ bp_addr, config1 }", "0x2"),
        row("{ bp_len, config2 }", "0x1e"),
    )
    (event,) = damon_events(parse(text + open_ok(3)))
    assert (event.pmu, event.type, event.config, event.config1, event.config2, event.role) == (
        "arm_spe_0",
        8,
        1,
        2,
        0x1E,
        "data",
    )


# --------------------------------------------------------------------------- reasons


def test_reason_event_not_supported_from_the_nehalem_fixture() -> None:
    result = parse(load("nehalem-xeon-X5570-github-OpenChannelSSD-linux-48.log"))
    assert not_supported_reason(result) == "event 'cpu/mem-stores/P' not supported"


def test_reason_is_the_error_text_otherwise() -> None:
    result = parse("Workload failed: No such file or directory\n")
    assert not_supported_reason(result) == "Workload failed: No such file or directory"
    assert summarize(result)["reason"] == "Workload failed: No such file or directory"


def test_reason_memory_events_not_supported_any_case() -> None:
    result = parse("perf: failed: Memory Events Not Supported\n")
    assert not_supported_reason(result) == (
        "memory events not supported by this CPU/PMU (no PEBS/IBS/SPE; e.g. a VM)"
    )


def test_reason_never_opened_and_addr_note() -> None:
    assert not_supported_reason(parse(sampling("4", "0x1cd"))) == REASON_NEVER_OPENED
    with_addr = parse(sampling("4", "0x1cd") + open_fail(22))
    assert not_supported_reason(with_addr) == (
        "no event opened: sys_perf_event_open failed with error -22 (EINVAL)"
    )
    aux_only = parse(sampling("4", "0x8203") + open_fail(22))
    assert not_supported_reason(aux_only) == (
        "no event opened: sys_perf_event_open failed with error -22 (EINVAL); "
        "no event samples data addresses (ADDR/PHYS_ADDR)"
    )


def test_reason_for_stores_and_loads_lists_the_opened_roles() -> None:
    text = sampling("4", "0x1cd") + open_ok(3) + sampling("4", "0x1234 (x)") + open_ok(4)
    result = parse(text)
    assert not_supported_reason(result, "stores") == (
        "no store event opened (opened data-address events: data, load)"
    )
    assert not_supported_reason(parse(sampling("1", "0x9") + open_ok(3))) == REASON_NO_ADDR


def test_summarize_reason_is_none_when_supported() -> None:
    text = sampling("4", "0x1cd") + open_ok(3)
    summary = summarize(parse(text), "loads")
    assert summary["supported"] is True and summary["reason"] is None
    unsupported = summarize(parse(text), "stores")
    assert unsupported["supported"] is False
    assert unsupported["reason"] == "no store event opened (opened data-address events: load)"
    assert unsupported["events"][0]["role"] == "load"


def test_an_unclosed_annotation_after_a_closed_one() -> None:
    block = one_block("type 4 (cpu), config 0x1cd (mem-loads")
    assert block.fields == {"type": 4, "config": 0x1CD}
    assert block.annotations == {"type": "cpu", "config": "mem-loads"}


@pytest.mark.parametrize(
    ("type_", "config"), [("4", "0x82d0"), ("11 (ibs_op)", "0"), ("4", "0x1cd")]
)
def test_reason_failed_data_address_event_has_no_addr_note(type_: str, config: str) -> None:
    result = parse(sampling(type_, config) + open_fail(95))
    assert not_supported_reason(result) == (
        "no event opened: sys_perf_event_open failed with error -95 (EOPNOTSUPP)"
    )


def test_to_dict_lists_are_copies() -> None:
    result = parse(sampling("4", "0x1cd") + open_ok(3))
    data = result.to_dict()
    data["blocks"][0]["fields"]["sample_type"].append("X")
    data["blocks"][0]["sample_type"].append("X")
    data["blocks"][0]["messages_before"].append("X")
    data["fallbacks"].append("X")
    block = result.blocks[0]
    assert block.fields["sample_type"] == ADDR_TYPES.split("|")
    assert block.sample_type == ADDR_TYPES.split("|")
    assert block.messages_before == [] and result.fallbacks == []


def test_period_one_is_sampling() -> None:
    text = attr(
        row("type", "4"),
        row("config", "0x1cd"),
        row("{ sample_period, sample_freq }", "1"),
        row("sample_type", ADDR_TYPES),
    )
    assert roles(text + open_ok(3)) == [(4, 0x1CD, "load")]


def test_trailing_comma_after_a_field() -> None:
    assert one_block("disabled 1,", "inherit 1 ,").fields == {"disabled": 1, "inherit": 1}


def test_opening_name_belongs_to_the_next_block_only() -> None:
    text = "Opening: cpu/mem-loads/P\n" + attr(row("type", "4")) + attr(row("type", "4"))
    first, second = parse(text).blocks
    assert (first.name, second.name) == ("cpu/mem-loads/P", None)
    assert second.to_dict()["name"] is None


def test_quote_marks_are_stripped_at_the_start_only() -> None:
    assert parse("> Error: a > b >> c\n").errors == ["a > b >> c"]


def test_brace_name_after_another_field_on_the_line() -> None:
    block = one_block("disabled 1, { sample_period, sample_freq } 100")
    assert block.fields == {"disabled": 1, "sample_period": 100}


def test_dash_lines_inside_an_error_paragraph_are_skipped() -> None:
    assert parse(f"Error:\nfirst\n{SEP}\nsecond\n").errors == ["first second"]


def test_group_leader_with_fd_zero() -> None:
    text = sampling("4", "0x8203") + open_ok(0) + sampling("4", "0x1cd") + open_ok(4, group_fd=0)
    leader, member = parse(text).blocks
    assert leader.group_leader and member.leader_index == 0


def test_removal_by_opening_name_without_pmu() -> None:
    text = (
        "Opening: cpu/a/\n"
        + sampling("4", "0x1cd")
        + open_ok(3)
        + open_fail(3, cpu=1)
        + "Opening: cpu/b/\n"
        + sampling("4", "0x82d0")
        + open_ok(4)
        + "Failure to open event 'cpu/a/' which will be removed.\n"
    )
    assert [b.removed for b in parse(text).blocks] == [True, False]


def test_a_fallback_line_is_no_error() -> None:
    result = parse("failed: x, falling back to y\n")
    assert result.fallbacks == ["failed: x, falling back to y"] and result.errors == []


def test_two_brace_names_on_one_line() -> None:
    block = one_block("{ bp_addr, config1 } 0x1f, { bp_len, config2 } 0x2")
    assert block.fields == {"config1": 0x1F, "config2": 2}


def test_bp_names_are_renamed_on_the_general_path() -> None:
    block = one_block("bp_addr: 0x1f", "bp_len 0x2 (x)")
    assert block.fields == {"config1": 0x1F, "config2": 2}
    assert (block.config1, block.config2) == (0x1F, 2)


def test_failed_at_the_start_wins_over_a_later_one() -> None:
    assert parse("failed: x: failed: y\n").errors == ["failed: x: failed: y"]


def test_annotation_line_before_any_field_is_ignored() -> None:
    text = f"{SEP}\nperf_event_attr:\n  (x)\n  {row('type', '4')}\n{SEP}\n"
    (block,) = parse(text).blocks
    assert block.annotations == {} and block.fields == {"type": 4}


def test_brace_name_without_space_before_the_value() -> None:
    assert one_block("{sample_period,sample_freq}100").fields == {"sample_period": 100}


def test_one_character_line_in_a_block() -> None:
    assert one_block(row("type", "4"), "x", "-").fields == {"type": 4}


def test_pmu_hint_from_an_empty_terms_config_annotation() -> None:
    assert one_block(row("config", "0 (ibs_op//)")).pmu_hint == "ibs_op"
