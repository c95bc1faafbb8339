"""The damon_sysfs module's main() with patched exit_json/fail_json, over the fake sysfs."""

from __future__ import annotations

from unittest import mock

import damon_sysfs
import pytest
from fake_damon_sysfs import FakeDamonSysfs
from module_harness import run_module

EXAMPLE = {
    "operations": "vaddr",
    "targets": [{"pid": 1234}],
    "intervals": {"sample_us": "5s", "aggr_us": "60s", "update_us": "300s"},
    "nr_regions": {"min": 1000000000, "max": 1000000000},
    "perf_events": [
        {
            "sample_freq": 5000,
            "sample_phys_addr": 0,
            "type": "0x4",
            "config": "0x1cd",
            "config1": "0x1f",
            "config2": 0,
        }
    ],
}


@pytest.fixture
def fake(tmp_path):
    fake = FakeDamonSysfs(tmp_path)
    with (
        mock.patch.object(damon_sysfs, "RealSysfs", return_value=fake),
        mock.patch.object(damon_sysfs, "KmsgLog", return_value=fake.log),
        mock.patch.object(damon_sysfs, "host_max_sample_rate", return_value=100000),
    ):
        yield fake


def call(fake, **args):
    args.setdefault("kdamonds", [EXAMPLE])
    args.setdefault("settle_time", 0)
    args["root"] = fake.root
    return run_module(damon_sysfs.main, args)


def test_apply_then_unchanged(fake):
    first = call(fake)
    assert not first.failed, first.result
    assert first.result["changed"] is True
    assert first.result["layout"] == "rfc-v3"
    assert first.result["perf_effective"] is True
    assert first.result["writes"][-1] == ["kdamonds/0/state", "on"]
    assert "diff" not in first.result
    second = call(fake)
    assert second.result["changed"] is False and second.result["writes"] == []


def test_check_mode_and_diff(fake):
    call(fake)
    fake.writes.clear()
    done = call(
        fake,
        kdamonds=[dict(EXAMPLE, targets=[{"pid": 42}])],
        _ansible_check_mode=True,
        _ansible_diff=True,
    )
    assert done.result["changed"] is True and fake.writes == []
    assert done.result["diff"] == {
        "before": "kdamonds/0/contexts/0/targets/0/pid_target = 1234\nkdamonds/0/state = on\n",
        "after": "kdamonds/0/contexts/0/targets/0/pid_target = 42\nkdamonds/0/state = commit\n",
    }


def test_invalid_input_fails_with_every_problem(fake):
    bad = dict(EXAMPLE, nr_regions={"min": 1, "max": 0})
    done = call(fake, kdamonds=[bad])
    assert done.failed
    assert done.result["problems"] == [
        "damon_perf_kdamonds[0].nr_regions.min: 1 is below the kernel minimum of 3",
        "damon_perf_kdamonds[0].nr_regions: min (1) must not exceed max (0)",
    ]
    assert done.result["msg"] == "invalid input: " + "; ".join(done.result["problems"])
    assert fake.writes == []


def test_layout_mismatch_fails(fake):
    done = call(fake, layout="successor")
    assert done.failed
    assert done.result["msg"] == (
        "expected DAMON sysfs layout successor but the running kernel has rfc-v3"
    )


def test_dropped_perf_events_fail_or_warn(tmp_path, fake):
    fake.perf_fail_cpus = (0,)
    done = call(fake)
    assert done.failed
    assert done.result["msg"] == (
        "the kernel dropped perf events (perf event create failed on CPU 0 with -95): DAMON "
        "falls back to the page-table accessed-bit check (damon_perf_no_event_policy is 'fail')"
    )
    assert done.result["perf_effective"] is False
    warned = call(fake, no_event_policy="accessed_bit")
    assert not warned.failed
    assert warned.result["perf_effective"] is False
    assert any("accessed-bit" in w for w in warned.result["warnings"])


def test_sample_freq_above_host_limit(fake):
    with mock.patch.object(damon_sysfs, "host_max_sample_rate", return_value=1000):
        done = call(fake)
    assert done.failed
    assert done.result["msg"] == (
        "damon_perf_kdamonds[0].perf_events[0].sample_freq: 5000 exceeds "
        "/proc/sys/kernel/perf_event_max_sample_rate (1000)"
    )
    assert fake.writes == []


def test_no_event_policy_skip_on_mainline(tmp_path):
    fake = FakeDamonSysfs(tmp_path / "m", layout="mainline")
    with (
        mock.patch.object(damon_sysfs, "RealSysfs", return_value=fake),
        mock.patch.object(damon_sysfs, "KmsgLog", return_value=fake.log),
    ):
        done = call(fake, no_event_policy="skip")
    assert not done.failed
    assert done.result["skipped"] is True
    assert done.result["writes"] == [
        ["kdamonds/nr_kdamonds", "1"],
        ["kdamonds/0/contexts/nr_contexts", "1"],
    ]
