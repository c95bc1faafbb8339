"""Contract tests for the PMU sysfs reader and event resolver: exact values and messages.

Sysfs trees come from pmu_trees.py (BUILT from documented values, not captured), plus
small PMUs made with its make_pmu for the single rules.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.pmu import (
    FormatTerm,
    Pmu,
    PmuError,
    ResolvedEvent,
    find_pmu,
    parse_format,
    pmu_by_type,
    pmu_sysfs_summary,
    read_pmus,
    resolve_event,
)
from pmu_trees import build_hybrid, build_icelake_server, build_vm, make_pmu


def _numbers(event: ResolvedEvent) -> tuple[int, int, int, int, int]:
    return (event.type, event.config, event.config1, event.config2, event.config3)


def _one(sysfs: Path, name: str) -> Pmu:
    pmu = find_pmu(read_pmus(str(sysfs)), name)
    assert pmu is not None
    return pmu


def _error(spec: str, pmus: list[Pmu]) -> str:
    with pytest.raises(PmuError) as err:
        resolve_event(spec, pmus)
    return str(err.value)


@pytest.fixture
def icelake(tmp_path: Path) -> list[Pmu]:
    return read_pmus(str(build_icelake_server(tmp_path / "icelake")))


@pytest.fixture
def hybrid(tmp_path: Path) -> list[Pmu]:
    return read_pmus(str(build_hybrid(tmp_path / "hybrid")))


@pytest.fixture
def small(tmp_path: Path) -> list[Pmu]:
    """One PMU ``p`` (type 30) with formats in every config word and a few aliases."""
    sysfs = tmp_path / "sys"
    make_pmu(
        sysfs,
        "p",
        30,
        formats={
            "event": "config:0-7",
            "flag": "config:8",
            "split": "config:12-13,20-21",
            "lat": "config1:0-3",
            "c2": "config2:0-7",
            "c3": "config3:0-7",
        },
        events={"ev": "event=0x10", "Mixed": "event=0x11", "par": "event=0x12,lat=?"},
    )
    return read_pmus(str(sysfs))


# ------------------------------------------------------------------ formats


def test_format_term_values() -> None:
    term = parse_format("split", " config1 : 4 - 5 , 1 ,3-4 ")
    assert term.bits == [(4, 5), (1, 1), (3, 4)]
    assert term.positions == [1, 3, 4, 5]
    assert (term.width, term.mask, term.max_value) == (4, 0b111010, 0xF)
    assert term.encode(0b1010) == 0b101000
    assert term.encode(0) == 0
    assert str(term) == "config1:4-5,1,3-4"
    assert term.to_dict() == {
        "name": "split",
        "field": "config1",
        "bits": [[4, 5], [1, 1], [3, 4]],
        "spec": "config1:4-5,1,3-4",
    }


def test_format_encode_refuses_out_of_range() -> None:
    term = parse_format("x", "config:0-3")
    assert term.encode(0xF) == 0xF
    with pytest.raises(PmuError) as err:
        term.encode(0x10)
    assert str(err.value) == (
        "value 0x10 too big for format term 'x' (config:0-3); accepted: 0..0xf"
    )
    with pytest.raises(PmuError, match=r"value -0x1 too big for format term 'x'"):
        term.encode(-1)


def test_format_edges() -> None:
    assert parse_format("a", "config:63").bits == [(63, 63)]
    assert parse_format("a", "config:0-63").max_value == (1 << 64) - 1
    assert parse_format("a", "config2:5-5").bits == [(5, 5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "config4:0",
            "format 'f': 'config4' in 'config4:0' is not a perf_event_attr word this code "
            "knows; accepted: config, config1, config2, config3",
        ),
        (
            "config:0,,1",
            "format 'f': bad bit range '' in 'config:0,,1'; accepted: '<bit>' or '<low>-<high>'",
        ),
        (
            "config:1-2-3",
            "format 'f': bad bit range '1-2-3' in 'config:1-2-3'; "
            "accepted: '<bit>' or '<low>-<high>'",
        ),
        (
            "config:5-4",
            "format 'f': bit range '5-4' in 'config:5-4' is out of order or beyond bit 63; "
            "accepted: 0 <= low <= high <= 63",
        ),
        (
            "config:60-64",
            "format 'f': bit range '60-64' in 'config:60-64' is out of order or beyond bit 63; "
            "accepted: 0 <= low <= high <= 63",
        ),
        (
            " cfg:1 ",
            "format 'f': cannot parse 'cfg:1'; accepted: "
            "'config[N]:<bit>[-<bit>][,...]' such as 'config:0-7' or 'config1:0-15'",
        ),
    ],
)
def test_format_errors(text: str, message: str) -> None:
    with pytest.raises(PmuError) as err:
        parse_format("f", text)
    assert str(err.value) == message


# ------------------------------------------------------------------ sysfs


def test_pmu_to_dict_and_summary(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(
        sysfs,
        "cpu",
        4,
        formats={"event": "config:0-7", "ldlat": "config1:0-15"},
        events={
            "mem-stores": "event=0xd0",
            "mem-loads": "event=0xcd",
            "cycles": "event=0x3c",
        },
        caps={"pmu_name": "icelake", "max_precise": "3"},
    )
    (pmu,) = read_pmus(str(sysfs))
    assert pmu.to_dict() == {
        "name": "cpu",
        "type": 4,
        "pmu_name": "icelake",
        "max_precise": 3,
        "mem_events": {"mem-loads": "event=0xcd", "mem-stores": "event=0xd0"},
        "events": {"cycles": "event=0x3c", "mem-loads": "event=0xcd", "mem-stores": "event=0xd0"},
        "formats": {"event": "config:0-7", "ldlat": "config1:0-15"},
        "caps": {"max_precise": "3", "pmu_name": "icelake"},
        "notes": [],
    }
    assert list(pmu.mem_events) == ["mem-loads", "mem-stores"]
    assert pmu_sysfs_summary([pmu]) == [
        {
            "name": "cpu",
            "type": 4,
            "pmu_name": "icelake",
            "max_precise": 3,
            "mem_events": {"mem-loads": "event=0xcd", "mem-stores": "event=0xd0"},
        }
    ]


def test_notes_for_skipped_files(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    pmu_dir = make_pmu(
        sysfs,
        "cpu",
        4,
        formats={"event": "config:0-7", "bad": "config9:1"},
        events={"empty": "", "ok": "event=1", "ok.scale": "2", "ok.unit": "MiB"},
        caps={"pmu_name": "x"},
    )
    (pmu_dir / "format" / "binary").write_bytes(b"\xff")
    (pmu_dir / "events" / "binary").write_bytes(b"\xfe")
    (pmu_dir / "events" / ".hidden").write_text("event=2\n")
    (pmu_dir / "events" / "ok.per-pkg").write_text("1\n")
    (pmu_dir / "events" / "ok.snapshot").write_text("1\n")
    (pmu_dir / "caps" / "binary").write_bytes(b"\xfd")
    (pmu,) = read_pmus(str(sysfs))
    assert pmu.events == {"ok": "event=1"}
    assert pmu.caps == {"pmu_name": "x"}
    assert sorted(pmu.formats) == ["event"]
    assert pmu.notes == [
        "format 'bad': 'config9' in 'config9:1' is not a perf_event_attr word this code "
        "knows; accepted: config, config1, config2, config3; skipped",
        "format/binary: unreadable, skipped",
        "events/binary: unreadable or empty, skipped",
        "events/empty: unreadable or empty, skipped",
    ]


def test_long_attribute_is_cut_at_4096_bytes(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    pmu_dir = make_pmu(sysfs, "cpu", 4, events={"long": "x"})
    (pmu_dir / "events" / "long").write_text("event=1," + "a" * 5000)
    (pmu,) = read_pmus(str(sysfs))
    assert len(pmu.events["long"]) == 4096


def test_type_limits_and_spaces(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "max", 0xFFFFFFFF)
    make_pmu(sysfs, "over", 0x100000000)
    make_pmu(sysfs, "zero", 0)
    make_pmu(sysfs, "signed", 5)
    (sysfs / "devices" / "signed" / "type").write_text("-5\n")
    pmus = read_pmus(str(sysfs))
    assert [(p.name, p.type) for p in pmus] == [("max", 0xFFFFFFFF), ("zero", 0)]


def test_max_precise_and_pmu_name_caps(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "a", 20, caps={"max_precise": " 2 "})
    make_pmu(sysfs, "b", 21, caps={"max_precise": "-1", "pmu_name": "skl"})
    make_pmu(sysfs, "c", 22)
    pmus = read_pmus(str(sysfs))
    assert [(p.name, p.pmu_name, p.max_precise) for p in pmus] == [
        ("a", None, 2),
        ("b", "skl", None),
        ("c", None, None),
    ]
    assert [p.caps for p in pmus] == [
        {"max_precise": "2"},
        {"max_precise": "-1", "pmu_name": "skl"},
        {},
    ]


def test_hidden_and_plain_entries_are_not_pmus(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "b", 8)
    make_pmu(sysfs, ".hidden", 9)
    make_pmu(sysfs, "a", 7)
    (sysfs / "bus" / "event_source" / "devices" / "file").write_text("7\n")
    assert [p.name for p in read_pmus(str(sysfs))] == ["a", "b"]


def test_default_sysfs_root_is_sys() -> None:
    assert [p.to_dict() for p in read_pmus()] == [p.to_dict() for p in read_pmus("/sys")]
    if os.path.isdir("/sys/bus/event_source/devices/software"):
        assert find_pmu(read_pmus(), "software") is not None


def test_mem_only_reading(tmp_path: Path) -> None:
    sysfs = build_icelake_server(tmp_path)
    pmus = read_pmus(str(sysfs), all_events=False)
    cpu = find_pmu(pmus, "cpu")
    assert cpu is not None
    assert cpu.events == {
        "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
        "mem-stores": "event=0xd0,umask=0x82",
    }
    assert cpu.events_dir == str(sysfs / "bus" / "event_source" / "devices" / "cpu" / "events")
    software = find_pmu(pmus, "software")
    assert software is not None and software.events == {} and software.events_dir is None
    cpu.events["mem-loads"] = "changed"
    assert cpu.find_alias("CPU-CYCLES") == ("cpu-cycles", "event=0x3c")
    assert cpu.events_dir is None
    assert cpu.events["mem-loads"] == "changed"  # read aliases are kept
    assert cpu.events["instructions"] == "event=0xc0"
    cpu.load_all_events()  # a second call reads nothing
    assert cpu.events["mem-loads"] == "changed"
    assert cpu.find_alias("nope") is None


def test_mem_only_reading_without_a_mem_event_file(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "cpu", 4, events={"mem-loads": "event=0xcd", "cycles": "event=0x3c"})
    (cpu,) = read_pmus(str(sysfs), all_events=False)
    assert cpu.events == {"mem-loads": "event=0xcd"} and cpu.notes == []


def test_find_alias_case_rules() -> None:
    pmu = Pmu(name="p", type=30, events={"Mixed": "event=1", "lower": "event=2"})
    assert pmu.find_alias("Mixed") == ("Mixed", "event=1")
    assert pmu.find_alias("MIXED") == ("Mixed", "event=1")
    assert pmu.find_alias("LOWER") == ("lower", "event=2")
    assert pmu.find_alias("other") is None


def test_zeroing_pmus() -> None:
    names = ["intel_pt", "cs_etm", "arm_spe_0", "arm_spe", "cpu", "xintel_pt", "cs_etm_x"]
    zero = [Pmu(name=name, type=1).zeroes_terms for name in names]
    assert zero == [True, True, True, True, False, False, False]


def test_find_pmu_and_pmu_by_type_take_the_first() -> None:
    first, second = Pmu(name="a", type=9), Pmu(name="a", type=9)
    assert find_pmu([first, second], "a") is first
    assert pmu_by_type([first, second], 9) is first
    assert find_pmu([], "a") is None and pmu_by_type([], 9) is None


# ------------------------------------------------------------------ resolving


def test_resolved_event_to_dict_has_no_config3(small: list[Pmu]) -> None:
    event = resolve_event("p/event=1,c2=2,c3=3,lat=4/", small)
    assert _numbers(event) == (30, 1, 4, 2, 3)
    assert event.to_dict() == {"pmu": "p", "type": 30, "config": 1, "config1": 4, "config2": 2}
    assert event.modifiers == ""


def test_config_words_each(small: list[Pmu]) -> None:
    event = resolve_event("p/config=1,config1=2,config2=3,config3=0xffffffffffffffff/", small)
    assert _numbers(event) == (30, 1, 2, 3, (1 << 64) - 1)


def test_split_format_value(small: list[Pmu]) -> None:
    assert resolve_event("p/split=0xf/", small).config == 0x303000
    assert resolve_event("p/split=0x5/", small).config == 0x101000


def test_or_of_repeated_terms_on_a_normal_pmu(small: list[Pmu]) -> None:
    assert resolve_event("p/event=0x1,event=0x2/", small).config == 0x3


def test_zeroing_pmu_keeps_other_fields(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "intel_pt", 8, formats={"a": "config:0-3", "b": "config:4-7"})
    pmus = read_pmus(str(sysfs))
    assert resolve_event("intel_pt/a=0xf,b=0x3,a=0x1/", pmus).config == 0x31


def test_one_bit_term_without_value(small: list[Pmu]) -> None:
    assert resolve_event("p/flag/", small).config == 0x100
    assert resolve_event("p/flag=1/", small).config == 0x100
    assert resolve_event("p/flag=0/", small).config == 0


def test_number_forms(small: list[Pmu]) -> None:
    assert resolve_event("p/event=0X1f/", small).config == 0x1F
    assert resolve_event("p/event=010/", small).config == 10
    assert resolve_event("p/config=0xffffffffffffffff/", small).config == (1 << 64) - 1
    assert _error("p/event=0x/", small) == (
        "term 'event=0x' in event 'p/event=0x/' needs a number for PMU p; "
        "accepted: decimal or 0x hex, 0..0xff"
    )
    assert _error("p/event=0xg/", small).startswith("term 'event=0xg' in event")
    assert _error("p/event=-1/", small).startswith("term 'event=-1' in event")
    assert _error("p/config=0x10000000000000000/", small) == (
        "value 0x10000000000000000 of term 'config' in event "
        "'p/config=0x10000000000000000/' does not fit in 64 bits"
    )


def test_quoted_values_and_commas(small: list[Pmu]) -> None:
    event = resolve_event("p/name=\"a,b\",event=1,name='c,d'/", small)
    assert event.config == 1
    assert _error("p/event='5'/", small).startswith("term 'event=5' in event")
    assert _error('p/event="/', small).startswith("event 'p/event=\"/' has no closing '/'")


def test_aliases(small: list[Pmu]) -> None:
    assert resolve_event("p/ev/", small).config == 0x10
    assert resolve_event("p/mixed/", small).config == 0x11
    assert resolve_event("p/EVENT=ev/", small).config == 0x10
    assert resolve_event("p/par,lat=3/", small).config1 == 3
    assert resolve_event("p/lat=3,par/", small).config1 == 3
    assert resolve_event("p/ev,event=0x1/", small).config == 0x11


def test_param_needs_a_number(small: list[Pmu]) -> None:
    assert _error("p/par,lat=x/", small) == (
        "required parameter 'lat' not specified for alias p/events/par "
        "('event=0x12,lat=?') of event 'p/par,lat=x/'; accepted: add 'lat=<number>' to the "
        "event's terms"
    )


def test_event_question_mark_is_not_an_alias(small: list[Pmu]) -> None:
    assert _error("p/event=?/", small) == (
        "required parameter 'event' not specified for event 'p/event=?/'; "
        "accepted: add 'event=<number>' to the event's terms"
    )


def test_raw_terms(small: list[Pmu]) -> None:
    assert resolve_event("p/r1F/", small).config == 0x1F
    assert _error("p/r1f=2/", small).startswith("unknown term 'r1f' for PMU p")
    assert _error("p/rxyz/", small).startswith("unknown term 'rxyz' for PMU p")
    assert _error("p/r/", small).startswith("unknown term 'r' for PMU p")


def test_raw_term_name_that_is_a_format(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "q", 31, formats={"r1": "config:4"})
    assert resolve_event("q/r1/", read_pmus(str(sysfs))).config == 0x10


def test_alias_named_like_a_format_term_is_the_format(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "q", 31, formats={"edge": "config:4"}, events={"edge": "config=0x99"})
    assert resolve_event("q/edge/", read_pmus(str(sysfs))).config == 0x10


def test_non_config_terms_do_not_change_numbers(small: list[Pmu]) -> None:
    spec = (
        "p/event=1,name=x,period=10,freq=1,branch_type=any,time=1,call-graph=dwarf,"
        "stack-size=8,max-stack=3,nr=1,inherit,no-inherit,overwrite,no-overwrite,percore,"
        "aux-output,aux-action=pause,aux-sample-size=4,metric-id=m,cpu=0,ratio-to-prev=x,"
        "driver-config=y/"
    )
    assert _numbers(resolve_event(spec, small)) == (30, 1, 0, 0, 0)


def test_unknown_term_message(small: list[Pmu]) -> None:
    assert _error("p/bogus=1/", small) == (
        "unknown term 'bogus' for PMU p in event 'p/bogus=1/'; format terms: c2, c3, event, "
        "flag, lat, split; event aliases: Mixed, ev, par; also config, config1, config2, config3"
    )


def test_term_errors(small: list[Pmu]) -> None:
    assert _error("p/lat/", small) == (
        "no value assigned for term 'lat' in event 'p/lat/': format config1:0-3 is 4 bits "
        "wide; accepted: 'lat=<0..0xf>'"
    )
    assert _error("p/lat=16/", small) == (
        "value 0x10 too big for term 'lat' (config1:0-3) in event 'p/lat=16/'; accepted: 0..0xf"
    )
    assert _error("p/config1=x/", small) == (
        "term 'config1=x' in event 'p/config1=x/' needs a number; accepted: decimal or 0x hex "
        "up to 64 bits"
    )
    assert _error("p/event= /", small) == (
        "term 'event=' has no value in event 'p/event= /'; accepted: 'event=<number>' "
        "(decimal or 0x hex) or 'event' alone for a one-bit term"
    )
    assert _error("p/a b/", small) == (
        "bad term name 'a b' in event 'p/a b/'; accepted: letters, digits, '_', '.', '-'"
    )
    assert _error("p/event=1,/", small) == (
        "empty term in event 'p/event=1,/'; accepted: 'term' or 'term=value' separated by commas"
    )


def test_empty_and_blank_bodies(small: list[Pmu]) -> None:
    assert _numbers(resolve_event("p//", small)) == (30, 0, 0, 0, 0)
    assert _numbers(resolve_event("p/  /", small)) == (30, 0, 0, 0, 0)


def test_modifiers(small: list[Pmu]) -> None:
    assert resolve_event("p/ev/pp", small).modifiers == "pp"
    assert resolve_event("p/ev/:u", small).modifiers == "u"
    assert resolve_event("p/ev/ S ", small).modifiers == "S"
    assert resolve_event("ev:P", small).modifiers == "P"
    assert resolve_event("ev", small).modifiers == ""
    assert _error("p/ev/P1", small) == (
        "bad modifiers 'P1' in event 'p/ev/P1'; accepted: letters after the closing '/' or "
        "after ':', e.g. '/P', '/pp', '/S', ':P', ':u'"
    )


def test_spec_shape_errors(small: list[Pmu]) -> None:
    assert _error("   ", small) == (
        "empty event; accepted: 'pmu/terms/' such as 'cpu/mem-loads,ldlat=30/P'"
    )
    assert _error("{p/ev/}", small) == (
        "event '{p/ev/}' is a group; accepted: one event such as 'cpu/mem-loads,ldlat=30/P' "
        "(resolve each group member on its own)"
    )
    assert _error("p/ev", small) == (
        "event 'p/ev' has no closing '/'; accepted: 'pmu/terms/' optionally followed by "
        "modifiers, e.g. 'cpu/mem-loads,ldlat=30/P' or 'ibs_op//'"
    )
    assert _error("ev,par", small) == (
        "event 'ev,par' is a list; accepted: one event such as 'cpu/mem-loads/P'"
    )
    assert _error(" /ev/", small) == (
        "event '/ev/' names no PMU before '/'; accepted: 'pmu/terms/' with a PMU from: p"
    )
    assert _error("q/ev/", small) == "unknown PMU 'q' in event 'q/ev/'; PMUs here: p"
    assert resolve_event(" p /ev/", small).pmu == "p"


def test_slash_inside_quotes_is_part_of_the_body(small: list[Pmu]) -> None:
    assert resolve_event("p/name='a/b',event=2/", small).config == 2
    assert resolve_event('p/name="a/b",event=3/', small).config == 3


def test_bare_names(small: list[Pmu], hybrid: list[Pmu], tmp_path: Path) -> None:
    assert _error("bad$name", small) == (
        "bad event 'bad$name'; accepted: 'pmu/terms/' such as 'cpu/mem-loads,ldlat=30/P'"
    )
    assert _error("mem-stores", hybrid) == (
        "event 'mem-stores' is an alias of several PMUs; accepted: one of "
        "'cpu_atom/mem-stores/', 'cpu_core/mem-stores/'"
    )
    assert _error("nope", hybrid) == (
        "event 'nope' is not a sysfs event alias of any PMU here; accepted: the 'pmu/alias/' "
        "or 'pmu/term=value,.../' form with a PMU from: breakpoint, cpu_atom, cpu_core, "
        "kprobe, msr, software, tracepoint, uprobe; PMUs with memory events: cpu_atom, cpu_core"
    )
    vm = read_pmus(str(build_vm(tmp_path / "vm")))
    assert _error("nope", vm) == (
        "event 'nope' is not a sysfs event alias of any PMU here; accepted: the 'pmu/alias/' "
        "or 'pmu/term=value,.../' form with a PMU from: breakpoint, cpu, software, tracepoint"
    )
    assert resolve_event("Ev", small).config == 0x10


def test_long_lists_are_cut(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    for i in range(22):
        make_pmu(sysfs, f"p{i:02}", 100 + i)
    pmus = read_pmus(str(sysfs))
    listed = ", ".join(f"p{i:02}" for i in range(20))
    assert _error("x/y/", pmus) == (
        f"unknown PMU 'x' in event 'x/y/'; PMUs here: {listed}, ... (22 in all)"
    )
    exactly = read_pmus(str(sysfs))[:20]
    assert _error("x/y/", exactly) == (f"unknown PMU 'x' in event 'x/y/'; PMUs here: {listed}")


def test_pmu_without_formats_or_aliases(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "bare", 40)
    assert _error("bare/x/", read_pmus(str(sysfs))) == (
        "unknown term 'x' for PMU bare in event 'bare/x/'; format terms: (none: this PMU "
        "takes no terms); event aliases: (none); also config, config1, config2, config3"
    )


def test_hand_built_formats_are_objects() -> None:
    term = FormatTerm("e", "config", [(0, 7)])
    pmu = Pmu(name="h", type=50, formats={"e": term})
    assert resolve_event("h/e=0x22/", [pmu]).config == 0x22


def test_find_alias_prefers_exact_then_lower_case() -> None:
    pmu = Pmu(
        name="p", type=30, events={"Mixed": "event=1", "mixed": "event=2", "MIXED": "event=3"}
    )
    assert pmu.find_alias("MIXED") == ("MIXED", "event=3")
    assert pmu.find_alias("MiXeD") == ("mixed", "event=2")
    del pmu.events["mixed"]
    assert pmu.find_alias("MiXeD") == ("Mixed", "event=1")


def test_notes_of_aliases_read_on_demand(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "cpu", 4, events={"mem-loads": "event=0xcd", "cycles": "event=0x3c", "e": ""})
    (cpu,) = read_pmus(str(sysfs), all_events=False)
    assert cpu.notes == []
    assert cpu.find_alias("cycles") == ("cycles", "event=0x3c")
    assert cpu.notes == ["events/e: unreadable or empty, skipped"]


def test_mem_only_reading_skips_a_missing_first_name(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "cpu", 4, events={"mem-stores": "event=0xd0", "mem-loads-aux": "event=0x3"})
    (cpu,) = read_pmus(str(sysfs), all_events=False)
    assert cpu.events == {"mem-stores": "event=0xd0", "mem-loads-aux": "event=0x3"}


def test_mem_only_reading_notes_an_empty_mem_event(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "cpu", 4, events={"mem-loads": "", "mem-stores": "event=0xd0"})
    (cpu,) = read_pmus(str(sysfs), all_events=False)
    assert cpu.events == {"mem-stores": "event=0xd0"}
    assert cpu.notes == ["events/mem-loads: unreadable or empty, skipped"]


def test_only_quote_characters_quote(small: list[Pmu]) -> None:
    assert resolve_event("p/name=X1,event=1/", small).config == 1
    assert resolve_event("p/name=`a,event=2/", small).config == 2


def test_quotes_are_stripped_only_when_they_match(small: list[Pmu]) -> None:
    assert _error("p/event=''/", small).startswith("term 'event=' in event")
    assert _error("p/event='a'b/", small).startswith("term 'event='a'b' in event")
    assert _error("p/event=XaX/", small).startswith("term 'event=XaX' in event")


def test_non_config_and_config_terms_are_never_aliases(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(
        sysfs,
        "q",
        31,
        formats={"event": "config:0-7"},
        events={"inherit": "event=0x55", "config": "event=0x66", "ev": "event=0x10"},
    )
    pmus = read_pmus(str(sysfs))
    assert resolve_event("q/inherit/", pmus).config == 0
    assert resolve_event("q/config/", pmus).config == 1


def test_only_event_takes_an_alias_as_value(small: list[Pmu]) -> None:
    assert _error("p/flag=ev/", small).startswith("term 'flag=ev' in event 'p/flag=ev/' needs")


def test_event_question_mark_is_never_an_alias_name() -> None:
    pmu = Pmu(
        name="h",
        type=50,
        events={"?": "e=1"},
        formats={"e": parse_format("e", "config:0-7")},
    )
    with pytest.raises(PmuError, match=r"unknown term 'event' for PMU h"):
        resolve_event("h/event=?/", [pmu])


def test_two_bit_term_needs_a_value() -> None:
    pmu = Pmu(name="h", type=50, formats={"two": parse_format("two", "config:4-5")})
    with pytest.raises(PmuError, match=r"no value assigned for term 'two'"):
        resolve_event("h/two/", [pmu])
