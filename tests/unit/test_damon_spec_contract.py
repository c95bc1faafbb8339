"""The damon_spec contract, value by value: what each input parses to, and the exact
one-line error each bad input gets (the input's path, what was given, what is accepted).

Pure inputs only (no host, no sysfs); the target resolver is a stub that records what it
was asked.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    DEFAULT_INTERVALS_US,
    DEFAULT_NR_REGIONS,
    DamonConfig,
    DamonSpec,
    Intervals,
    KdamondSpec,
    PerfEvent,
    Region,
    SpecError,
    Target,
    check_boot_unit,
    check_host_path,
    check_unit_name,
    load_config_text,
    parse_bool,
    parse_config,
    parse_duration_us,
    parse_int,
    parse_kdamond,
    parse_perf_events,
    parse_settle_time,
    parse_spec,
    parse_state,
    quote,
    resolve_targets,
)

KD = "damon_perf_kdamonds[0]"
INTEGER = "an integer (decimal, or a hex string like '0x1cd') in [{}, {}]"
U64 = INTEGER.format(0, (1 << 64) - 1)
PID = INTEGER.format(1, 1 << 22)
DURATION = (
    "microseconds as an integer, or a duration like '5s', '100ms', '10us', '2m', '1h', "
    "from 1us to 18446744073709551615us"
)
UNIT = (
    "a systemd unit name such as 'memcached.service' or 'getty@tty1.service' "
    "(letters, digits, ':_.@-\\', a unit type suffix, at most 255 characters)"
)
HOST_PATH = "an absolute path without control characters (at most 4095 characters)"
PROCESS = "expected a process name as in /proc/<pid>/comm (1-15 characters, no '/')"
KDAMOND_KEYS = "operations, targets, intervals, nr_regions, perf_events, state, contexts"
SETTLE = "seconds as a number from 0 to 600"
REQUIRED = "required (from 'perf mem record -vv' or facts)"


def problems(fn: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        fn(*args, **kwargs)
    # the message of the exception is the problems joined
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def vaddr(**fields: Any) -> dict[str, Any]:
    return {"operations": "vaddr", "targets": [{"pid": 7}], **fields}


# --------------------------------------------------------------------------- quote


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a" * 80, "'" + "a" * 80 + "'"),
        ("a" * 81, "'" + "a" * 80 + "'... (81 characters)"),
        (None, "None"),
        (True, "True"),
        (False, "False"),
        ((1 << 256) - 1, str((1 << 256) - 1)),
        (1 << 256, "an integer of 257 bits"),
        (-(1 << 256), "an integer of 257 bits"),
        (1.5, "1.5"),
        ({"a": 1}, "a dict"),
        ([1], "a list"),
        (b"x", "a bytes"),
    ],
)
def test_quote_is_bounded(value: Any, expected: str) -> None:
    assert quote(value) == expected


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" 0x1f\t", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("0", 0),
        ("0x" + "0" * 39 + "1", 1),  # 42 characters: the longest accepted text
    ],
)
def test_int_text_forms(value: str, expected: int) -> None:
    assert parse_int(value, "p") == expected


def test_int_text_length_limit() -> None:
    # 42 characters are parsed (and found too big), 43 are refused unread
    assert problems(parse_int, "0x" + "f" * 40, "p") == [
        f"p: {(1 << 160) - 1} is out of range; expected {U64}"
    ]
    assert problems(parse_int, "0x" + "f" * 41, "p") == [f"p: '0x{'f' * 41}' is not {U64}"]


def test_int_bounds_are_inclusive() -> None:
    assert parse_int(6, "p", 6, 7) == 6
    assert parse_int("7", "p", 6, 7) == 7
    bounds = INTEGER.format(6, 7)
    assert problems(parse_int, 5, "p", 6, 7) == [f"p: 5 is out of range; expected {bounds}"]
    assert problems(parse_int, "8", "p", 6, 7) == [f"p: 8 is out of range; expected {bounds}"]
    assert problems(parse_int, [], "p", 6, 7) == [f"p: got list; expected {bounds}"]


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2min", 120_000_000),
        ("3m", 180_000_000),
        ("2h", 7_200_000_000),
        ("7", 7),
        ("7us", 7),
        ("0.5ms", 500),
        ("1.250ms", 1250),
        ("000", None),
        (1, 1),
        ((1 << 64) - 1, (1 << 64) - 1),
        ("1" + "0" * 19, 10**19),
    ],
)
def test_duration_units(value: Any, expected: int | None) -> None:
    if expected is None:
        assert problems(parse_duration_us, value, "d") == [
            f"d: {value!r} is out of range; expected {DURATION}"
        ]
    else:
        assert parse_duration_us(value, "d") == expected


@pytest.mark.parametrize("value", [0, -1, 1 << 64, "0s", "0.0000001ms"])
def test_duration_out_of_range_or_fraction(value: Any) -> None:
    (problem,) = problems(parse_duration_us, value, "d")
    if value == "0.0000001ms":
        assert problem == (
            f"d: '0.0000001ms' is not a whole number of microseconds; expected {DURATION}"
        )
    else:
        assert problem == f"d: {quote(value)} is out of range; expected {DURATION}"


# --------------------------------------------------------------------------- booleans, state


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("yes", True),
        ("true", True),
        (" ON\t", True),
        ("Y", True),
        ("0", False),
        ("no", False),
        ("off", False),
        ("N", False),
        ("FALSE", False),
        (False, False),
    ],
)
def test_bool_words(value: Any, expected: bool) -> None:
    assert parse_bool(value, "b") is expected


@pytest.mark.parametrize("value", [2, -1, "maybe", "", None, 1.0, "t"])
def test_bool_refusals(value: Any) -> None:
    assert problems(parse_bool, value, "b") == [
        f"b: {quote(value)} is not a boolean; expected true/false, 1/0 or y/n"
    ]


def test_state_words() -> None:
    assert [parse_state(v, "s") for v in ("on", "off", True, False)] == ["on", "off", "on", "off"]
    assert problems(parse_state, 1, "s") == ["s: 1 is not one of on, off"]
    assert problems(parse_state, "ON", "s") == ["s: 'ON' is not one of on, off"]


# --------------------------------------------------------------------------- mappings, lists


def test_not_a_mapping_names_the_keys() -> None:
    assert problems(parse_spec, [["vaddr"]]) == [
        f"{KD}: expected a mapping with keys {KDAMOND_KEYS}, got list"
    ]


def test_many_unknown_keys_are_counted_not_listed() -> None:
    kd = vaddr(**{f"k{i}": 1 for i in range(10)})
    assert problems(parse_spec, [kd]) == [
        f"{KD}: unknown key(s) k0, k1, k2, k3, k4, k5, k6, k7 (and 2 more); "
        f"accepted keys: {KDAMOND_KEYS}"
    ]
    kd = vaddr(**{f"k{i}": 1 for i in range(9)})
    assert problems(parse_spec, [kd]) == [
        f"{KD}: unknown key(s) k0, k1, k2, k3, k4, k5, k6, k7 (and 1 more); "
        f"accepted keys: {KDAMOND_KEYS}"
    ]
    kd = vaddr(**{f"k{i}": 1 for i in range(8)})
    assert problems(parse_spec, [kd]) == [
        f"{KD}: unknown key(s) k0, k1, k2, k3, k4, k5, k6, k7; accepted keys: {KDAMOND_KEYS}"
    ]


def test_unknown_keys_that_cannot_be_shown_are_quoted() -> None:
    kd = vaddr(**{"x" * 81: 1, "\n": 2, "z" * 80: 3})
    kd[5] = 4
    assert problems(parse_spec, [kd]) == [
        f"{KD}: unknown key(s) '\\n', '{'x' * 80}'... (81 characters), 5, {'z' * 80}; "
        f"accepted keys: {KDAMOND_KEYS}"
    ]


@pytest.mark.parametrize(("value", "kind"), [("ab", "str"), (b"ab", "bytes"), ({}, "dict")])
def test_strings_and_mappings_are_not_lists(value: Any, kind: str) -> None:
    assert problems(parse_spec, value) == [f"damon_perf_kdamonds: expected a list, got {kind}"]


def test_tuples_are_lists_and_none_is_empty() -> None:
    assert parse_spec((vaddr(),)).kdamonds[0].targets == (Target("pid", pid=7),)
    assert parse_spec(None) == DamonSpec(())


# --------------------------------------------------------------------------- unit names, paths


@pytest.mark.parametrize(
    ("value", "default_suffix", "expected"),
    [
        ("a.service", None, "a.service"),
        ("a.b.socket", "service", "a.b.socket"),
        ("a" * 247 + ".service", None, "a" * 247 + ".service"),
        ("a" * 247, "service", "a" * 247 + ".service"),
        ("x.timer", None, "x.timer"),
        ("x.slice", None, "x.slice"),
    ],
)
def test_unit_names(value: str, default_suffix: str | None, expected: str) -> None:
    assert check_unit_name(value, "u", default_suffix) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("memcached", "'memcached'"),  # no default suffix: a name needs its type
        ("x.bogus", "'x.bogus'"),
        ("-a.service", "'-a.service'"),
        ("a" * 248 + ".service", "'" + "a" * 80 + "'... (256 characters)"),
    ],
)
def test_unit_names_refused(value: str, shown: str) -> None:
    assert problems(check_unit_name, value, "u") == [f"u: {shown} is not {UNIT}"]


def test_unit_name_types_and_templates() -> None:
    assert problems(check_unit_name, 5, "u") == [f"u: got int; expected {UNIT}"]
    assert problems(check_unit_name, "foo@", "u", "service") == [
        f"u: 'foo@' is a template without an instance; expected {UNIT}"
    ]


@pytest.mark.parametrize("value", ["/a/b", "/a/ b/%$", "/" + "a" * 4094])
def test_host_paths(value: str) -> None:
    assert check_host_path(value, "p") == value


@pytest.mark.parametrize(
    "value", ["a/b", "/a/./b", "/a/../b", "/a/b/..", "/a\nb", "/a\x7fb", "/" + "a" * 4095]
)
def test_host_paths_refused(value: str) -> None:
    assert problems(check_host_path, value, "p") == [f"p: {quote(value)} is not {HOST_PATH}"]
    assert problems(check_host_path, 5, "p") == [f"p: got int; expected {HOST_PATH}"]


def test_boot_unit_values() -> None:
    assert check_boot_unit({}) == {"after_units": []}
    assert check_boot_unit({"after_units": None, "lib_dir": None}) == {"after_units": []}
    assert check_boot_unit(
        {
            "after_units": ["a.service", "b.target"],
            "config_dir": "/etc/d f",
            "lib_dir": "/usr/lib/d",
            "applier_path": "/usr/sbin/x",
            "python": "/usr/bin/python3",
        }
    ) == {
        "after_units": ["a.service", "b.target"],
        "config_dir": "/etc/d f",
        "lib_dir": "/usr/lib/d",
        "applier_path": "/usr/sbin/x",
        "python": "/usr/bin/python3",
    }


def test_boot_unit_problems_are_all_reported() -> None:
    got = problems(
        check_boot_unit,
        {
            "after_units": ["a", "b.service", "c d.service"],
            "config_dir": "rel",
            "lib_dir": "/a/../b",
            "python": "/usr/bin/py thon",
        },
        "x_",
    )
    assert got == [
        f"x_after_units[0]: 'a' is not {UNIT}",
        f"x_after_units[2]: 'c d.service' is not {UNIT}",
        f"x_config_dir: 'rel' is not {HOST_PATH}",
        f"x_lib_dir: '/a/../b' is not {HOST_PATH}",
        "x_python: '/usr/bin/py thon': a '#!' line cannot hold spaces",
    ]
    assert problems(check_boot_unit, {"python": "/a\tb"}) == [
        f"damon_perf_python: '/a\\tb' is not {HOST_PATH}"
    ]
    assert problems(check_boot_unit, {"after_units": "a.service"}) == [
        "damon_perf_after_units: expected a list, got str"
    ]
    assert problems(check_boot_unit, {"after_units": ["a.service"] * 65}) == [
        "damon_perf_after_units: 65 units; at most 64 are accepted"
    ]
    assert problems(check_boot_unit, {"pyhton": "/x"}) == [
        "damon_perf_boot_unit: unknown key(s) pyhton; accepted keys: after_units, config_dir, "
        "lib_dir, applier_path, python"
    ]


# --------------------------------------------------------------------------- perf events


def test_perf_event_fields_and_informational_keys() -> None:
    events = parse_perf_events(
        [
            {
                "type": 1,
                "config": 2,
                "config1": "0x3",
                "config2": 4,
                "sample_freq": None,
                "sample_phys_addr": None,
                "pmu": "cpu",
                "name": "mem-loads",
            },
            {
                "type": 0xFFFFFFFF,
                "config": (1 << 64) - 1,
                "sample_freq": 1,
                "sample_phys_addr": "y",
            },
            {"type": 4, "config": 5, "sample_phys_addr": 0},
        ],
        "ev",
    )
    assert events == (
        PerfEvent(1, 2, 3, 4, None, None),
        PerfEvent(0xFFFFFFFF, (1 << 64) - 1, 0, 0, 1, True),
        PerfEvent(4, 5, 0, 0, None, False),
    )


def test_perf_event_problems_are_all_reported() -> None:
    got = problems(
        parse_perf_events,
        [
            {
                "type": 1 << 32,
                "config": "x",
                "config1": -1,
                "config2": -2,
                "sample_freq": 0,
                "sample_phys_addr": "maybe",
            },
            {},
        ],
        "ev",
    )
    assert got == [
        f"ev[0].type: 4294967296 is out of range; expected {INTEGER.format(0, (1 << 32) - 1)}",
        f"ev[0].config: 'x' is not {U64}",
        f"ev[0].config1: -1 is out of range; expected {U64}",
        f"ev[0].config2: -2 is out of range; expected {U64}",
        f"ev[0].sample_freq: 0 is out of range; expected {INTEGER.format(1, (1 << 64) - 1)}",
        "ev[0].sample_phys_addr: 'maybe' is not a boolean; expected true/false, 1/0 or y/n",
        f"ev[1].type: {REQUIRED}",
        f"ev[1].config: {REQUIRED}",
    ]


def test_perf_event_list_limit() -> None:
    assert len(parse_perf_events([{"type": 1, "config": 1}] * 64, "ev")) == 64
    assert problems(parse_perf_events, "x", "ev") == ["ev: expected a list, got str"]
    assert problems(parse_perf_events, [5], "ev") == [
        "ev[0]: expected a mapping with keys type, config, config1, config2, sample_freq, "
        "sample_phys_addr, pmu, name, got int"
    ]


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("target", "operations", "expected"),
    [
        ({"pid": 1, "start": 1}, "vaddr", "put fvaddr address ranges under 'regions'"),
        ({"pid": 1, "end": 1}, "vaddr", "put fvaddr address ranges under 'regions'"),
        (
            {},
            "vaddr",
            "give exactly one of pid, pidfile, unit, process (or {start, end} for paddr)",
        ),
        (
            {"regions": [{"start": 0, "end": 1}]},
            "fvaddr",
            "give exactly one of pid, pidfile, unit, process (or {start, end} for paddr)",
        ),
        (
            {"start": 0, "end": 1},
            "fvaddr",
            "a bare {start, end} region target needs operations 'paddr'; "
            "for fvaddr give {pid|pidfile|unit|process, regions}",
        ),
        (
            {"unit": "a"},
            "paddr",
            "paddr monitors physical memory; targets are {start, end} regions, "
            "or none to use System RAM from /proc/iomem",
        ),
    ],
)
def test_target_shape_errors(target: Any, operations: str, expected: str) -> None:
    kd = {"operations": operations, "targets": [target]}
    assert problems(parse_spec, [kd]) == [f"{KD}.targets[0]: {expected}"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"process": "a" * 16}, f"{KD}.targets[0].process: {PROCESS}"),
        ({"process": ""}, f"{KD}.targets[0].process: {PROCESS}"),
        ({"process": 5}, f"{KD}.targets[0].process: {PROCESS}"),
        ({"process": "a\nb"}, f"{KD}.targets[0].process: {PROCESS}"),
        ({"pidfile": 5}, f"{KD}.targets[0].pidfile: 5 is not an absolute path to a pid file"),
        ({"pid": 1 + (1 << 22)}, f"{KD}.targets[0].pid: 4194305 is out of range; expected {PID}"),
        ({"unit": 5}, f"{KD}.targets[0].unit: got int; expected {UNIT}"),
    ],
)
def test_target_reference_errors(target: Any, expected: str) -> None:
    assert problems(parse_spec, [vaddr(targets=[target])]) == [expected]


def test_target_references() -> None:
    spec = parse_spec(
        [
            vaddr(
                targets=[
                    {"process": "a" * 15},
                    {"pid": 1 << 22},
                    {"pid": "0x10"},
                    {"unit": "db@1.service"},
                ]
            )
        ]
    )
    assert spec.kdamonds[0].targets == (
        Target("process", ref="a" * 15),
        Target("pid", pid=1 << 22),
        Target("pid", pid=16),
        Target("unit", ref="db@1.service"),
    )
    assert [t.resolved for t in spec.kdamonds[0].targets] == [False, True, True, False]


def test_fvaddr_regions() -> None:
    spec = parse_spec(
        [
            {
                "operations": "fvaddr",
                "targets": [
                    {"pid": 3, "regions": [{"start": 0, "end": 5}, {"start": 8, "end": 9}]}
                ],
            }
        ]
    )
    assert spec.kdamonds[0].targets == (Target("pid", pid=3, regions=(Region(0, 5), Region(8, 9))),)
    kd = {"operations": "fvaddr", "targets": [{"pid": 3, "regions": []}]}
    assert problems(parse_spec, [kd]) == [
        f"{KD}.targets[0].regions: fvaddr needs at least one {{start, end}} region"
    ]
    kd = {"operations": "fvaddr", "targets": [{"pid": 3, "regions": [{"start": 1}]}]}
    assert problems(parse_spec, [kd]) == [
        f"{KD}.targets[0].regions[0]: missing end; a region is {{start, end}}"
    ]
    kd = {"operations": "fvaddr", "targets": [{"pid": 3, "regions": [{}]}]}
    assert problems(parse_spec, [kd]) == [
        f"{KD}.targets[0].regions[0]: missing start, end; a region is {{start, end}}"
    ]
    kd = {"operations": "fvaddr", "targets": [{"pid": 3, "regions": [5]}]}
    assert problems(parse_spec, [kd]) == [
        f"{KD}.targets[0].regions[0]: expected a mapping with keys start, end, got int"
    ]


def test_region_errors() -> None:
    def paddr(*regions: Any) -> list[dict[str, Any]]:
        return [{"operations": "paddr", "targets": list(regions)}]

    assert problems(parse_spec, paddr({"start": 1, "end": 1})) == [
        f"{KD}.targets[0]: start (0x1) must be below end (0x1)"
    ]
    assert problems(parse_spec, paddr({"start": -1, "end": 1})) == [
        f"{KD}.targets[0].start: -1 is out of range; expected {U64}"
    ]
    assert problems(parse_spec, paddr({"start": 0, "end": 1 << 64})) == [
        f"{KD}.targets[0].end: {1 << 64} is out of range; expected {U64}"
    ]
    assert parse_spec(paddr({"start": 0, "end": (1 << 64) - 1})).kdamonds[0].targets == (
        Target("regions", regions=(Region(0, (1 << 64) - 1),)),
    )


def test_paddr_region_total_limit() -> None:
    kd = {
        "operations": "paddr",
        "targets": [{"start": 0, "end": 1, "regions": [{"start": 0, "end": 1}]}],
    }
    # a bare region with regions beside it is a mapping with unknown keys for paddr
    assert problems(parse_spec, [kd]) == [
        f"{KD}.targets[0]: give exactly one of pid, pidfile, unit, process "
        "(or {start, end} for paddr)"
    ]
    ok = {"operations": "paddr", "targets": [{"start": i, "end": i + 1} for i in range(64)]}
    (target,) = parse_spec([ok]).kdamonds[0].targets
    assert target.regions[-1] == Region(63, 64) and len(target.regions) == 64


def test_paddr_without_targets_is_one_empty_list() -> None:
    assert parse_spec([{"operations": "paddr"}]).kdamonds[0].targets == ()
    assert parse_spec([{"operations": "paddr", "targets": []}]).kdamonds[0].targets == ()


# --------------------------------------------------------------------------- kdamonds


def test_kdamond_defaults() -> None:
    kd = parse_kdamond(vaddr(), "k")
    assert kd == KdamondSpec("vaddr", (Target("pid", pid=7),))
    assert kd.intervals == Intervals(5000, 100000, 60000000)
    assert (kd.nr_regions_min, kd.nr_regions_max) == (10, 1000)
    assert DEFAULT_INTERVALS_US == (5000, 100000, 60000000)
    assert DEFAULT_NR_REGIONS == (10, 1000)
    assert kd.perf_events is None and kd.state == "on"


def test_kdamond_none_values_keep_the_defaults() -> None:
    kd = parse_kdamond(vaddr(intervals=None, nr_regions=None, perf_events=None, state=None), "k")
    assert kd == KdamondSpec("vaddr", (Target("pid", pid=7),))


def test_missing_operations() -> None:
    assert problems(parse_spec, [{"targets": [{"pid": 1}]}]) == [
        f"{KD}.operations: required; one of vaddr, fvaddr, paddr"
    ]
    # without operations, targets are read as vaddr ones
    assert problems(parse_spec, [{}]) == [
        f"{KD}.operations: required; one of vaddr, fvaddr, paddr",
        f"{KD}.targets: vaddr needs at least one process target",
    ]


def test_target_count_limit() -> None:
    assert len(parse_spec([vaddr(targets=[{"pid": 1}] * 64)]).kdamonds[0].targets) == 64
    assert problems(parse_spec, [vaddr(targets=[{"pid": 1}] * 65)]) == [
        f"{KD}.targets: 65 targets; at most 64 are accepted"
    ]


def test_targets_none_is_no_target() -> None:
    assert problems(parse_spec, [{"operations": "fvaddr", "targets": None}]) == [
        f"{KD}.targets: fvaddr needs at least one process target"
    ]


def test_every_target_problem_is_reported() -> None:
    kd = vaddr(targets=[{"pid": 0}, {"pid": 3}, {"process": "a/b"}])
    assert problems(parse_spec, [kd]) == [
        f"{KD}.targets[0].pid: 0 is out of range; expected {PID}",
        f"{KD}.targets[2].process: {PROCESS}",
    ]


def test_partial_intervals_merge_with_the_defaults() -> None:
    kd = parse_kdamond(vaddr(intervals={"aggr_us": "1s"}), "k")
    assert kd.intervals == Intervals(5000, 1_000_000, 60_000_000)
    kd = parse_kdamond(vaddr(intervals={"sample_us": "100ms", "update_us": 7}), "k")
    assert kd.intervals == Intervals(100_000, 100_000, 7)  # sample == aggr is fine
    assert problems(parse_spec, [vaddr(intervals={"sample_us": 100_001})]) == [
        f"{KD}.intervals: sample_us (100001) must not exceed aggr_us (100000)"
    ]


def test_interval_problems_are_all_reported() -> None:
    kd = vaddr(intervals={"sample_us": 0, "aggr_us": "x", "update_us": True})
    assert problems(parse_spec, [kd]) == [
        f"{KD}.intervals.sample_us: 0 is out of range; expected {DURATION}",
        f"{KD}.intervals.aggr_us: 'x' is not {DURATION}",
        f"{KD}.intervals.update_us: got a boolean; expected {DURATION}",
    ]
    assert problems(parse_spec, [vaddr(intervals=[1])]) == [
        f"{KD}.intervals: expected a mapping with keys sample_us, aggr_us, update_us, got list"
    ]


@pytest.mark.parametrize(
    ("nr_regions", "expected"),
    [
        ({"min": 3}, (3, 1000)),
        ({"min": 1000}, (1000, 1000)),
        ({"max": 10}, (10, 10)),
        ({"max": "0x10"}, (10, 16)),
        ({"min": 5, "max": 5}, (5, 5)),
        ({}, (10, 1000)),
    ],
)
def test_nr_regions(nr_regions: Any, expected: tuple[int, int]) -> None:
    kd = parse_kdamond(vaddr(nr_regions=nr_regions), "k")
    assert (kd.nr_regions_min, kd.nr_regions_max) == expected


@pytest.mark.parametrize(
    ("nr_regions", "expected"),
    [
        ({"min": 2}, ["nr_regions.min: 2 is below the kernel minimum of 3"]),
        (
            {"min": 1001},
            [
                "nr_regions: min 1001 exceeds max 1000 (the default for the key not given); "
                "give both"
            ],
        ),
        (
            {"max": 9},
            ["nr_regions: min 10 exceeds max 9 (the default for the key not given); give both"],
        ),
        ({"min": 6, "max": 5}, ["nr_regions: min (6) must not exceed max (5)"]),
        ({"min": -1, "max": 2000}, [f"nr_regions.min: -1 is out of range; expected {U64}"]),
        (
            {"min": 5, "max": 1 << 64},
            [f"nr_regions.max: {1 << 64} is out of range; expected {U64}"],
        ),
        ([], ["nr_regions: expected a mapping with keys min, max, got list"]),
    ],
)
def test_nr_regions_errors(nr_regions: Any, expected: list[str]) -> None:
    assert problems(parse_spec, [vaddr(nr_regions=nr_regions)]) == [f"{KD}.{p}" for p in expected]


def test_nr_regions_extremes() -> None:
    kd = parse_kdamond(vaddr(nr_regions={"min": (1 << 64) - 1, "max": (1 << 64) - 1}), "k")
    assert (kd.nr_regions_min, kd.nr_regions_max) == ((1 << 64) - 1, (1 << 64) - 1)


def test_perf_events_and_state_errors_with_others() -> None:
    kd = vaddr(perf_events=[{"type": 1}], state="maybe", operations="x")
    assert problems(parse_spec, [kd]) == [
        f"{KD}.operations: 'x' is not one of vaddr, fvaddr, paddr",
        f"{KD}.perf_events[0].config: {REQUIRED}",
        f"{KD}.state: 'maybe' is not one of on, off",
    ]
    assert parse_kdamond(vaddr(state="off"), "k").state == "off"
    assert parse_kdamond(vaddr(state=False), "k").state == "off"


def test_contexts_spelling() -> None:
    inner = vaddr(intervals={"aggr_us": "1s"}, state=None)
    inner.pop("state")
    kd = parse_kdamond({"contexts": [inner], "state": "off"}, "k")
    assert kd == KdamondSpec(
        "vaddr", (Target("pid", pid=7),), intervals=Intervals(aggr_us=1_000_000), state="off"
    )
    assert problems(parse_kdamond, {"operations": "vaddr", "contexts": [vaddr()]}, "k") == [
        "k: operations given both in the kdamond and in contexts[0]"
    ]
    both = {"operations": "vaddr", "targets": [], "contexts": [vaddr()]}
    assert problems(parse_kdamond, both, "k") == [
        "k: operations, targets given both in the kdamond and in contexts[0]"
    ]
    assert problems(parse_kdamond, {"contexts": [{"state": "on"}]}, "k") == [
        "k.contexts[0]: unknown key(s) state; accepted keys: operations, targets, intervals, "
        "nr_regions, perf_events"
    ]
    assert problems(parse_kdamond, {"contexts": "x"}, "k") == [
        "k.contexts: expected a list, got str"
    ]
    # an empty contexts list leaves the kdamond as given
    assert parse_kdamond({**vaddr(), "contexts": []}, "k") == parse_kdamond(vaddr(), "k")


# --------------------------------------------------------------------------- the spec


def test_spec_defaults() -> None:
    spec = parse_spec([vaddr()])
    assert spec == DamonSpec((parse_kdamond(vaddr(), "k"),), "fail", (), 5000)


@pytest.mark.parametrize("policy", ["fail", "accessed_bit", "skip"])
def test_spec_policies(policy: str) -> None:
    assert parse_spec([], no_event_policy=policy).no_event_policy == policy


def test_spec_sample_freq_and_defaults() -> None:
    spec = parse_spec([vaddr()], sample_freq="0x10", default_perf_events=[{"type": 4, "config": 1}])
    assert spec.sample_freq == 16
    assert spec.default_perf_events == (PerfEvent(4, 1),)
    assert spec.events_for(0) == (PerfEvent(4, 1, 0, 0, 16, False),)
    assert parse_spec([], sample_freq=(1 << 64) - 1).sample_freq == (1 << 64) - 1


def test_spec_problems_in_order_with_prefix() -> None:
    got = problems(
        parse_spec,
        [vaddr(operations="x"), vaddr(), vaddr(operations="y")],
        no_event_policy=None,
        default_perf_events=[{"config": 1}],
        sample_freq=-1,
        prefix="p_",
    )
    assert got == [
        "p_kdamonds[0].operations: 'x' is not one of vaddr, fvaddr, paddr",
        "p_kdamonds[2].operations: 'y' is not one of vaddr, fvaddr, paddr",
        "p_no_event_policy: None is not one of fail, accessed_bit, skip",
        f"p_sample_freq: -1 is out of range; expected {INTEGER.format(1, (1 << 64) - 1)}",
        f"p_default_perf_events[0].type: {REQUIRED}",
    ]


def test_events_for_fills_each_field() -> None:
    spec = parse_spec(
        [
            vaddr(perf_events=[{"type": 1, "config": 2, "sample_freq": 7, "sample_phys_addr": 1}]),
            {"operations": "paddr", "perf_events": [{"type": 1, "config": 2}]},
            {
                "operations": "paddr",
                "perf_events": [{"type": 1, "config": 2, "sample_phys_addr": 0}],
            },
            {"operations": "paddr"},
        ],
        sample_freq=9,
        default_perf_events=[{"type": 3, "config": 4}],
    )
    assert spec.events_for(0) == (PerfEvent(1, 2, 0, 0, 7, True),)
    assert spec.events_for(1) == (PerfEvent(1, 2, 0, 0, 9, True),)
    assert spec.events_for(2) == (PerfEvent(1, 2, 0, 0, 9, False),)
    assert spec.events_for(3) == (PerfEvent(3, 4, 0, 0, 9, True),)


# --------------------------------------------------------------------------- resolution


class Resolver:
    """Answers from tables; raises what the host look-ups raise."""

    def __init__(self, pids: dict[str, int], ram: Any = ((0x1000, 0x2000),)) -> None:
        self.pids = pids
        self.ram = ram
        self.asked: list[str] = []

    def _pid(self, key: str) -> int:
        self.asked.append(key)
        value = self.pids[key]
        return value

    def pid_of_pidfile(self, path: str) -> int:
        return self._pid("pidfile:" + path)

    def pid_of_unit(self, unit: str) -> int:
        return self._pid("unit:" + unit)

    def pid_of_process(self, name: str) -> int:
        return self._pid("process:" + name)

    def system_ram(self) -> list[tuple[int, int]]:
        self.asked.append("ram")
        if isinstance(self.ram, Exception):
            raise self.ram
        return list(self.ram)


def test_resolution_asks_only_for_symbolic_targets() -> None:
    spec = parse_spec(
        [
            vaddr(targets=[{"pid": 5}, {"process": "m"}, {"unit": "u"}, {"pidfile": "/p"}]),
            {"operations": "paddr", "targets": [{"start": 0, "end": 4096}]},
        ]
    )
    resolver = Resolver(
        {"process:m": 1, "unit:u.service": 1 << 22, "pidfile:/p": 3}, ram=OSError("unused")
    )
    resolved = resolve_targets(spec, resolver)
    assert resolver.asked == ["process:m", "unit:u.service", "pidfile:/p"]
    assert [t.pid for t in resolved.kdamonds[0].targets] == [5, 1, 1 << 22, 3]
    assert resolved.kdamonds[1] == spec.kdamonds[1]
    assert resolved.no_event_policy == spec.no_event_policy


@pytest.mark.parametrize("pid", [0, -3, (1 << 22) + 1])
def test_resolved_pid_out_of_range(pid: int) -> None:
    spec = parse_spec([vaddr(targets=[{"process": "m"}])])
    assert problems(resolve_targets, spec, Resolver({"process:m": pid})) == [
        f"{KD}.targets[0]: cannot resolve process 'm': got pid {pid}"
    ]


def test_resolution_errors_are_collected_and_flattened() -> None:
    class Failing(Resolver):
        def pid_of_unit(self, unit: str) -> int:
            raise OSError("line one\n  line two")

        def pid_of_pidfile(self, path: str) -> int:
            raise LookupError("x" * 300)

    spec = parse_spec([vaddr(targets=[{"unit": "u"}, {"pidfile": "/p"}]), {"operations": "paddr"}])
    got = problems(resolve_targets, spec, Failing({}, ram=ValueError("no RAM")))
    assert got == [
        f"{KD}.targets[0]: cannot resolve unit 'u.service': line one line two",
        f"{KD}.targets[1]: cannot resolve pidfile '/p': {'x' * 200}",
        "damon_perf_kdamonds[1].targets: no regions given and System RAM from /proc/iomem "
        "unavailable: no RAM",
    ]


def test_paddr_without_regions_gets_system_ram() -> None:
    spec = parse_spec([{"operations": "paddr"}, {"operations": "paddr", "targets": []}])
    resolved = resolve_targets(spec, Resolver({}, ram=[(1, 2), (5, 9)]))
    expected = (Target("regions", regions=(Region(1, 2), Region(5, 9))),)
    assert resolved.kdamonds[0].targets == expected
    assert resolved.kdamonds[1].targets == expected


# --------------------------------------------------------------------------- settle time


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), ("600", 600.0), (" 1.5\t", 1.5), (600.0, 600.0), ("000001.000001", 1.000001)],
)
def test_settle_time(value: Any, expected: float) -> None:
    assert parse_settle_time(value, "s") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, f"s: got bool; expected {SETTLE}"),
        (None, f"s: got NoneType; expected {SETTLE}"),
        ([1], f"s: got list; expected {SETTLE}"),
        ("1e3", f"s: '1e3' is not {SETTLE}"),
        ("-1", f"s: '-1' is not {SETTLE}"),
        ("1234567", f"s: '1234567' is not {SETTLE}"),
        ("1.1234567", f"s: '1.1234567' is not {SETTLE}"),
        ("\u0661", f"s: '\u0661' is not {SETTLE}"),
        ("600.000001", f"s: '600.000001' is out of range; expected {SETTLE}"),
        (-0.5, f"s: -0.5 is out of range; expected {SETTLE}"),
        (float("nan"), f"s: nan is out of range; expected {SETTLE}"),
        (601, f"s: 601 is out of range; expected {SETTLE}"),
    ],
)
def test_settle_time_refused(value: Any, expected: str) -> None:
    assert problems(parse_settle_time, value, "s") == [expected]


# --------------------------------------------------------------------------- config files


def test_config_defaults() -> None:
    config = parse_config({"damon_perf_kdamonds": []}, "c.yml")
    assert config == DamonConfig(DamonSpec(()), "auto", 1.0, "accessed_bits", 3.0, ())


def test_config_values() -> None:
    config = parse_config(
        {
            "damon_perf_kdamonds": [vaddr()],
            "damon_perf_default_perf_events": [{"type": 4, "config": 1}],
            "damon_perf_sample_freq": 100,
            "damon_perf_no_event_policy": "skip",
            "damon_perf_layout": "rfc-v1",
            "damon_perf_settle_time": "0.5",
            "damon_perf_fallback_policy": "fail",
            "damon_perf_evidence_window": 5,
            "damon_perf_stand_in_kernels": ["6.12.0-lab"],
        },
        "c.yml",
    )
    assert config.spec == parse_spec([vaddr()], "skip", [{"type": 4, "config": 1}], sample_freq=100)
    assert (config.layout, config.settle_time, config.fallback_policy) == ("rfc-v1", 0.5, "fail")
    assert (config.evidence_window, config.stand_in_kernels) == (5.0, ("6.12.0-lab",))


def test_config_none_values_keep_the_defaults() -> None:
    config = parse_config(
        {
            "damon_perf_kdamonds": [],
            "damon_perf_layout": None,
            "damon_perf_settle_time": None,
            "damon_perf_fallback_policy": None,
            "damon_perf_evidence_window": None,
            "damon_perf_stand_in_kernels": None,
            "damon_perf_no_event_policy": "fail",
        },
        "c",
    )
    assert config == DamonConfig(DamonSpec(()), "auto", 1.0, "accessed_bits", 3.0, ())


def test_config_problems_are_all_reported() -> None:
    got = problems(
        parse_config,
        {
            "damon_perf_kdamonds": [vaddr(operations="x")],
            "damon_perf_layout": "rfc-v9",
            "damon_perf_settle_time": "soon",
            "damon_perf_fallback_policy": "maybe",
            "damon_perf_evidence_window": -1,
            "damon_perf_stand_in_kernels": 5,
        },
        "c",
    )
    assert got[:3] == [
        f"{KD}.operations: 'x' is not one of vaddr, fvaddr, paddr",
        "damon_perf_layout: 'rfc-v9' is not one of auto, rfc-v3, rfc-v1, successor, mainline",
        f"damon_perf_settle_time: 'soon' is not {SETTLE}",
    ]
    assert [p.split(":")[0] for p in got[3:]] == [
        "damon_perf_fallback_policy",
        "damon_perf_evidence_window",
        "damon_perf_stand_in_kernels",
    ]


def test_config_shape_errors() -> None:
    assert problems(parse_config, [], "c.yml") == [
        "c.yml: expected a mapping of damon_perf_* inputs (damon_perf_kdamonds, "
        "damon_perf_default_perf_events, damon_perf_sample_freq, damon_perf_no_event_policy, "
        "damon_perf_layout, damon_perf_settle_time, damon_perf_fallback_policy, "
        "damon_perf_evidence_window, damon_perf_stand_in_kernels), got list"
    ]
    many = {f"k{i}": 1 for i in range(9)}
    (problem,) = problems(parse_config, many, "c.yml")
    assert problem.startswith(
        "c.yml: unknown key(s) k0, k1, k2, k3, k4, k5, k6, k7 (and 1 more); accepted keys: "
        "damon_perf_kdamonds, "
    )


def test_config_text_json_with_comments_and_yaml() -> None:
    text = (
        '# rendered\n  # indented comment\n{"damon_perf_kdamonds": [], '
        '"damon_perf_layout": "mainline"}\n'
    )
    assert load_config_text(text, "c").layout == "mainline"
    yaml_text = "# rendered\ndamon_perf_kdamonds: []\ndamon_perf_settle_time: 2\n"
    assert load_config_text(yaml_text, "c").settle_time == 2.0
    (problem,) = problems(
        load_config_text, '{"damon_perf_kdamonds": [], "damon_perf_kdamonds": []}', "c"
    )
    assert problem.startswith("c") and "duplicate key" in problem
