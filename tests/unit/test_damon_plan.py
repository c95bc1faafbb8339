"""Layouts, layout detection and the ordered write plan."""

from __future__ import annotations

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    LAYOUTS,
    LayoutError,
    LayoutUndetermined,
    PlanError,
    default_value,
    detect_layout,
    is_rebuild_file,
    plan,
    rebuild_scope,
    structure_writes,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import parse_spec
from damon_examples import EXAMPLE
from fake_damon_sysfs import FakeDamonSysfs

C = "kdamonds/0/contexts/0"
P3 = C + "/monitoring_attrs/sample/primitives/perf_events"

# The documented order (docs/damon-perf-abi.md, "Write order ... (v3 layout)").
EXPECTED_V3 = [
    ("kdamonds/nr_kdamonds", "1"),
    ("kdamonds/0/contexts/nr_contexts", "1"),
    (C + "/operations", "vaddr"),
    (C + "/monitoring_attrs/intervals/sample_us", "5000000"),
    (C + "/monitoring_attrs/intervals/aggr_us", "60000000"),
    (C + "/monitoring_attrs/intervals/update_us", "300000000"),
    (C + "/monitoring_attrs/nr_regions/min", "1000000000"),
    (C + "/monitoring_attrs/nr_regions/max", "1000000000"),
    (P3 + "/nr_perf_events", "1"),
    (P3 + "/0/sample_freq", "5000"),
    (P3 + "/0/sample_phys_addr", "0"),
    (P3 + "/0/type", "0x4"),
    (P3 + "/0/config", "0x1cd"),
    (P3 + "/0/config1", "0x1f"),
    (P3 + "/0/config2", "0x0"),
    (C + "/targets/nr_targets", "1"),
    (C + "/targets/0/pid_target", "1234"),
    ("kdamonds/0/state", "on"),
]


def test_published_example_rfc_v3_order_and_values():
    result = plan(parse_spec([EXAMPLE]), "rfc-v3")
    assert result.writes == EXPECTED_V3
    assert result.perf == {0: True}
    assert result.notes == []


@pytest.mark.parametrize(
    ("layout", "perf_dir"),
    [("rfc-v1", C + "/perf_events"), ("successor", C + "/monitoring_attrs/sample/perf_events")],
)
def test_other_perf_layouts_move_only_the_perf_directory(layout, perf_dir):
    writes = plan(parse_spec([EXAMPLE]), layout).writes
    expected = [(path.replace(P3, perf_dir), value) for path, value in EXPECTED_V3]
    assert writes == expected


def test_mainline_fails_under_fail_policy():
    with pytest.raises(
        PlanError,
        match=r"damon_perf_kdamonds\[0\]: the running kernel's DAMON "
        r"\(mainline layout\) has no perf_events directory",
    ):
        plan(parse_spec([EXAMPLE]), "mainline")


def test_mainline_accessed_bit_policy_plans_without_perf():
    result = plan(parse_spec([EXAMPLE], no_event_policy="accessed_bit"), "mainline")
    assert [w for w in result.writes if "perf" in w[0]] == []
    assert result.writes[-1] == ("kdamonds/0/state", "on")
    assert result.perf == {0: False}
    assert "using the accessed-bit check" in result.notes[0]


def test_skip_policy_plans_nothing():
    spec = parse_spec(
        [{k: v for k, v in EXAMPLE.items() if k != "perf_events"}], no_event_policy="skip"
    )
    result = plan(spec, "rfc-v3")
    assert result.skipped and result.writes == []
    assert "no perf event listed in inventory nor detected" in result.notes[0]


def test_accessed_bit_on_perf_layout_clears_old_events():
    spec = parse_spec([dict(EXAMPLE, perf_events=None)], no_event_policy="accessed_bit")
    writes = dict(plan(spec, "rfc-v3").writes)
    assert writes[P3 + "/nr_perf_events"] == "0"


def test_explicit_empty_events_skip_the_policy():
    result = plan(parse_spec([dict(EXAMPLE, perf_events=[])]), "mainline")
    assert result.notes == [] and result.perf == {0: False}


def test_sample_freq_above_max_sample_rate():
    with pytest.raises(
        PlanError,
        match=r"perf_events\[0\]\.sample_freq: 5000 exceeds "
        r"/proc/sys/kernel/perf_event_max_sample_rate \(4000\)",
    ):
        plan(parse_spec([EXAMPLE]), "rfc-v3", max_sample_rate=4000)
    assert plan(parse_spec([EXAMPLE]), "rfc-v3", max_sample_rate=5000).writes


def test_paddr_and_fvaddr_regions():
    spec = parse_spec(
        [
            {
                "operations": "paddr",
                "targets": [{"start": "0x100000", "end": "0x200000"}],
                "perf_events": [],
            },
            {
                "operations": "fvaddr",
                "perf_events": [],
                "targets": [{"pid": 7, "regions": [{"start": 4096, "end": 8192}]}],
            },
        ]
    )
    writes = plan(spec, "mainline").writes
    t0, t1 = C + "/targets/0", "kdamonds/1/contexts/0/targets/0"
    assert writes.index(("kdamonds/nr_kdamonds", "2")) == 0
    assert (t0 + "/regions/nr_regions", "1") in writes
    assert (t0 + "/regions/0/start", str(0x100000)) in writes
    assert not any(p == t0 + "/pid_target" for p, _ in writes)
    assert writes[writes.index((t1 + "/pid_target", "7")) + 1 :][:3] == [
        (t1 + "/regions/nr_regions", "1"),
        (t1 + "/regions/0/start", "4096"),
        (t1 + "/regions/0/end", "8192"),
    ]
    assert writes[-1] == ("kdamonds/1/state", "on")


def test_paddr_perf_events_sample_physical_addresses():
    spec = parse_spec(
        [{"operations": "paddr", "targets": [{"start": 0, "end": 4096}]}],
        default_perf_events=[{"type": 4, "config": "0x1cd"}],
    )
    writes = dict(plan(spec, "rfc-v3").writes)
    assert writes[P3 + "/0/sample_phys_addr"] == "1"
    assert writes[P3 + "/0/sample_freq"] == "5000"


def test_unresolved_target_cannot_be_planned():
    with pytest.raises(PlanError, match="not resolved to a pid"):
        plan(parse_spec([dict(EXAMPLE, targets=[{"unit": "x"}])]), "rfc-v3")


def test_unknown_layout_name():
    with pytest.raises(PlanError, match="unknown layout 'rfc-v9'"):
        plan(parse_spec([EXAMPLE]), "rfc-v9")


def test_structure_writes_and_rebuild_rules():
    assert structure_writes(parse_spec([EXAMPLE, EXAMPLE])) == [
        ("kdamonds/nr_kdamonds", "2"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
        ("kdamonds/1/contexts/nr_contexts", "1"),
    ]
    assert is_rebuild_file(C + "/targets/0/regions/nr_regions")
    assert not is_rebuild_file(C + "/monitoring_attrs/nr_regions/min")
    assert rebuild_scope(P3 + "/nr_perf_events") == P3
    assert default_value(P3 + "/0/config") == "0x0"
    assert default_value(C + "/monitoring_attrs/nr_regions/max") == "1000"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_detect_each_layout_from_a_tree(tmp_path, layout):
    fake = FakeDamonSysfs(tmp_path, layout=layout)
    fake.write(fake.root + "/kdamonds/nr_kdamonds", "1")
    fake.write(fake.root + "/kdamonds/0/contexts/nr_contexts", "1")
    assert detect_layout(fake.root) == layout


def test_detect_needs_a_context(tmp_path):
    fake = FakeDamonSysfs(tmp_path)
    with pytest.raises(LayoutUndetermined):
        detect_layout(fake.root)
    fake.write(fake.root + "/kdamonds/nr_kdamonds", "2")
    with pytest.raises(LayoutUndetermined):
        detect_layout(fake.root)


def test_unknown_layout_names_the_paths_it_looked_for(tmp_path):
    ctx = tmp_path / "kdamonds" / "0" / "contexts" / "0"
    (ctx / "something_new").mkdir(parents=True)
    with pytest.raises(LayoutError) as info:
        detect_layout(str(tmp_path))
    message = str(info.value)
    assert message.startswith("unknown DAMON sysfs layout: looked for ")
    for probe in (
        "monitoring_attrs/sample/primitives/perf_events",
        "monitoring_attrs/sample/perf_events",
        "/0/perf_events",
        "monitoring_attrs/intervals",
    ):
        assert probe in message


def test_no_damon_sysfs(tmp_path):
    with pytest.raises(LayoutError, match="CONFIG_DAMON_SYSFS=y"):
        detect_layout(str(tmp_path / "nothing"))
