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
        mock.patch.object(damon_sysfs, "_sleep", fake.advance),
        mock.patch.object(damon_sysfs, "running_release", return_value="6.12.117-lab"),
    ):
        yield fake


def call(fake, **args):
    """The module's exit; like Ansible, the warnings it gave through ``module.warn`` are in
    the result's ``warnings`` (left out when there are none)."""
    args.setdefault("kdamonds", [EXAMPLE])
    args.setdefault("settle_time", 0)
    args["root"] = fake.root
    warned: list[str] = []
    with mock.patch.object(
        damon_sysfs.AnsibleModule, "warn", lambda self, text: warned.append(text)
    ):
        done = run_module(damon_sysfs.main, args)
    assert "warnings" not in done.result  # exit_json(warnings=...) is deprecated
    if warned:
        done.result["warnings"] = warned
    return done


def test_apply_then_unchanged(fake):
    first = call(fake)
    assert not first.failed, first.result
    assert first.result["changed"] is True
    assert first.result["layout"] == "rfc-v3"
    assert first.result["perf_effective"] == "yes"
    assert first.result["perf_evidence"] == {
        "reason": "no perf event create failure in the kernel log since the 'on'/'commit' "
        "write; total_reports grew 0 -> 600 over 3 s",
        "failures": [],
        "failure_count": 0,
        "total_reports": [{"kdamond": 0, "first": 0, "last": 600}],
        "window_s": 3.0,
        "stand_in": False,
        "fallback": None,
    }
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


def test_pebs_event_dropped_on_every_cpu_goes_on_with_accessed_bits_by_default(fake):
    fake.perf_unsupported_types = (4,)  # the load-latency PEBS event under QEMU TCG
    done = call(fake)
    assert not done.failed, done.result
    assert done.result["perf_effective"] == "no"
    evidence = done.result["perf_evidence"]
    assert evidence["reason"] == (
        "damon: perf event create on CPU 0 failed with -2; "
        "damon: perf event create on CPU 1 failed with -2; monitoring with accessed bits"
    )
    assert evidence["total_reports"] == [{"kdamond": 0, "first": 0, "last": 0}]
    assert done.result["perf_failures"] == [
        {"cpu": 0, "error": "-2"},
        {"cpu": 1, "error": "-2"},
    ]
    assert done.result["warnings"] == [
        f"perf_effective: no ({evidence['reason']}); going on (damon_perf_fallback_policy "
        "is 'accessed_bits'; 'fail' fails the host instead)"
    ]


def test_fallback_policy_fail_fails_the_host_with_the_reason(fake):
    fake.perf_unsupported_types = (4,)
    done = call(fake, fallback_policy="fail")
    assert done.failed
    assert done.result["msg"] == (
        "perf_effective: no (damon: perf event create on CPU 0 failed with -2; "
        "damon: perf event create on CPU 1 failed with -2; monitoring with accessed bits) "
        "(damon_perf_fallback_policy is 'fail')"
    )
    assert done.result["perf_effective"] == "no"


def test_a_flat_counter_is_a_no_and_fails_under_fail(fake):
    fake.reports_per_second = 0  # files that store values only: nothing samples
    done = call(fake, fallback_policy="fail", evidence_window=2)
    assert done.failed
    assert done.result["msg"] == (
        "perf_effective: no (total_reports stayed at 0 over 2 s) "
        "(damon_perf_fallback_policy is 'fail')"
    )
    assert fake.slept == [2.0]


def test_stand_in_kernel_is_named_in_the_evidence(fake):
    done = call(fake, stand_in_kernels=["6.12.117-lab"])
    assert done.result["perf_effective"] == "yes"
    assert done.result["perf_evidence"]["stand_in"] is True
    other = call(fake, stand_in_kernels=["6.12.117-other"])
    assert other.result["perf_evidence"]["stand_in"] is False


def test_verify_style_check_measures_and_validation_can_skip_it(fake):
    call(fake)
    fake.slept.clear()
    checked = call(fake, _ansible_check_mode=True)
    assert checked.result["writes"] == [] and checked.result["perf_effective"] == "yes"
    assert checked.result["perf_evidence"]["reason"] == (
        "no perf event create failure in the kernel log since the kdamond started; "
        "total_reports grew 600 -> 1200 over 3 s"
    )
    assert fake.slept == [3.0]
    fake.slept.clear()
    validated = call(fake, _ansible_check_mode=True, collect_evidence=False)
    assert validated.result["perf_effective"] == "unknown"
    assert validated.result["perf_evidence"]["reason"] == "not measured (evidence not collected)"
    assert fake.slept == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            {"evidence_window": 61},
            "damon_perf_evidence_window: 61.0 is out of range; expected seconds as a number "
            "from 0 to 60 (0: do not watch the counter)",
        ),
        (
            {"stand_in_kernels": ["6.12 lab;x"]},
            "damon_perf_stand_in_kernels[0]: '6.12 lab;x' is not a list of at most 64 kernel "
            "releases (uname -r: [A-Za-z0-9._+~-], at most 64 characters)",
        ),
    ],
)
def test_bad_evidence_inputs_fail_before_any_write(fake, args, problem):
    done = call(fake, **args)
    assert done.failed
    assert done.result["msg"] == "invalid input: " + problem
    assert fake.writes == []


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
        mock.patch.object(damon_sysfs, "_sleep", fake.advance),
    ):
        done = call(fake, no_event_policy="skip")
    assert not done.failed
    assert done.result["skipped"] is True
    assert done.result["writes"] == [
        ["kdamonds/nr_kdamonds", "1"],
        ["kdamonds/0/contexts/nr_contexts", "1"],
    ]
