"""The damon_plan contract, write by write: every path and value a plan holds, the
notes and errors of each no-event policy, the sample-rate check, and layout detection
over a directory tree (real directories under tmp_path).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    ADMIN_ROOT,
    LAYOUTS,
    PERF_EVENTS_DIRS,
    LayoutError,
    LayoutUndetermined,
    Plan,
    PlanError,
    context_dir,
    default_value,
    detect_layout,
    format_writes,
    is_rebuild_file,
    plan,
    rebuild_scope,
    sample_rate_problems,
    structure_writes,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    DamonSpec,
    KdamondSpec,
    PerfEvent,
    Region,
    Target,
    parse_spec,
)
from damon_examples import EXAMPLE

NO_EVENT = "no perf event listed in inventory nor detected (damon_perf_events)"
MAINLINE = "the running kernel's DAMON (mainline layout) has no perf_events directory"
RATE = "/proc/sys/kernel/perf_event_max_sample_rate"


def attrs(index: int, sample: int, aggr: int, update: int, low: int, high: int) -> list[Any]:
    c = f"kdamonds/{index}/contexts/0/monitoring_attrs"
    return [
        (c + "/intervals/sample_us", str(sample)),
        (c + "/intervals/aggr_us", str(aggr)),
        (c + "/intervals/update_us", str(update)),
        (c + "/nr_regions/min", str(low)),
        (c + "/nr_regions/max", str(high)),
    ]


def test_constants() -> None:
    assert ADMIN_ROOT == "/sys/kernel/mm/damon/admin"
    assert LAYOUTS == ("rfc-v3", "rfc-v1", "successor", "mainline")
    assert context_dir(2) == "kdamonds/2/contexts/0"
    assert context_dir(2, 1) == "kdamonds/2/contexts/1"


def test_every_write_of_two_kdamonds_on_rfc_v1() -> None:
    """Non-default values in every perf leaf; a paddr kdamond with regions; a stopped one."""
    spec = DamonSpec(
        (
            KdamondSpec(
                "paddr",
                (Target("regions", regions=(Region(4096, 8192), Region(0x10000, 0x20000))),),
                perf_events=(PerfEvent(0xA, 0x1CD, 0x1F, 0x2B, 777, None),),
                state="off",
            ),
            KdamondSpec("vaddr", (Target("pid", pid=42), Target("pid", pid=43))),
        ),
        "accessed_bit",
        (PerfEvent(0x4, 0x10, 0, 0xFF, None, True),),
        sample_freq=1234,
    )
    result = plan(spec, "rfc-v1")
    p0, p1 = "kdamonds/0/contexts/0/perf_events", "kdamonds/1/contexts/0/perf_events"
    t0, t1 = "kdamonds/0/contexts/0/targets", "kdamonds/1/contexts/0/targets"
    assert result.writes == [
        ("kdamonds/nr_kdamonds", "2"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
        ("kdamonds/0/contexts/0/operations", "paddr"),
        *attrs(0, 5000, 100000, 60000000, 10, 1000),
        (p0 + "/nr_perf_events", "1"),
        (p0 + "/0/sample_freq", "777"),
        (p0 + "/0/sample_phys_addr", "1"),
        (p0 + "/0/type", "0xa"),
        (p0 + "/0/config", "0x1cd"),
        (p0 + "/0/config1", "0x1f"),
        (p0 + "/0/config2", "0x2b"),
        (t0 + "/nr_targets", "1"),
        (t0 + "/0/regions/nr_regions", "2"),
        (t0 + "/0/regions/0/start", "4096"),
        (t0 + "/0/regions/0/end", "8192"),
        (t0 + "/0/regions/1/start", "65536"),
        (t0 + "/0/regions/1/end", "131072"),
        ("kdamonds/0/state", "off"),
        ("kdamonds/1/contexts/nr_contexts", "1"),
        ("kdamonds/1/contexts/0/operations", "vaddr"),
        *attrs(1, 5000, 100000, 60000000, 10, 1000),
        (p1 + "/nr_perf_events", "1"),
        (p1 + "/0/sample_freq", "1234"),
        (p1 + "/0/sample_phys_addr", "1"),
        (p1 + "/0/type", "0x4"),
        (p1 + "/0/config", "0x10"),
        (p1 + "/0/config1", "0x0"),
        (p1 + "/0/config2", "0xff"),
        (t1 + "/nr_targets", "2"),
        (t1 + "/0/pid_target", "42"),
        (t1 + "/1/pid_target", "43"),
        ("kdamonds/1/state", "on"),
    ]
    # a stopped kdamond does not run perf events even though they are written
    assert result.perf == {0: False, 1: True}
    assert result.perf_wanted is True
    assert result.notes == [] and result.skipped is False
    assert result.layout == "rfc-v1"


def test_two_events_are_numbered_in_order() -> None:
    spec = parse_spec(
        [
            dict(
                EXAMPLE,
                perf_events=[
                    {"type": 1, "config": 2, "sample_phys_addr": False},
                    {"type": 3, "config": 4, "sample_freq": 9},
                ],
            )
        ]
    )
    pdir = "kdamonds/0/contexts/0/monitoring_attrs/sample/perf_events"
    writes = [w for w in plan(spec, "successor").writes if w[0].startswith(pdir)]
    assert writes == [
        (pdir + "/nr_perf_events", "2"),
        (pdir + "/0/sample_freq", "5000"),
        (pdir + "/0/sample_phys_addr", "0"),
        (pdir + "/0/type", "0x1"),
        (pdir + "/0/config", "0x2"),
        (pdir + "/0/config1", "0x0"),
        (pdir + "/0/config2", "0x0"),
        (pdir + "/1/sample_freq", "9"),
        (pdir + "/1/sample_phys_addr", "0"),
        (pdir + "/1/type", "0x3"),
        (pdir + "/1/config", "0x4"),
        (pdir + "/1/config1", "0x0"),
        (pdir + "/1/config2", "0x0"),
    ]


def test_fvaddr_target_writes_pid_then_regions() -> None:
    spec = DamonSpec(
        (KdamondSpec("fvaddr", (Target("pid", pid=9, regions=(Region(1, 2),)),), perf_events=()),)
    )
    t = "kdamonds/0/contexts/0/targets"
    assert plan(spec, "mainline").writes[-6:] == [
        (t + "/nr_targets", "1"),
        (t + "/0/pid_target", "9"),
        (t + "/0/regions/nr_regions", "1"),
        (t + "/0/regions/0/start", "1"),
        (t + "/0/regions/0/end", "2"),
        ("kdamonds/0/state", "on"),
    ]


def test_fvaddr_without_regions_still_clears_them() -> None:
    spec = DamonSpec((KdamondSpec("fvaddr", (Target("pid", pid=9),), perf_events=()),))
    t = "kdamonds/0/contexts/0/targets/0"
    assert plan(spec, "mainline").writes[-3:] == [
        (t + "/pid_target", "9"),
        (t + "/regions/nr_regions", "0"),
        ("kdamonds/0/state", "on"),
    ]


def test_paddr_without_regions_writes_zero_regions() -> None:
    spec = DamonSpec((KdamondSpec("paddr", (Target("regions"),), perf_events=()),))
    t = "kdamonds/0/contexts/0/targets"
    assert plan(spec, "mainline").writes[-3:] == [
        (t + "/nr_targets", "1"),
        (t + "/0/regions/nr_regions", "0"),
        ("kdamonds/0/state", "on"),
    ]


def test_vaddr_target_with_regions_writes_them() -> None:
    spec = DamonSpec(
        (KdamondSpec("vaddr", (Target("pid", pid=9, regions=(Region(1, 2),)),), perf_events=()),)
    )
    t = "kdamonds/0/contexts/0/targets/0"
    assert plan(spec, "mainline").writes[-5:] == [
        (t + "/pid_target", "9"),
        (t + "/regions/nr_regions", "1"),
        (t + "/regions/0/start", "1"),
        (t + "/regions/0/end", "2"),
        ("kdamonds/0/state", "on"),
    ]


@pytest.mark.parametrize("operations", ["vaddr", "fvaddr"])
def test_unresolved_target_error(operations: str) -> None:
    spec = DamonSpec(
        (
            KdamondSpec(
                operations,
                (Target("pid", pid=1), Target("unit", ref="m.service")),
                perf_events=(),
            ),
        )
    )
    with pytest.raises(PlanError) as info:
        plan(spec, "rfc-v3")
    assert str(info.value) == (
        "kdamonds/0/contexts/0/targets/1: unit target 'm.service' is not resolved to a pid"
    )


def test_empty_spec_plans_zero_kdamonds() -> None:
    result = plan(DamonSpec(()), "rfc-v3")
    assert result.writes == [("kdamonds/nr_kdamonds", "0")]
    assert result.perf == {} and result.perf_wanted is False


# --------------------------------------------------------------------------- policies


def _two(policy: str) -> DamonSpec:
    return parse_spec([EXAMPLE, dict(EXAMPLE, perf_events=None, state="off")], policy)


def test_fail_policy_names_every_kdamond() -> None:
    with pytest.raises(PlanError) as info:
        plan(_two("fail"), "mainline")
    assert str(info.value) == (
        f"damon_perf_kdamonds[0]: {MAINLINE} (damon_perf_no_event_policy is 'fail'); "
        f"damon_perf_kdamonds[1]: {NO_EVENT} (damon_perf_no_event_policy is 'fail')"
    )


def test_accessed_bit_policy_notes() -> None:
    result = plan(_two("accessed_bit"), "rfc-v3")
    assert result.notes == [f"damon_perf_kdamonds[1]: {NO_EVENT}; using the accessed-bit check"]
    assert result.perf == {0: True, 1: False}
    assert result.skipped is False
    pdir = "kdamonds/1/contexts/0/monitoring_attrs/sample/primitives/perf_events"
    assert (pdir + "/nr_perf_events", "0") in result.writes
    assert not any(p.startswith(pdir + "/0/") for p, _ in result.writes)
    result = plan(_two("accessed_bit"), "mainline")
    assert result.notes == [
        f"damon_perf_kdamonds[0]: {MAINLINE}; using the accessed-bit check",
        f"damon_perf_kdamonds[1]: {NO_EVENT}; using the accessed-bit check",
    ]
    assert result.perf == {0: False, 1: False}
    assert not any("perf" in p for p, _ in result.writes)
    assert len(result.writes) == 1 + 2 * 9 + 2


def test_skip_policy_plans_nothing_and_says_why() -> None:
    result = plan(_two("skip"), "rfc-v3")
    assert result == Plan(
        "rfc-v3",
        [],
        {},
        [f"damon_perf_kdamonds[1]: {NO_EVENT}; skipping DAMON on this host"],
        True,
    )
    result = plan(_two("skip"), "mainline")
    assert result.skipped is True and result.writes == []
    assert result.notes == [
        f"damon_perf_kdamonds[0]: {MAINLINE}; skipping DAMON on this host",
        f"damon_perf_kdamonds[1]: {NO_EVENT}; skipping DAMON on this host",
    ]


def test_skip_policy_without_a_problem_plans_everything() -> None:
    result = plan(parse_spec([EXAMPLE], "skip"), "rfc-v3")
    assert result.skipped is False and result.notes == []
    assert result.writes[-1] == ("kdamonds/0/state", "on")


def test_explicit_empty_list_on_a_perf_layout() -> None:
    spec = parse_spec([dict(EXAMPLE, perf_events=[])], "fail", [{"type": 4, "config": 1}])
    result = plan(spec, "rfc-v3")
    pdir = "kdamonds/0/contexts/0/monitoring_attrs/sample/primitives/perf_events"
    assert (pdir + "/nr_perf_events", "0") in result.writes
    assert result.perf == {0: False} and result.notes == []


# --------------------------------------------------------------------------- sample rate


def _rates() -> DamonSpec:
    return parse_spec(
        [
            EXAMPLE,
            dict(
                EXAMPLE,
                perf_events=[
                    {"type": 1, "config": 1, "sample_freq": 10},
                    {"type": 1, "config": 1, "sample_freq": 4001},
                ],
            ),
        ]
    )


def test_sample_rate_problems_name_each_event() -> None:
    assert sample_rate_problems(_rates(), None) == []
    assert sample_rate_problems(_rates(), 5000) == []
    assert sample_rate_problems(_rates(), 4000) == [
        f"damon_perf_kdamonds[0].perf_events[0].sample_freq: 5000 exceeds {RATE} (4000)",
        f"damon_perf_kdamonds[1].perf_events[1].sample_freq: 4001 exceeds {RATE} (4000)",
    ]


def test_plan_checks_the_sample_rate_too() -> None:
    with pytest.raises(PlanError) as info:
        plan(_rates(), "rfc-v3", max_sample_rate=4999)
    assert str(info.value) == (
        f"damon_perf_kdamonds[0].perf_events[0].sample_freq: 5000 exceeds {RATE} (4999)"
    )
    assert plan(_rates(), "rfc-v3", max_sample_rate=5000).perf == {0: True, 1: True}
    # events dropped by the policy are not checked
    spec = parse_spec([EXAMPLE], "accessed_bit")
    assert plan(spec, "mainline", max_sample_rate=1).perf == {0: False}


# --------------------------------------------------------------------------- helpers


def test_structure_writes_of_none() -> None:
    assert structure_writes(DamonSpec(())) == [("kdamonds/nr_kdamonds", "0")]


@pytest.mark.parametrize(
    ("path", "rebuilds", "scope"),
    [
        ("kdamonds/nr_kdamonds", True, "kdamonds"),
        ("kdamonds/0/contexts/0/targets/nr_targets", True, "kdamonds/0/contexts/0/targets"),
        ("kdamonds/0/state", False, "kdamonds/0"),
        ("kdamonds/0/contexts/0/monitoring_attrs/nr_regions/max", False, None),
        ("nr_x", True, ""),
    ],
)
def test_rebuild_files(path: str, rebuilds: bool, scope: str | None) -> None:
    assert is_rebuild_file(path) is rebuilds
    if scope is not None:
        assert rebuild_scope(path) == scope


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("kdamonds/3/contexts/0/monitoring_attrs/intervals/update_us", "60000000"),
        ("kdamonds/0/state", "off"),
        ("kdamonds/0/contexts/0/monitoring_attrs/sample/primitives/perf_events/2/type", "0x0"),
        ("kdamonds/0/total_reports", "0"),
        ("kdamonds/0/unknown_file", None),
    ],
)
def test_default_values_come_from_the_facts(path: str, value: str | None) -> None:
    assert default_value(path) == value


def test_format_writes() -> None:
    assert format_writes([("a/b", "1"), ("c", "on")]) == [["a/b", "1"], ["c", "on"]]
    assert format_writes([]) == []


# --------------------------------------------------------------------------- detection


def _tree(root: Path, *dirs: str) -> str:
    for rel in dirs:
        (root / rel).mkdir(parents=True, exist_ok=True)
    return str(root)


@pytest.mark.parametrize("layout", ["rfc-v3", "successor", "rfc-v1"])
def test_detect_looks_at_the_first_context(tmp_path: Path, layout: str) -> None:
    perf = PERF_EVENTS_DIRS[layout]
    root = _tree(
        tmp_path,
        "kdamonds/0",  # no context yet
        f"kdamonds/1/contexts/0/{perf}",
        "kdamonds/1/contexts/0/monitoring_attrs/intervals",
        "kdamonds/2/contexts/0/monitoring_attrs/intervals",
    )
    assert detect_layout(root) == layout
    assert detect_layout(root, os.path.isdir) == layout


def test_detect_mainline(tmp_path: Path) -> None:
    root = _tree(tmp_path, "kdamonds/0/contexts/0/monitoring_attrs/intervals")
    assert detect_layout(root) == "mainline"


def test_detect_with_a_callable(tmp_path: Path) -> None:
    seen: list[str] = []
    dirs = {
        "/r/kdamonds",
        "/r/kdamonds/0",
        "/r/kdamonds/0/contexts/0",
        "/r/kdamonds/0/contexts/0/perf_events",
    }

    def isdir(path: str) -> bool:
        seen.append(path)
        return path in dirs

    assert detect_layout("/r", isdir) == "rfc-v1"
    assert seen == [
        "/r/kdamonds",
        "/r/kdamonds/0",
        "/r/kdamonds/0/contexts/0",
        "/r/kdamonds/0/contexts/0/monitoring_attrs/sample/primitives/perf_events",
        "/r/kdamonds/0/contexts/0/monitoring_attrs/sample/perf_events",
        "/r/kdamonds/0/contexts/0/perf_events",
    ]


def test_detect_errors_name_the_paths(tmp_path: Path) -> None:
    with pytest.raises(LayoutError) as info:
        detect_layout(str(tmp_path / "none"))
    assert type(info.value) is LayoutError
    assert str(info.value) == (
        f"no DAMON sysfs interface at {tmp_path}/none (looked for {tmp_path}/none/kdamonds; "
        "the kernel needs CONFIG_DAMON_SYSFS=y)"
    )
    root = _tree(tmp_path / "a", "kdamonds/0/contexts", "kdamonds/1")
    with pytest.raises(LayoutUndetermined) as undetermined:
        detect_layout(root)
    assert str(undetermined.value) == (
        f"no context directory under {root}/kdamonds yet; the layout shows once "
        "kdamonds/<K>/contexts/0 exists"
    )
    root = _tree(tmp_path / "b", "kdamonds/0/contexts/0/monitoring_attrs")
    with pytest.raises(LayoutError) as unknown:
        detect_layout(root)
    ctx = f"{root}/kdamonds/0/contexts/0"
    assert str(unknown.value) == (
        f"unknown DAMON sysfs layout: looked for {ctx}/monitoring_attrs/sample/primitives/"
        f"perf_events, {ctx}/monitoring_attrs/sample/perf_events, {ctx}/perf_events, "
        f"{ctx}/monitoring_attrs/intervals; found none"
    )


def test_unknown_layout_lists_the_known_ones() -> None:
    with pytest.raises(PlanError) as info:
        plan(DamonSpec(()), "auto")
    assert str(info.value) == "unknown layout 'auto'; known: rfc-v3, rfc-v1, successor, mainline"
