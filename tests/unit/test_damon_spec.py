"""Validation and normalisation of the damon_perf role inputs."""

from __future__ import annotations

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    DamonSpec,
    PerfEvent,
    Region,
    SpecError,
    parse_bool,
    parse_duration_us,
    parse_int,
    parse_spec,
    resolve_targets,
)
from damon_examples import EXAMPLE
from hypothesis import given
from hypothesis import strategies as st


def problems_of(kdamonds, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(kdamonds, **kwargs)
    return info.value.problems


def test_published_example_normalises():
    spec = parse_spec([EXAMPLE])
    kd = spec.kdamonds[0]
    assert kd.operations == "vaddr"
    assert kd.targets[0].pid == 1234
    assert (kd.intervals.sample_us, kd.intervals.aggr_us, kd.intervals.update_us) == (
        5_000_000,
        60_000_000,
        300_000_000,
    )
    assert (kd.nr_regions_min, kd.nr_regions_max) == (10**9, 10**9)
    assert spec.events_for(0) == (PerfEvent(4, 0x1CD, 0x1F, 0, 5000, False),)
    assert kd.state == "on"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (5, 5),
        ("10us", 10),
        ("100ms", 100_000),
        ("5s", 5_000_000),
        ("2m", 120_000_000),
        ("1h", 3_600_000_000),
        ("1.5s", 1_500_000),
        ("250", 250),
        (" 7 ms ", 7000),
    ],
)
def test_durations(text, expected):
    assert parse_duration_us(text, "x") == expected


DURATIONS = (
    "microseconds as an integer, or a duration like '5s', '100ms', '10us', '2m', '1h', "
    "from 1us to 18446744073709551615us"
)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("5 parsecs", f"x: '5 parsecs' is not {DURATIONS}"),
        ("-1s", f"x: '-1s' is not {DURATIONS}"),
        ("0", f"x: '0' is out of range; expected {DURATIONS}"),
        (True, f"x: got a boolean; expected {DURATIONS}"),
        (1.5, f"x: got float; expected {DURATIONS}"),
        ("0.5us", f"x: '0.5us' is not a whole number of microseconds; expected {DURATIONS}"),
        ([], f"x: got list; expected {DURATIONS}"),
        ("s", f"x: 's' is not {DURATIONS}"),
    ],
)
def test_bad_durations_say_what_is_accepted(bad, expected):
    with pytest.raises(SpecError) as info:
        parse_duration_us(bad, "x")
    assert info.value.problems == [expected]


@pytest.mark.parametrize(
    ("text", "expected"), [("0x1cd", 0x1CD), ("0X1F", 0x1F), ("461", 461), (7, 7), ("1_000", 1000)]
)
def test_integers_accept_hex_strings(text, expected):
    assert parse_int(text, "p") == expected


INTEGERS = "an integer (decimal, or a hex string like '0x1cd') in [0, 18446744073709551615]"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("010", f"p: '010' is not {INTEGERS}"),
        ("0xZZ", f"p: '0xZZ' is not {INTEGERS}"),
        ("", f"p: '' is not {INTEGERS}"),
        (True, f"p: got a boolean; expected {INTEGERS}"),
        (None, f"p: got NoneType; expected {INTEGERS}"),
        (1.0, f"p: got float; expected {INTEGERS}"),
        ("-1", f"p: '-1' is not {INTEGERS}"),
        ("\u0661", f"p: '\u0661' is not {INTEGERS}"),
        ("18446744073709551616", f"p: 18446744073709551616 is out of range; expected {INTEGERS}"),
    ],
)
def test_integers_refuse_ambiguous_or_bad_values(bad, expected):
    with pytest.raises(SpecError) as info:
        parse_int(bad, "p")
    assert info.value.problems == [expected]


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_hex_and_decimal_strings_round_trip(number):
    assert parse_int(hex(number), "p") == number
    assert parse_int(str(number), "p") == number


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, False), (1, True), ("y", True), ("n", False), (True, True), ("false", False)],
)
def test_bools(value, expected):
    assert parse_bool(value, "b") is expected


def test_error_names_the_input_path():
    bad = dict(EXAMPLE, intervals={"sample_us": "soon"})
    (problem,) = problems_of([bad])
    assert problem.startswith("damon_perf_kdamonds[0].intervals.sample_us: 'soon' is not")
    assert "'5s'" in problem


def test_all_problems_are_reported_at_once():
    bad = {
        "operations": "vaddr",
        "targets": [{"pid": 0}],
        "nr_regions": {"min": 2, "max": 1},
        "perf_events": [{"type": 4, "config": "0x1cd", "sample_freq": 0}],
    }
    problems = problems_of([bad])
    text = "\n".join(problems)
    assert "damon_perf_kdamonds[0].targets[0].pid: 0 is out of range" in text
    assert "damon_perf_kdamonds[0].nr_regions.min: 2 is below the kernel minimum of 3" in text
    assert "damon_perf_kdamonds[0].nr_regions: min (2) must not exceed max (1)" in text
    assert "damon_perf_kdamonds[0].perf_events[0].sample_freq: 0 is out of range" in text


def test_min_above_default_max_needs_both():
    (problem,) = problems_of([dict(EXAMPLE, nr_regions={"min": 5000})])
    assert "give both" in problem


def test_sample_interval_above_aggregation_refused():
    (problem,) = problems_of([dict(EXAMPLE, intervals={"sample_us": "2s", "aggr_us": "1s"})])
    assert "sample_us (2000000) must not exceed aggr_us (1000000)" in problem


def test_at_most_one_context_per_kdamond():
    kd = {"contexts": [{"operations": "vaddr", "targets": [{"pid": 1}]}] * 2}
    (problem,) = problems_of([kd])
    assert problem.startswith("damon_perf_kdamonds[0].contexts: the kernel accepts at most one")


def test_single_context_spelling_is_accepted():
    spec = parse_spec([{"contexts": [{"operations": "vaddr", "targets": [{"pid": 9}]}]}])
    assert spec.kdamonds[0].targets[0].pid == 9


def test_unknown_keys_list_the_accepted_ones():
    (problem,) = problems_of([dict(EXAMPLE, sample_freq=5)])
    assert "unknown key(s) sample_freq; accepted keys: operations, targets" in problem


def test_operations_choice():
    (problem,) = problems_of([dict(EXAMPLE, operations="vmaddr")])
    assert problem == (
        "damon_perf_kdamonds[0].operations: 'vmaddr' is not one of vaddr, fvaddr, paddr"
    )


def test_target_forms():
    spec = parse_spec(
        [
            dict(
                EXAMPLE,
                targets=[
                    {"unit": "memcached"},
                    {"pidfile": "/run/m.pid"},
                    {"process": "memcached"},
                ],
            )
        ]
    )
    kinds = [(t.kind, t.ref) for t in spec.kdamonds[0].targets]
    assert kinds == [
        ("unit", "memcached.service"),
        ("pidfile", "/run/m.pid"),
        ("process", "memcached"),
    ]


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ({"pid": 1, "unit": "x"}, "give exactly one of pid, pidfile, unit, process"),
        ({"pidfile": "relative.pid"}, "absolute path"),
        ({"unit": "--now"}, "not a systemd unit name"),
        ({"unit": "a b"}, "not a systemd unit name"),
        ({"process": "a/b"}, "process name"),
        ({"start": 0, "end": 4096}, "needs operations 'paddr'"),
        ({"pid": 1, "regions": [{"start": 0, "end": 1}]}, "need operations 'fvaddr'"),
    ],
)
def test_bad_vaddr_targets(target, fragment):
    (problem,) = problems_of([dict(EXAMPLE, targets=[target])])
    assert problem.startswith("damon_perf_kdamonds[0].targets[0]")
    assert fragment in problem


def test_paddr_regions_form_one_target():
    spec = parse_spec(
        [
            {
                "operations": "paddr",
                "targets": [{"start": "0x1000", "end": "0x2000"}, {"start": 0x3000, "end": 0x4000}],
            }
        ]
    )
    (target,) = spec.kdamonds[0].targets
    assert target.regions == (Region(0x1000, 0x2000), Region(0x3000, 0x4000))


def test_paddr_refuses_process_targets_and_bad_regions():
    assert (
        "paddr monitors physical memory"
        in problems_of([{"operations": "paddr", "targets": [{"pid": 5}]}])[0]
    )
    assert (
        "start (0x2000) must be below end (0x1000)"
        in problems_of([{"operations": "paddr", "targets": [{"start": 0x2000, "end": 0x1000}]}])[0]
    )


def test_fvaddr_needs_regions():
    (problem,) = problems_of([dict(EXAMPLE, operations="fvaddr")])
    assert "fvaddr needs at least one {start, end} region" in problem


def test_vaddr_needs_a_target():
    (problem,) = problems_of([dict(EXAMPLE, targets=[])])
    assert problem == "damon_perf_kdamonds[0].targets: vaddr needs at least one process target"


def test_defaults_fill_events_per_operations():
    spec = parse_spec(
        [{"operations": "paddr"}, {"operations": "vaddr", "targets": [{"pid": 3}]}],
        default_perf_events=[{"pmu": "cpu", "type": 4, "config": 461, "config1": 31, "config2": 0}],
        sample_freq=4000,
    )
    assert spec.events_for(0) == (PerfEvent(4, 461, 31, 0, 4000, True),)
    assert spec.events_for(1) == (PerfEvent(4, 461, 31, 0, 4000, False),)


def test_explicit_empty_events_are_kept_apart_from_missing():
    spec = parse_spec(
        [dict(EXAMPLE, perf_events=[])], default_perf_events=[{"type": 4, "config": 1}]
    )
    assert spec.kdamonds[0].perf_events == ()
    assert spec.events_for(0) == ()


def test_policy_and_top_level_errors():
    problems = problems_of("notalist", no_event_policy="maybe", sample_freq=0)
    assert problems[0].startswith("damon_perf_kdamonds: expected a list")
    assert problems[1] == (
        "damon_perf_no_event_policy: 'maybe' is not one of fail, accessed_bit, skip"
    )
    assert problems[2].startswith("damon_perf_sample_freq: 0 is out of range")


def test_perf_event_type_is_u32_and_required_keys():
    problems = problems_of([dict(EXAMPLE, perf_events=[{"type": 1 << 32}])])
    assert any("perf_events[0].type: 4294967296 is out of range" in p for p in problems)
    assert any("perf_events[0].config: required" in p for p in problems)


class StubResolver:
    def pid_of_pidfile(self, path: str) -> int:
        return 11

    def pid_of_unit(self, unit: str) -> int:
        if unit == "down.service":
            raise ValueError("unit down.service has no main process")
        return 22

    def pid_of_process(self, name: str) -> int:
        return 33

    def system_ram(self) -> list[tuple[int, int]]:
        return [(0x100000, 0x7FFFFFFF)]


def test_resolve_targets_on_the_host():
    spec = parse_spec(
        [
            dict(
                EXAMPLE,
                targets=[{"pidfile": "/run/a.pid"}, {"unit": "a"}, {"process": "a"}, {"pid": 44}],
            ),
            {"operations": "paddr"},
        ]
    )
    resolved = resolve_targets(spec, StubResolver())
    assert [t.pid for t in resolved.kdamonds[0].targets] == [11, 22, 33, 44]
    assert resolved.kdamonds[1].targets[0].regions == (Region(0x100000, 0x7FFFFFFF),)
    assert isinstance(resolved, DamonSpec)


def test_resolve_failure_names_the_target():
    spec = parse_spec([dict(EXAMPLE, targets=[{"unit": "down"}])])
    with pytest.raises(
        SpecError,
        match=r"damon_perf_kdamonds\[0\]\.targets\[0\]: cannot resolve "
        r"unit 'down.service': unit down.service has no main",
    ):
        resolve_targets(spec, StubResolver())
