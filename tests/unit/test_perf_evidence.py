"""perf_effective from evidence: the rules of damon_evidence, and the applier over the fake
sysfs that models total_reports (time passes only through the fake: no real sleep)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    ApplyError,
    EvidenceSettings,
    apply_spec,
    evidence_settings,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.evidence import (
    MAX_FAILURE_LINES,
    MAX_LINE_CHARS,
    Counter,
    EvidenceInputError,
    describe,
    failure_lines,
    judge,
    log_text,
    parse_counter,
    parse_failures,
    parse_fallback_policy,
    parse_stand_in_kernels,
    parse_window,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    SpecError,
    load_config_text,
    parse_spec,
)
from damon_examples import EXAMPLE
from fake_damon_sysfs import FakeDamonSysfs, FakeKernelLog

FAIL_0 = "perf event create on CPU 0 failed with -2"

# The same failure as the three places it is read from: a /dev/kmsg record (prio,seq,
# usec,flags;text, with a dictionary continuation line), dmesg/console output with the
# printk time prefix, and a bare message.
KMSG = "4,1234,5678901,-;damon: perf event create on CPU 0 failed with -2\n SUBSYSTEM=x\n"
PRINTK = "[   12.345678] damon: perf event create on CPU 0 failed with -2"
BARE = "damon: perf event create on CPU 0 failed with -2"


# --------------------------------------------------------------------------- log lines


@pytest.mark.parametrize("line", [KMSG, PRINTK, BARE])
def test_failure_line_in_every_log_format(line: str) -> None:
    assert log_text(line) == BARE
    assert failure_lines([line]) == [BARE]
    assert parse_failures([line]) == [{"cpu": 0, "error": "-2"}]


@pytest.mark.parametrize(
    "line",
    [
        "6,1235,5678902,-;damon: kdamond started",
        "[   12.4] perf event create on CPU x failed with -2",
        "[   12.5] perf: interrupt took too long",
        "perf event created on CPU 0",
    ],
)
def test_other_lines_are_not_failures(line: str) -> None:
    assert failure_lines([line]) == []
    assert parse_failures([line]) == []


def test_parse_failures_keeps_symbolic_errors_and_cpu_numbers() -> None:
    lines = [
        "[  12.1] damon: perf event create on CPU 0 failed with -95",
        "[  12.3] perf event create on CPU 17 failed with -EOPNOTSUPP",
    ]
    assert parse_failures(lines) == [
        {"cpu": 0, "error": "-95"},
        {"cpu": 17, "error": "-EOPNOTSUPP"},
    ]


# --------------------------------------------------------------------------- the rules


def test_yes_needs_a_clean_log_and_a_growing_counter() -> None:
    evidence = judge(["[ 1.0] damon: started"], [Counter(0, 10, 250)], 3.0)
    assert evidence.value == "yes"
    assert evidence.as_dict() == {
        "perf_effective": "yes",
        "perf_evidence": {
            "reason": "no perf event create failure in the kernel log since the kdamond "
            "started; total_reports grew 10 -> 250 over 3 s",
            "failures": [],
            "failure_count": 0,
            "total_reports": [{"kdamond": 0, "first": 10, "last": 250}],
            "window_s": 3.0,
            "stand_in": False,
            "fallback": None,
        },
    }


def test_failure_lines_make_no_with_the_lines_as_reason() -> None:
    evidence = judge([PRINTK], [Counter(0, 0, 0)], 3.0)
    assert evidence.value == "no"
    assert evidence.reason == f"{BARE}; monitoring with accessed bits"
    assert evidence.failures == [BARE]
    assert evidence.fallback == "accessed_bits"


def test_a_flat_counter_makes_no_even_with_a_clean_log() -> None:
    evidence = judge([], [Counter(0, 42, 42)], 3.0)
    assert evidence.value == "no"
    assert evidence.reason == "total_reports stayed at 42 over 3 s"
    assert evidence.failures == []


def test_one_flat_kdamond_of_two_makes_no_and_names_it() -> None:
    evidence = judge([], [Counter(0, 1, 90), Counter(1, 7, 7)], 0.5)
    assert evidence.value == "no"
    assert evidence.reason == "kdamond 1: total_reports stayed at 7 over 0.5 s"


def test_a_counter_that_goes_down_did_not_grow() -> None:
    assert judge([], [Counter(0, 9, 3)], 3.0).value == "no"


def test_no_counter_in_the_layout_is_unknown_and_says_the_log_is_all() -> None:
    evidence = judge([], None, 3.0)
    assert evidence.value == "unknown"
    assert evidence.reason == (
        "no perf event create failure in the kernel log since the kdamond started, but this "
        "kernel has no total_reports counter: the kernel log is the only evidence"
    )
    assert evidence.window_s is None


def test_failures_without_a_counter_are_still_no() -> None:
    evidence = judge([KMSG], None, 3.0)
    assert evidence.value == "no"
    assert evidence.reason == f"{BARE}; monitoring with accessed bits"


def test_unreadable_log_is_unknown_even_with_a_growing_counter() -> None:
    evidence = judge(None, [Counter(0, 0, 5)], 3.0, log_error="EPERM (Operation not permitted)")
    assert evidence.value == "unknown"
    assert evidence.reason == (
        "cannot read the kernel log (EPERM (Operation not permitted)); "
        "total_reports grew 0 -> 5 over 3 s"
    )


def test_unreadable_log_with_a_flat_counter_is_no() -> None:
    evidence = judge(None, [Counter(0, 3, 3)], 3.0, log_error="EPERM")
    assert evidence.value == "no"
    assert evidence.reason == "total_reports stayed at 3 over 3 s (kernel log not read: EPERM)"


def test_window_zero_is_unknown() -> None:
    evidence = judge([], None, 0.0)
    assert evidence.value == "unknown"
    assert evidence.reason.endswith("total_reports not watched (evidence window 0)")


def test_quoted_failures_are_bounded() -> None:
    long_line = "damon: perf event create on CPU 3 failed with -22 " + "x" * 400
    lines = [f"[ 1.{i}] damon: perf event create on CPU {i} failed with -2" for i in range(20)]
    evidence = judge([long_line, *lines], [Counter(0, 0, 0)], 3.0)
    assert evidence.failure_count == 21
    assert len(evidence.failures) == MAX_FAILURE_LINES
    assert len(evidence.failures[0]) == MAX_LINE_CHARS and evidence.failures[0].endswith("...")
    assert "; and 13 more such lines; monitoring with accessed bits" in evidence.reason
    assert len(evidence.reason) < (MAX_LINE_CHARS + 2) * MAX_FAILURE_LINES + 80


def test_stand_in_is_carried_and_named_next_to_the_value() -> None:
    evidence = judge([], [Counter(0, 0, 9)], 3.0, stand_in=True)
    out = evidence.as_dict()
    assert out["perf_effective"] == "yes" and out["perf_evidence"]["stand_in"] is True
    assert describe(out) == (
        "yes (stand-in kernel; no perf event create failure in the kernel log since the "
        "kdamond started; total_reports grew 0 -> 9 over 3 s)"
    )
    assert describe(out, with_reason=False) == "yes (stand-in kernel)"


def test_describe_no_with_reason_and_old_results() -> None:
    out = judge([KMSG], [Counter(0, 0, 0)], 3.0).as_dict()
    assert describe(out) == f"no ({BARE}; monitoring with accessed bits)"
    assert describe(out, with_reason=False) == "no"
    # results recorded before the value had three states
    assert describe({"perf_effective": True}) == "yes"
    assert describe({"perf_effective": False}) == "no"
    assert describe({"perf_effective": None}) == "-"
    assert describe({}) == "-"
    assert describe({"perf_effective": "maybe"}) == "-"


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(("value", "seconds"), [(3, 3.0), ("0.5", 0.5), (0, 0.0), (60, 60.0)])
def test_window_accepts(value: Any, seconds: float) -> None:
    assert parse_window(value, "w") == seconds


@pytest.mark.parametrize("value", [-1, 60.5, float("nan"), float("inf"), "3s", True, None, "1e3"])
def test_window_refuses(value: Any) -> None:
    with pytest.raises(EvidenceInputError, match=r"^w: .*seconds as a number from 0 to 60"):
        parse_window(value, "w")


def test_fallback_policy_and_stand_in_kernels() -> None:
    assert parse_fallback_policy("fail", "p") == "fail"
    with pytest.raises(EvidenceInputError) as info:
        parse_fallback_policy("accessed_bit", "p")
    assert str(info.value) == "p: 'accessed_bit' is not one of accessed_bits, fail"
    assert parse_stand_in_kernels(["6.12.117-lab+", "6.12.0~rc1"], "k") == (
        "6.12.117-lab+",
        "6.12.0~rc1",
    )
    assert parse_stand_in_kernels(None, "k") == ()
    for bad in ("6.12", [""], ["a b"], ["$(reboot)"], [7], ["x" * 65]):
        with pytest.raises(EvidenceInputError, match=r"^k(\[0\])?: "):
            parse_stand_in_kernels(bad, "k")


def test_evidence_settings_name_every_bad_input_and_match_the_release() -> None:
    with pytest.raises(SpecError) as info:
        evidence_settings(-1, "strict", "6.12")
    assert info.value.problems == [
        "damon_perf_evidence_window: -1 is out of range; expected seconds as a number from 0 "
        "to 60 (0: do not watch the counter)",
        "damon_perf_fallback_policy: 'strict' is not one of accessed_bits, fail",
        "damon_perf_stand_in_kernels: got str; expected a list of at most 64 kernel releases "
        "(uname -r: [A-Za-z0-9._+~-], at most 64 characters)",
    ]
    assert evidence_settings(stand_in_kernels=["6.12.117-lab"], release="6.12.117-lab").stand_in
    assert not evidence_settings(stand_in_kernels=["6.12.117-lab"], release="6.12.117").stand_in
    assert not evidence_settings(stand_in_kernels=["6.12.117-lab"], release=None).stand_in


def test_config_file_carries_the_evidence_inputs() -> None:
    config = load_config_text(
        '{"damon_perf_kdamonds": [], "damon_perf_fallback_policy": "fail", '
        '"damon_perf_evidence_window": "1.5", "damon_perf_stand_in_kernels": ["6.12.117-lab"]}',
        "damon.yml",
    )
    assert (config.fallback_policy, config.evidence_window, config.stand_in_kernels) == (
        "fail",
        1.5,
        ("6.12.117-lab",),
    )
    with pytest.raises(SpecError) as info:
        load_config_text('{"damon_perf_kdamonds": [], "damon_perf_evidence_window": 99}', "c")
    assert info.value.problems == [
        "damon_perf_evidence_window: 99 is out of range; expected seconds as a number from 0 "
        "to 60 (0: do not watch the counter)"
    ]


def test_counter_is_decimal() -> None:
    assert parse_counter("1234\n") == 1234
    for bad in ("", "0x10", "-1", "12 13", "1" * 21):
        with pytest.raises(ValueError, match="not a decimal counter"):
            parse_counter(bad)


# --------------------------------------------------------------------------- on the fake


def apply(fake: FakeDamonSysfs, kdamonds: Any = (EXAMPLE,), **kwargs: Any) -> Any:
    spec = parse_spec(list(kdamonds))
    kwargs.setdefault("sleep", fake.advance)
    return apply_spec(spec, fake, fake.root, fake.log, settle_time=0.5, **kwargs)


def test_fake_counter_grows_only_with_created_counters(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path, online_cpus=(0, 1, 2, 3), reports_per_second=10)
    apply(fake, evidence=EvidenceSettings(window=2.0))
    assert fake.slept == [0.5, 2.0]  # the settle time, then the window
    assert fake.get("kdamonds/0/total_reports") == str(4 * 10 * 2 + 4 * 10 * 0.5).split(".")[0]
    fake.advance(1.0)
    assert fake.get("kdamonds/0/total_reports") == "140"
    fake.write(fake.root + "/kdamonds/0/state", "off")
    fake.advance(5.0)
    assert fake.get("kdamonds/0/total_reports") == "140"  # a stopped kdamond reports nothing


def test_software_event_is_yes_from_the_counter(tmp_path: Any) -> None:
    # type 1 (software), config 0 (cpu-clock): samples under QEMU TCG
    cpu_clock = dict(EXAMPLE, perf_events=[{"type": 1, "config": 0, "sample_freq": 1000}])
    fake = FakeDamonSysfs(tmp_path, perf_unsupported_types=(4,))
    result = apply(fake, [cpu_clock])
    evidence = result.as_dict()["perf_evidence"]
    assert result.perf_effective == "yes"
    assert evidence["total_reports"] == [{"kdamond": 0, "first": 100, "last": 700}]
    assert result.as_dict()["perf_summary"] == (
        "yes (no perf event create failure in the kernel log since the 'on'/'commit' write; "
        "total_reports grew 100 -> 700 over 3 s)"
    )


def test_pebs_event_is_no_with_the_kernels_own_line(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path, perf_unsupported_types=(4,), online_cpus=(0,))
    result = apply(fake, evidence=EvidenceSettings(stand_in=True))
    assert result.as_dict()["perf_summary"] == (
        "no (stand-in kernel; damon: perf event create on CPU 0 failed with -2; "
        "monitoring with accessed bits)"
    )
    assert result.warnings[-1].startswith(f"perf_effective: no (damon: {FAIL_0}; monitoring")


def test_flat_counter_of_a_values_only_kernel(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path, reports_per_second=0)
    result = apply(fake)
    assert result.perf_effective == "no"
    assert result.as_dict()["perf_evidence"]["reason"] == "total_reports stayed at 0 over 3 s"
    with pytest.raises(ApplyError) as info:
        apply(fake, evidence=EvidenceSettings(fallback_policy="fail"))
    assert str(info.value) == (
        "perf_effective: no (total_reports stayed at 0 over 3 s) "
        "(damon_perf_fallback_policy is 'fail')"
    )


def test_failures_before_the_write_do_not_count_after_a_commit(tmp_path: Any) -> None:
    log = FakeKernelLog()
    fake = FakeDamonSysfs(tmp_path, log=log, perf_unsupported_types=(4,))
    assert apply(fake).perf_effective == "no"  # PEBS: dropped
    cpu_clock = dict(EXAMPLE, perf_events=[{"type": 1, "config": 0}])
    committed = apply(fake, [cpu_clock])
    assert committed.writes[-1] == ("kdamonds/0/state", "commit")
    # the old lines are in the log, before the mark taken just ahead of 'commit'
    assert len(parse_failures([m for _, m in log.records])) == 2
    assert committed.perf_effective == "yes"


def test_unchanged_run_looks_since_the_kdamond_started(tmp_path: Any) -> None:
    log = FakeKernelLog()
    log.log("damon: perf event create on CPU 5 failed with -19")  # an earlier kdamond's
    fake = FakeDamonSysfs(tmp_path, log=log)
    fake.advance(60)  # a minute later (beyond the one second of slack)
    assert apply(fake).perf_effective == "yes"
    again = apply(fake)
    assert again.writes == [] and again.perf_effective == "yes"
    assert again.as_dict()["perf_evidence"]["reason"] == (
        "no perf event create failure in the kernel log since the kdamond started; "
        "total_reports grew 700 -> 1300 over 3 s"
    )


def test_check_mode_with_pending_writes_measures_nothing(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path)
    result = apply(fake, check_mode=True, layout="rfc-v3")
    assert result.perf_effective == "unknown"
    assert result.as_dict()["perf_evidence"]["reason"].startswith("check mode: ")
    assert fake.slept == []


def test_log_that_cannot_be_marked_is_unknown(tmp_path: Any) -> None:
    log = FakeKernelLog()
    log.readable = False
    fake = FakeDamonSysfs(tmp_path, log=log)
    result = apply(fake)
    assert result.perf_effective == "unknown"
    assert result.as_dict()["perf_evidence"]["reason"].startswith(
        "cannot read the kernel log (EPERM (Operation not permitted)); total_reports grew"
    )


def test_kdamonds_without_perf_events_are_no_and_spend_no_window(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path)
    result = apply(fake, [dict(EXAMPLE, perf_events=[])])
    assert result.perf_effective == "no"
    assert result.as_dict()["perf_summary"] == (
        "no (no perf event configured; monitoring with accessed bits)"
    )
    assert fake.slept == [0.5]


def test_an_unchanged_kdamond_beside_a_committed_one_is_judged_since_its_start(
    tmp_path: Any,
) -> None:
    fake = FakeDamonSysfs(tmp_path, perf_unsupported_types=(4,))
    cpu_clock = dict(EXAMPLE, perf_events=[{"type": 1, "config": 0}])
    pebs = dict(EXAMPLE, targets=[{"pid": 77}])
    assert apply(fake, [cpu_clock, pebs]).perf_effective == "no"
    fake.advance(60)
    # kdamond 0 gets a commit; kdamond 1 (the dropped PEBS event) is left as it runs
    result = apply(fake, [dict(cpu_clock, targets=[{"pid": 99}]), pebs])
    assert result.writes[-1] == ("kdamonds/0/state", "commit")
    assert result.perf_effective == "no"
    assert result.as_dict()["perf_evidence"]["failures"] == [
        "damon: perf event create on CPU 0 failed with -2",
        "damon: perf event create on CPU 1 failed with -2",
    ]


def test_a_failure_logged_during_the_window_counts(tmp_path: Any) -> None:
    fake = FakeDamonSysfs(tmp_path)

    def sleep(seconds: float) -> None:
        fake.advance(seconds)
        if seconds == 3.0:  # the window: the kdamond recreates an event, which fails
            fake.log.log("damon: perf event create on CPU 1 failed with -16")

    result = apply(fake, sleep=sleep)
    assert result.perf_effective == "no"
    assert result.as_dict()["perf_evidence"]["failures"] == [
        "damon: perf event create on CPU 1 failed with -16"
    ]
