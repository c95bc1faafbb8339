"""The one table of kernel facts, the planner's defaults and the fake, held together.

``damon_kernel_facts`` holds what the real kernel does (measured on Linux 6.12;
tests/vm/test_lab_kernel.py re-reads it on the lab kernel).  Here: the planner's
``default_value`` agrees with it leaf by leaf, the fake builds exactly those files
with exactly those values, and check mode predicts every write a real apply makes.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import kernel_facts as facts
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    apply_spec,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    PERF_EVENTS_DIRS,
    default_value,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import parse_spec
from damon_examples import EXAMPLE
from fake_damon_sysfs import FakeDamonSysfs

NUMBERS = {"<K>": "1", "<C>": "0", "<T>": "2", "<R>": "3", "<P>": "4"}
CTX = "kdamonds/1/contexts/0"


def concrete(generic: str) -> str:
    for placeholder, number in NUMBERS.items():
        generic = generic.replace(placeholder, number)
    return generic


def test_measured_values_of_the_lab_kernel() -> None:
    """The values the VM tier measured on 6.12; a change here needs a new measurement."""
    attrs = "kdamonds/<K>/contexts/<C>/monitoring_attrs/"
    assert facts.MAINLINE_DEFAULTS[attrs + "intervals/update_us"] == "60000000"
    assert facts.MAINLINE_DEFAULTS[attrs + "intervals/sample_us"] == "5000"
    assert facts.MAINLINE_DEFAULTS[attrs + "intervals/aggr_us"] == "100000"
    assert facts.MAINLINE_DEFAULTS["kdamonds/<K>/contexts/<C>/avail_operations"] == (
        "vaddr\nfvaddr\npaddr"
    )
    assert facts.EMPTY_REGION_AT_ON == errno.EINVAL
    assert "update_tuned_intervals" not in facts.STATE_COMMANDS


@pytest.mark.parametrize("key", sorted(facts.MAINLINE_DEFAULTS) + sorted(facts.RFC_V3_DEFAULTS))
def test_planner_default_is_the_kernel_default(key: str) -> None:
    expected = {**facts.MAINLINE_DEFAULTS, **facts.RFC_V3_DEFAULTS}[key]
    assert default_value(concrete(key)) == expected


@pytest.mark.parametrize("layout", ["rfc-v3", "rfc-v1", "successor"])
@pytest.mark.parametrize("leaf", sorted(facts.PERF_EVENT_DEFAULTS))
def test_planner_perf_event_default_is_the_kernel_default(layout: str, leaf: str) -> None:
    path = f"{CTX}/{PERF_EVENTS_DIRS[layout]}/{concrete(leaf)}"
    assert default_value(path) == facts.PERF_EVENT_DEFAULTS[leaf]


def test_unknown_files_have_no_default() -> None:
    assert default_value(f"{CTX}/monitoring_attrs/intervals/nope") is None
    assert default_value("kdamonds/1/contexts/0/perf_events/4/freq") is None


def build_everything(fake: FakeDamonSysfs) -> None:
    """Create one of every numbered directory."""
    perf = PERF_EVENTS_DIRS[fake.layout]
    for rel, value in (
        ("kdamonds/nr_kdamonds", "2"),
        ("kdamonds/1/contexts/nr_contexts", "1"),
        (f"{CTX}/targets/nr_targets", "3"),
        (f"{CTX}/targets/2/regions/nr_regions", "4"),
    ):
        fake.write(f"{fake.root}/{rel}", value)
    if perf is not None:
        fake.write(f"{fake.root}/{CTX}/{perf}/nr_perf_events", "5")


@pytest.mark.parametrize("layout", ["rfc-v3", "mainline", "rfc-v1"])
def test_every_file_the_fake_creates_reads_the_planner_default(tmp_path: Any, layout: str) -> None:
    fake = FakeDamonSysfs(tmp_path, layout=layout)
    build_everything(fake)
    snapshot = fake.snapshot()
    written = {
        "kdamonds/nr_kdamonds",
        "kdamonds/1/contexts/nr_contexts",
        f"{CTX}/targets/nr_targets",
        f"{CTX}/targets/2/regions/nr_regions",
    }
    perf = PERF_EVENTS_DIRS[layout]
    if perf is not None:
        written.add(f"{CTX}/{perf}/nr_perf_events")
    for rel, content in snapshot.items():
        if rel in written:
            continue
        assert default_value(rel) == content, rel
    # and every file of the table exists in the tree
    keys = set(facts.MAINLINE_DEFAULTS) | (
        set(facts.RFC_V3_DEFAULTS) if layout == "rfc-v3" else set()
    )
    seen = {facts.generic(rel) for rel in snapshot}
    assert keys <= seen
    if perf is not None:
        assert {facts.generic(f"{CTX}/{perf}/") + k for k in facts.PERF_EVENT_DEFAULTS} <= seen


def test_fake_lists_operations_one_per_line(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path, avail_operations=("vaddr", "paddr"))
    build_everything(fake)
    assert fake.read(f"{fake.root}/{CTX}/avail_operations") == "vaddr\npaddr\n"
    assert facts.parse_avail_operations("vaddr\nfvaddr\npaddr\n") == ["vaddr", "fvaddr", "paddr"]


def _paddr_region(fake: FakeDamonSysfs, start: int, end: int) -> None:
    for rel, value in (
        ("kdamonds/nr_kdamonds", "1"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
        ("kdamonds/0/contexts/0/operations", "paddr"),
        ("kdamonds/0/contexts/0/targets/nr_targets", "1"),
        ("kdamonds/0/contexts/0/targets/0/regions/nr_regions", "1"),
        ("kdamonds/0/contexts/0/targets/0/regions/0/start", str(start)),
        ("kdamonds/0/contexts/0/targets/0/regions/0/end", str(end)),
    ):
        fake.write(f"{fake.root}/{rel}", value)


@pytest.mark.parametrize(("start", "end"), [(4096, 4096), (8192, 4096)])
def test_fake_refuses_an_empty_or_inverted_region_at_on(
    tmp_path: Any, start: int, end: int
) -> None:
    fake = FakeDamonSysfs(tmp_path)
    _paddr_region(fake, start, end)
    with pytest.raises(OSError) as info:
        fake.write(fake.root + "/kdamonds/0/state", "on")
    assert info.value.errno == errno.EINVAL
    assert fake.get("kdamonds/0/state") == "off"
    assert fake.get("kdamonds/0/pid") == "-1"


def test_fake_refuses_update_tuned_intervals_like_6_12(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path)
    _paddr_region(fake, 4096, 8192)
    fake.write(fake.root + "/kdamonds/0/state", "on")
    with pytest.raises(OSError) as info:
        fake.write(fake.root + "/kdamonds/0/state", "update_tuned_intervals")
    assert info.value.errno == errno.EINVAL
    fake.write(fake.root + "/kdamonds/0/state", "update_schemes_stats")
    assert fake.get("kdamonds/0/state") == "on"


# --------------------------------------------------------------------------- check mode


def two_kdamonds(update: str = "1s") -> list[dict[str, Any]]:
    first = dict(EXAMPLE, intervals={"update_us": update})
    second = dict(EXAMPLE, targets=[{"pid": 4321}], intervals={"sample_us": "10ms"})
    return [first, second]


def check_then_apply(fake: FakeDamonSysfs, kdamonds: list[dict[str, Any]], **kwargs: Any) -> None:
    """Check mode predicts exactly the writes (paths, values, order) the real apply makes."""
    spec = parse_spec(kdamonds)
    before = fake.snapshot()
    checked = apply_spec(
        spec,
        fake,
        fake.root,
        fake.log,
        check_mode=True,
        settle_time=0,
        sleep=fake.advance,
        **kwargs,
    )
    assert fake.snapshot() == before
    fake.writes.clear()
    applied = apply_spec(
        spec, fake, fake.root, fake.log, settle_time=0, sleep=fake.advance, **kwargs
    )
    assert checked.writes == applied.writes
    assert [tuple(w) for w in fake.writes] == applied.writes
    assert len(checked.writes) == len(fake.writes)


def test_check_mode_on_a_fresh_tree_predicts_two_kdamonds(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path)
    check_then_apply(fake, two_kdamonds(), layout="rfc-v3")
    update = "kdamonds/{}/contexts/0/monitoring_attrs/intervals/update_us"
    written = dict(fake.writes)
    assert written[update.format(0)] == "1000000"
    # kdamond 1 keeps the kernel's default: nothing to write there
    assert update.format(1) not in written
    assert fake.get(update.format(1)) == "60000000"


@pytest.mark.parametrize("update", ["1s", "60s", "2m"])
def test_check_mode_from_one_kdamond_to_two(tmp_path: Any, update: str) -> None:
    fake = FakeDamonSysfs(tmp_path)
    apply_spec(parse_spec([EXAMPLE]), fake, fake.root, fake.log, settle_time=0, sleep=fake.advance)
    check_then_apply(fake, two_kdamonds(update))


def test_check_mode_on_two_running_kdamonds_that_change(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path)
    apply_spec(
        parse_spec(two_kdamonds("1s")), fake, fake.root, fake.log, settle_time=0, sleep=fake.advance
    )
    changed = two_kdamonds("60s")
    changed[1] = dict(changed[1], nr_regions={"min": 20, "max": 2000})
    check_then_apply(fake, changed)
    assert fake.writes[-1] == ("kdamonds/1/state", "commit")
