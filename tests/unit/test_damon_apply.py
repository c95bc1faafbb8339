"""The apply engine over the fake sysfs, and the fake's kernel behaviour itself."""

from __future__ import annotations

import errno
import json
import os

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    RealSysfs,
    parse_iomem_system_ram,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.applier import (
    applier_main,
    load_config,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    Applier,
    ApplyError,
    EvidenceSettings,
    apply_spec,
    diff_text,
    parse_perf_failures,
    same_value,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import PlanError
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import parse_spec
from damon_examples import EXAMPLE
from fake_damon_sysfs import FakeDamonSysfs, FakeKernelLog, kstrtoint, kstrtoull

C = "kdamonds/0/contexts/0"
P3 = C + "/monitoring_attrs/sample/primitives/perf_events"


@pytest.fixture
def fake(tmp_path):
    return FakeDamonSysfs(tmp_path, layout="rfc-v3")


def run(fake, kdamonds=(EXAMPLE,), check=False, policy="fail", **kwargs):
    """Apply over the fake; time passes only through the fake (no real sleep)."""
    spec = parse_spec(list(kdamonds), no_event_policy=policy)
    kwargs.setdefault("sleep", fake.advance)
    return apply_spec(spec, fake, fake.root, fake.log, check_mode=check, settle_time=0, **kwargs)


# ------------------------------------------------------------------ the fake


def test_fake_parses_numbers_like_the_kernel():
    assert kstrtoull("0x1cd") == 0x1CD
    assert kstrtoull("010\n") == 8
    assert kstrtoull("+7") == 7
    assert kstrtoint("-3") == -3
    for bad in ("", "12a", "0x", "08", "1\n\n", "-1"):
        with pytest.raises(OSError) as info:
            kstrtoull(bad)
        assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        kstrtoull(str(1 << 64))
    assert info.value.errno == errno.ERANGE


def test_fake_rebuilds_numbered_dirs_with_zeroed_values(fake):
    fake.write(fake.root + "/kdamonds/nr_kdamonds", "1")
    fake.write(fake.root + "/kdamonds/0/contexts/nr_contexts", "1")
    fake.write(fake.root + "/" + P3 + "/nr_perf_events", "2")
    fake.write(fake.root + "/" + P3 + "/1/config", "461")
    assert fake.get(P3 + "/1/config") == "0x1cd"  # hex read-back
    fake.write(fake.root + "/" + P3 + "/1/type", "010")
    assert fake.get(P3 + "/1/type") == "0x8"  # base-0 parsing: octal
    fake.write(fake.root + "/" + P3 + "/nr_perf_events", "2")
    assert fake.get(P3 + "/1/config") == "0x0"
    fake.write(fake.root + "/" + P3 + "/nr_perf_events", "1")
    assert not os.path.exists(fake.root + "/" + P3 + "/1")


@pytest.mark.parametrize(
    ("rel", "value", "code"),
    [
        ("kdamonds/0/contexts/nr_contexts", "2", errno.EINVAL),
        ("kdamonds/0/contexts/nr_contexts", "-1", errno.EINVAL),
        (P3 + "/nr_perf_events", "65", errno.EINVAL),
        (C + "/operations", "vmaddr", errno.EINVAL),
        (C + "/monitoring_attrs/intervals/sample_us", "-5", errno.EINVAL),
        (P3 + "/0/type", str(1 << 32), errno.ERANGE),
        (P3 + "/0/sample_phys_addr", "maybe", errno.EINVAL),
        ("kdamonds/0/state", "start", errno.EINVAL),
        ("kdamonds/0/state", "off", errno.EINVAL),
        ("kdamonds/0/state", "commit", errno.EINVAL),
        ("kdamonds/0/state", "update_schemes_stats", errno.EINVAL),
        ("kdamonds/0/pid", "1", errno.EACCES),
        (C + "/avail_operations", "paddr", errno.EACCES),
    ],
)
def test_fake_refuses_like_the_kernel(fake, rel, value, code):
    for path, val in (
        ("kdamonds/nr_kdamonds", "1"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
        (P3 + "/nr_perf_events", "1"),
    ):
        fake.write(fake.root + "/" + path, val)
    with pytest.raises(OSError) as info:
        fake.write(fake.root + "/" + rel, value)
    assert info.value.errno == code


def test_fake_state_keywords(fake):
    run(fake)
    root = fake.root
    with pytest.raises(OSError) as info:
        fake.write(root + "/kdamonds/0/state", "on")
    assert info.value.errno == errno.EBUSY
    with pytest.raises(OSError) as info:
        fake.write(root + "/kdamonds/nr_kdamonds", "2")
    assert info.value.errno == errno.EBUSY
    fake.write(root + "/kdamonds/0/state", "update_schemes_stats\n")
    fake.write(root + "/kdamonds/0/state", "commit")
    fake.write(root + "/kdamonds/0/state", "off")
    assert fake.get("kdamonds/0/pid") == "-1"
    with pytest.raises(OSError) as info:
        fake.write(root + "/kdamonds/0/state", "off")
    assert info.value.errno == errno.EPERM


# ------------------------------------------------------------------ apply


def test_apply_example_then_idempotent(fake):
    first = run(fake)
    assert first.changed and first.layout == "rfc-v3"
    assert first.writes[0] == ("kdamonds/nr_kdamonds", "1")
    assert first.writes[-1] == ("kdamonds/0/state", "on")
    assert fake.writes == first.writes
    # leaves equal to the kernel defaults (config2 0, sample_phys_addr 0) need no write
    assert (P3 + "/0/config2", "0x0") not in first.writes
    assert fake.get(P3 + "/0/config") == "0x1cd"
    assert first.kdamonds == [{"index": 0, "state": "on", "pid": 4000}]
    assert first.perf_effective == "yes"

    fake.writes.clear()
    second = run(fake)
    assert second.changed is False
    assert second.writes == [] and fake.writes == []
    assert second.perf_effective == "yes"
    assert second.as_dict()["diff"] == {"before": "", "after": ""}


def test_check_mode_writes_nothing_and_predicts_the_real_run(fake):
    run(fake)
    changed = dict(
        EXAMPLE,
        nr_regions={"min": 10, "max": 2000},
        perf_events=[
            {"type": 4, "config": "0x1cd", "config1": "0x3"},
            {"type": 4, "config": "0x1cd"},
        ],
    )
    before = fake.snapshot()
    fake.writes.clear()
    predicted = run(fake, [changed], check=True)
    assert fake.writes == [] and fake.snapshot() == before
    assert predicted.changed
    real = run(fake, [changed])
    assert predicted.writes == real.writes
    assert predicted.as_dict()["diff"] == real.as_dict()["diff"]
    assert real.writes[-1] == ("kdamonds/0/state", "commit")


def test_check_mode_with_nothing_to_write_shows_the_running_kdamond(fake):
    # playbooks/verify.yml runs the module in check mode and asserts on the pids.
    real = run(fake)
    pid = real.kdamonds[0]["pid"]
    assert real.kdamonds[0]["state"] == "on" and pid and pid > 0
    checked = run(fake, check=True)
    assert checked.writes == [] and not checked.changed
    assert checked.kdamonds == [{"index": 0, "state": "on", "pid": pid}]
    # A kdamond the check would start has no pid yet.
    fresh = FakeDamonSysfs(fake.root.rsplit("/", 1)[0] + "/fresh", layout="rfc-v3")
    predicted = run(fresh, check=True, layout="rfc-v3")
    assert predicted.kdamonds == [{"index": 0, "state": "on", "pid": None}]


def test_check_mode_on_a_fresh_tree_reports_the_directory_writes(fake):
    result = run(fake, check=True)
    assert result.changed and result.layout is None
    assert result.writes == [
        ("kdamonds/nr_kdamonds", "1"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
    ]
    assert "layout not visible" in result.warnings[0]
    assert fake.writes == []
    with_layout = run(fake, check=True, layout="rfc-v3")
    assert with_layout.writes == run(fake).writes


def test_diff_lines(fake):
    run(fake)
    result = run(
        fake,
        [dict(EXAMPLE, intervals={"sample_us": "10ms", "aggr_us": "60s", "update_us": "300s"})],
    )
    diff = result.as_dict()["diff"]
    assert diff["before"] == (
        f"{C}/monitoring_attrs/intervals/sample_us = 5000000\nkdamonds/0/state = on\n"
    )
    assert diff["after"] == (
        f"{C}/monitoring_attrs/intervals/sample_us = 10000\nkdamonds/0/state = commit\n"
    )
    assert diff_text([("a", "1")]) == "a = 1\n"


def test_running_kdamond_gets_leaves_then_commit(fake):
    run(fake)
    pid = fake.running[0]
    result = run(fake, [dict(EXAMPLE, targets=[{"pid": 999}])])
    assert result.writes == [(C + "/targets/0/pid_target", "999"), ("kdamonds/0/state", "commit")]
    assert fake.running[0] == pid


def test_state_off_and_back_on(fake):
    run(fake)
    off = run(fake, [dict(EXAMPLE, state="off")])
    assert off.writes == [("kdamonds/0/state", "off")]
    assert off.kdamonds == [{"index": 0, "state": "off", "pid": None}]
    assert off.perf_effective == "no"
    assert off.as_dict()["perf_evidence"]["reason"] == (
        "no perf event configured; monitoring with accessed bits"
    )
    assert run(fake, [dict(EXAMPLE, state="off")]).changed is False
    on = run(fake)
    assert on.writes == [("kdamonds/0/state", "on")]


def test_changing_the_number_of_kdamonds_stops_running_ones_first(fake):
    run(fake)
    result = run(fake, [EXAMPLE, dict(EXAMPLE, targets=[{"pid": 77}])])
    assert result.writes[:2] == [("kdamonds/0/state", "off"), ("kdamonds/nr_kdamonds", "2")]
    assert "stopping kdamond 0" in result.warnings[0]
    assert sorted(fake.running) == [0, 1]
    removed = run(fake, [])
    assert removed.writes == [
        ("kdamonds/0/state", "off"),
        ("kdamonds/1/state", "off"),
        ("kdamonds/nr_kdamonds", "0"),
    ]
    assert fake.running == {}


def test_kdamond_that_exits_is_restarted(fake):
    run(fake)
    fake.stop(0)  # the target process went away
    assert run(fake).writes == [("kdamonds/0/state", "on")]


def test_dead_target_pid_is_a_clear_error(tmp_path):
    fake = FakeDamonSysfs(tmp_path, alive_pids={1})
    with pytest.raises(ApplyError) as info:
        run(fake)
    assert str(info.value) == (
        f"writing 'on' to {fake.root}/kdamonds/0/state failed: EINVAL (Invalid argument)"
    )
    assert info.value.result is not None and info.value.result.changed


@pytest.mark.parametrize("cpus", [(0,), (0, 1, 2, 3)])
def test_silent_fallback_fails_under_the_fail_fallback_policy(tmp_path, cpus):
    fake = FakeDamonSysfs(tmp_path, perf_fail_cpus=cpus, online_cpus=cpus)
    with pytest.raises(ApplyError) as info:
        run(fake, evidence=EvidenceSettings(fallback_policy="fail"))
    lines = "; ".join(f"damon: perf event create on CPU {cpu} failed with -95" for cpu in cpus)
    assert str(info.value) == (
        f"perf_effective: no ({lines}; monitoring with accessed bits) "
        "(damon_perf_fallback_policy is 'fail')"
    )
    assert info.value.result.perf_effective == "no"
    assert len(info.value.result.perf_failures) == len(cpus)
    assert fake.running  # the kdamond is left running, as the docs say


def test_silent_fallback_goes_on_with_accessed_bits_by_default_and_is_seen_again(tmp_path):
    fake = FakeDamonSysfs(tmp_path, perf_fail_cpus=(0, 1))
    result = run(fake)  # damon_perf_no_event_policy 'fail' is not about dropped events
    assert result.perf_effective == "no"
    assert result.perf_failures == [{"cpu": 0, "error": "-95"}, {"cpu": 1, "error": "-95"}]
    reason = (
        "damon: perf event create on CPU 0 failed with -95; "
        "damon: perf event create on CPU 1 failed with -95; monitoring with accessed bits"
    )
    assert result.as_dict()["perf_evidence"] == {
        "reason": reason,
        "failures": [
            "damon: perf event create on CPU 0 failed with -95",
            "damon: perf event create on CPU 1 failed with -95",
        ],
        "failure_count": 2,
        "total_reports": [{"kdamond": 0, "first": 0, "last": 0}],
        "window_s": 3.0,
        "stand_in": False,
        "fallback": "accessed_bits",
    }
    assert result.warnings == [
        f"perf_effective: no ({reason}); going on (damon_perf_fallback_policy is "
        "'accessed_bits'; 'fail' fails the host instead)"
    ]
    again = run(fake)  # nothing written: looks since the kdamond started
    assert again.changed is False and again.perf_effective == "no"
    assert again.as_dict()["perf_evidence"]["reason"] == reason


def test_an_event_dropped_on_one_cpu_is_a_no_even_when_the_others_sample(tmp_path):
    fake = FakeDamonSysfs(tmp_path, perf_fail_cpus=(1,), online_cpus=(0, 1))
    result = run(fake)
    assert result.perf_effective == "no"
    assert result.as_dict()["perf_evidence"]["reason"] == (
        "damon: perf event create on CPU 1 failed with -95; total_reports grew 0 -> 300 "
        "over 3 s from the events that remain"
    )
    assert result.as_dict()["perf_evidence"]["fallback"] is None


def test_unreadable_kernel_log_leaves_perf_effective_unknown(tmp_path):
    log = FakeKernelLog()
    log.readable = False
    fake = FakeDamonSysfs(tmp_path, log=log)
    result = run(fake)
    assert result.perf_effective == "unknown"
    assert result.as_dict()["perf_evidence"]["reason"] == (
        "cannot read the kernel log (EPERM (Operation not permitted)); "
        "total_reports grew 0 -> 600 over 3 s"
    )
    assert result.warnings == []  # unknown is not a fallback


def test_parse_perf_failures_from_kernel_log_text():
    text = """[  12.1] damon: perf event create on CPU 0 failed with -95
[  12.2] something else
[  12.3] perf event create on CPU 17 failed with -EOPNOTSUPP"""
    assert parse_perf_failures(text.splitlines()) == [
        {"cpu": 0, "error": "-95"},
        {"cpu": 17, "error": "-EOPNOTSUPP"},
    ]
    assert parse_perf_failures(["all fine"]) == []


def test_mainline_layout_with_accessed_bit(tmp_path):
    fake = FakeDamonSysfs(tmp_path, layout="mainline")
    result = run(fake, policy="accessed_bit")
    assert result.layout == "mainline" and result.perf_effective == "no"
    assert result.as_dict()["perf_evidence"]["reason"] == (
        "no perf event configured (mainline layout); monitoring with accessed bits"
    )
    assert not any("perf" in path for path, _ in result.writes)
    with pytest.raises(
        ApplyError, match="expected DAMON sysfs layout rfc-v3 but the running kernel has mainline"
    ):
        run(fake, policy="accessed_bit", layout="rfc-v3")


def test_mainline_layout_fails_under_fail_policy(tmp_path):
    fake = FakeDamonSysfs(tmp_path, layout="mainline")
    with pytest.raises(PlanError) as info:
        run(fake)
    assert str(info.value) == (
        "damon_perf_kdamonds[0]: the running kernel's DAMON (mainline layout) has no "
        "perf_events directory (damon_perf_no_event_policy is 'fail')"
    )
    assert fake.get("kdamonds/nr_kdamonds") == "1"  # only the directories, to see the layout
    assert fake.get("kdamonds/0/state") == "off"


@pytest.mark.parametrize("layout", ["rfc-v1", "successor"])
def test_other_perf_layouts_apply_and_are_idempotent(tmp_path, layout):
    fake = FakeDamonSysfs(tmp_path, layout=layout)
    first = run(fake)
    assert first.perf_effective == "unknown"  # no total_reports in these layouts
    assert first.as_dict()["perf_evidence"]["reason"] == (
        "no perf event create failure in the kernel log since the 'on'/'commit' write, but "
        "this kernel has no total_reports counter: the kernel log is the only evidence"
    )
    assert fake.slept == []  # nothing to watch: no window spent
    assert run(fake).changed is False


class Resolver:
    def pid_of_pidfile(self, path):
        return 5

    def pid_of_unit(self, unit):
        return 6

    def pid_of_process(self, name):
        return 7

    def system_ram(self):
        return [(0x100000, 0x80000000), (0x100000000, 0x180000000)]


def test_paddr_from_iomem_and_unit_targets(fake):
    spec = parse_spec(
        [{"operations": "paddr", "perf_events": []}, dict(EXAMPLE, targets=[{"unit": "memcached"}])]
    )
    result = apply_spec(
        spec, fake, fake.root, fake.log, Resolver(), settle_time=0, sleep=fake.advance
    )
    assert fake.get(C + "/targets/0/regions/1/end") == str(0x180000000)
    assert fake.get("kdamonds/1/contexts/0/targets/0/pid_target") == "6"
    assert result.perf_effective == "yes"  # kdamond 1 samples; kdamond 0 has no perf event
    assert result.as_dict()["perf_evidence"]["total_reports"] == [
        {"kdamond": 1, "first": 0, "last": 600}
    ]


def test_unavailable_operations(tmp_path):
    fake = FakeDamonSysfs(tmp_path, avail_operations=("vaddr", "fvaddr"))
    spec = parse_spec(
        [{"operations": "paddr", "targets": [{"start": 0, "end": 4096}], "perf_events": []}]
    )
    with pytest.raises(
        ApplyError, match=r"paddr is not available on this kernel .*CONFIG_DAMON_PADDR"
    ):
        apply_spec(spec, fake, fake.root, fake.log, settle_time=0)


def test_read_back_mismatch_is_reported(fake):
    class Lossy(FakeDamonSysfs):
        def _w_config1(self, rel, value):
            self._file(rel, "0x0")

    lossy = Lossy(fake.base / "other")
    with pytest.raises(ApplyError, match=r"read-back mismatch: .*config1: wrote 0x1f, reads 0x0"):
        run(lossy)


@pytest.mark.parametrize(
    "rel",
    [
        "../../../etc/passwd",
        "/etc/passwd",
        "kdamonds/../../x",
        "kdamonds//nr_kdamonds",
        "kdamonds/./nr_kdamonds",
        "",
    ],
)
def test_paths_outside_the_admin_root_are_refused(fake, rel):
    with pytest.raises(ApplyError, match="refusing path"):
        Applier(fake, fake.root).abspath(rel)


def test_symlink_escape_is_refused(fake, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "state").write_text("untouched\n")
    os.symlink(outside, fake.root + "/kdamonds/escape")
    io = RealSysfs(fake.root)
    with pytest.raises(OSError) as info:
        io.write(fake.root + "/kdamonds/escape/state", "on")
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(OSError) as info:
        io.read(fake.root + "/kdamonds/escape/state")
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert io.exists(fake.root + "/kdamonds/escape/state") is False
    assert (outside / "state").read_text() == "untouched\n"


def test_values_with_newlines_are_refused(fake):
    applier = Applier(fake, fake.root)
    with pytest.raises(ApplyError, match="one line expected"):
        applier._write("kdamonds/nr_kdamonds", "1\n2", "0")


def test_missing_admin_root(tmp_path):
    spec = parse_spec([EXAMPLE])
    with pytest.raises(ApplyError, match="CONFIG_DAMON_SYSFS=y"):
        apply_spec(spec, FakeDamonSysfs(tmp_path), str(tmp_path / "none"), settle_time=0)


@pytest.mark.parametrize(
    ("path", "current", "wanted", "same"),
    [
        ("x/config", "0x1cd", "461", True),
        ("x/type", "0x4", "0x4", True),
        ("x/sample_phys_addr", "1", "y", True),
        ("x/sample_phys_addr", "0", "1", False),
        ("x/operations", "vaddr", "paddr", False),
        ("x/pid_target", "12", "12", True),
        ("x/start", None, "0", False),
    ],
)
def test_same_value(path, current, wanted, same):
    assert same_value(path, current, wanted) is same


def test_parse_iomem_system_ram():
    text = """00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000fffff : Reserved
00100000-7ffdffff : System RAM
  01000000-01ffffff : Kernel code
100000000-17fffffff : System RAM
"""
    assert parse_iomem_system_ram(text) == [
        (0x1000, 0x9FC00),
        (0x100000, 0x7FFE0000),
        (0x100000000, 0x180000000),
    ]
    with pytest.raises(ValueError, match="needs root"):
        parse_iomem_system_ram("00000000-00000000 : System RAM\n")


# ------------------------------------------------------------------ the boot-time applier


def test_applier_check_on_a_copied_tree(fake, tmp_path, capsys):
    run(fake)
    config = tmp_path / "damon.yml"
    config.write_text(
        "# managed\n" + json.dumps({"damon_perf_kdamonds": [EXAMPLE], "damon_perf_settle_time": 0})
    )
    loaded = load_config(str(config))
    fake.slept.clear()
    assert loaded.spec.kdamonds[0].operations == "vaddr"
    assert loaded.settle_time == 0
    rc = applier_main(
        ["--config", str(config), "--check", "--root", fake.root], fake.log, fake.advance
    )
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 0 and out["changed"] is False and out["layout"] == "rfc-v3"
    assert out["perf_effective"] == "yes"  # read-only evidence, nothing to write
    assert fake.slept == [3.0]
    assert captured.err == (
        "damon-fleet-apply: perf_effective yes (no perf event create failure in the kernel "
        "log since the kdamond started; total_reports grew 600 -> 1200 over 3 s)\n"
    )


def test_applier_fails_clearly(tmp_path, capsys):
    config = tmp_path / "damon.yml"
    config.write_text(json.dumps({"damon_perf_kdamonds": [dict(EXAMPLE, operations="x")]}))
    rc = applier_main(["--config", str(config), "--root", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 1
    assert json.loads(captured.out)["failed"] is True
    assert captured.err == (
        "damon-fleet-apply: error: damon_perf_kdamonds[0].operations: 'x' is not one of "
        "vaddr, fvaddr, paddr\n"
    )


def test_applier_names_a_stand_in_kernel_from_the_config(fake, tmp_path, capsys):
    run(fake)
    config = tmp_path / "damon.yml"
    config.write_text(
        json.dumps(
            {
                "damon_perf_kdamonds": [EXAMPLE],
                "damon_perf_evidence_window": 1,
                # the running kernel of this machine: /proc/sys/kernel/osrelease
                "damon_perf_stand_in_kernels": [os.uname().release, "6.12.117-other"],
            }
        )
    )
    rc = applier_main(
        ["--config", str(config), "--check", "--root", fake.root], fake.log, fake.advance
    )
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 0 and out["perf_evidence"]["stand_in"] is True
    assert out["perf_summary"].startswith("yes (stand-in kernel; ")
    assert out["perf_evidence"]["window_s"] == 1.0


# ------------------------------------------------- one run validates before any write


def _tree(fake):
    """Every file below the admin root with its content: what a run may have changed."""
    out = {}
    for path in sorted(fake.root_path.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(fake.root_path))] = path.read_text()
    return out


VADDR = {"operations": "vaddr", "targets": [{"pid": 1}], "perf_events": []}


def test_a_bad_plan_fails_before_kdamonds_are_stopped_or_rebuilt(tmp_path):
    # Running one kdamond, then two: the run stops it and rebuilds the directories
    # (nr_kdamonds) only after the plan on the visible layout passed, as a check-mode run
    # would have found; so the one apply call needs no validation call before it.
    fake = FakeDamonSysfs(tmp_path, layout="mainline")
    run(fake, kdamonds=[VADDR], policy="accessed_bit")
    assert fake.get("kdamonds/0/state") == "on"
    before = _tree(fake)
    with pytest.raises(PlanError, match=r"damon_perf_kdamonds\[1\]: the running kernel's DAMON"):
        run(fake, kdamonds=[VADDR, EXAMPLE])
    assert _tree(fake) == before


def test_a_layout_mismatch_fails_before_kdamonds_are_stopped(tmp_path):
    fake = FakeDamonSysfs(tmp_path, layout="mainline")
    run(fake, kdamonds=[VADDR], policy="accessed_bit")
    before = _tree(fake)
    with pytest.raises(ApplyError, match="expected DAMON sysfs layout rfc-v3 but the running"):
        run(fake, kdamonds=[VADDR, VADDR], policy="accessed_bit", layout="rfc-v3")
    assert _tree(fake) == before


def test_unavailable_operations_fail_before_kdamonds_are_stopped(tmp_path):
    fake = FakeDamonSysfs(tmp_path, avail_operations=("vaddr", "fvaddr"))
    run(fake, kdamonds=[VADDR])
    before = _tree(fake)
    paddr = {"operations": "paddr", "targets": [{"start": 0, "end": 4096}], "perf_events": []}
    with pytest.raises(ApplyError, match=r"kdamonds\[1\]\.operations: paddr is not available"):
        run(fake, kdamonds=[VADDR, paddr])
    assert _tree(fake) == before
