"""The gate's decisions as a contract: every check's name, verdict and exact detail.

The pure functions of ``kernel_install_gate`` (evaluate, scan_kernel_log, passed,
failed_summary) with exact expected values, and the checks a real lab deploy recorded
(tests/fixtures/runner-events/lab-rollout-records.json) reproduced from the same
observations. Kernel log text is built line by line as test_kernel_install_gate.py does
(no captured boot log with these lines exists in the fixtures).
"""

from __future__ import annotations

import json

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.install_gate import (
    DEFAULT_LOG_PATTERNS,
    Check,
    CommandResult,
    GateError,
    Observed,
    evaluate,
    failed_summary,
    passed,
    scan_kernel_log,
)
from conftest import FIXTURES

NEW = "6.12.117-lab-perf-events-abi-0c853a0d"
OLD = "6.12.117-lab-1b9cc979"
CLEAN = "no oops, BUG, WARNING or panic since boot"
BOOT = (
    "[    0.000000] Linux version 6.12.117-lab-perf-events-abi-0c853a0d (damon-fleet@damon-fleet)\n"
    "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.12.117 root=/dev/vda1 ro panic=5\n"
    "[    1.104000] Run /sbin/init as init process\n"
)


def lab_record(host: str) -> dict:
    data = json.loads((FIXTURES / "runner-events" / "lab-rollout-records.json").read_text())
    (record,) = [r for r in data["records"] if r["host"] == host]
    return record


# ------------------------------------------------------------------ the real lab records


@pytest.mark.parametrize(
    ("host", "release", "layout"), [("lab1", NEW, "rfc-v3"), ("lab2", OLD, "mainline")]
)
def test_evaluate_reproduces_the_checks_a_lab_deploy_recorded(
    host: str, release: str, layout: str
) -> None:
    record = lab_record(host)
    gate = record["phases"]["gate"]
    observed = Observed(
        release=release, boot_id=gate["boot_id_after"], layout=layout, kernel_log=BOOT
    )
    checks = evaluate(observed, NEW, record["phases"]["reboot"]["boot_id_before"], "rfc-v3")
    assert [c.as_dict() for c in checks] == gate["checks"]
    assert passed(checks) is gate["passed"]
    if record["error"]:
        assert record["error"] == "gate failed: " + failed_summary(checks)
    else:
        assert failed_summary(checks) == ""


# ------------------------------------------------------------------------------- evaluate


def test_every_check_passes_with_its_detail() -> None:
    observed = Observed(
        release=NEW,
        boot_id="b",
        layout="rfc-v1",
        kernel_log=BOOT,
        commands=(
            CommandResult("quiet", 0),
            CommandResult("out", 3, "  active\n", "ignored", expect_rc=3),
            CommandResult("err", 0, " \n", " from stderr \n"),
        ),
    )
    checks = evaluate(observed, NEW, "a", "rfc-v2")
    assert checks == [
        Check("release", True, f"running {NEW}, expected {NEW}"),
        Check("boot_id", True, "boot id changed"),
        Check("layout", True, "DAMON sysfs layout rfc-v1, expected rfc-v1"),
        Check("kernel_log", True, CLEAN),
        Check("command:quiet", True, "rc 0 (expected 0)"),
        Check("command:out", True, "rc 3 (expected 3): active"),
        Check("command:err", True, "rc 0 (expected 0): from stderr"),
    ]
    assert passed(checks) is True
    assert failed_summary(checks) == ""


def test_every_check_fails_with_its_detail() -> None:
    observed = Observed(
        release=OLD,
        boot_id="same",
        layout="mainline",
        kernel_log=BOOT
        + "[    3.2] BUG: kernel NULL pointer dereference, address: 0000000000000000\n",
        commands=(CommandResult("sshd", 0, "", "", expect_rc=1),),
    )
    checks = evaluate(observed, NEW, "same", "rfc-v3")
    assert checks == [
        Check("release", False, f"running {OLD}, expected {NEW}"),
        Check("boot_id", False, "boot id still same: no reboot"),
        Check("layout", False, "DAMON sysfs layout mainline, expected rfc-v3"),
        Check(
            "kernel_log",
            False,
            "[    3.2] BUG: kernel NULL pointer dereference, address: 0000000000000000",
        ),
        Check("command:sshd", False, "rc 0 (expected 1)"),
    ]
    assert passed(checks) is False
    assert failed_summary(checks) == (
        f"release: running {OLD}, expected {NEW}; boot_id: boot id still same: no reboot; "
        "layout: DAMON sysfs layout mainline, expected rfc-v3; "
        "kernel_log: [    3.2] BUG: kernel NULL pointer dereference, address: 0000000000000000; "
        "command:sshd: rc 0 (expected 1)"
    )


def test_a_layout_that_could_not_be_read_fails_with_that_reason() -> None:
    observed = Observed(
        release=NEW, boot_id="b", layout="rfc-v3", layout_error="no DAMON sysfs interface"
    )
    checks = evaluate(observed, NEW, None, "rfc-v3")
    assert checks == [
        Check("release", True, f"running {NEW}, expected {NEW}"),
        Check("layout", False, "no DAMON sysfs interface"),
        Check("kernel_log", False, "the kernel log could not be read"),
    ]


@pytest.mark.parametrize("expected_layout", [None, ""])
def test_no_layout_check_without_an_expected_layout(expected_layout: str | None) -> None:
    observed = Observed(release=NEW, boot_id="b", layout_error="no DAMON", kernel_log="")
    checks = evaluate(observed, NEW, None, expected_layout)
    assert [c.as_dict() for c in checks] == [
        {"name": "release", "ok": True, "detail": f"running {NEW}, expected {NEW}"},
        {"name": "kernel_log", "ok": True, "detail": CLEAN},
    ]


def test_an_unaliased_layout_is_compared_as_it_is() -> None:
    checks = evaluate(Observed(NEW, "b", layout="rfc-v1", kernel_log=""), NEW, None, "rfc-v3")
    assert checks[1] == Check("layout", False, "DAMON sysfs layout rfc-v1, expected rfc-v3")


def test_the_kernel_log_detail_shows_twenty_lines_and_counts_the_rest() -> None:
    lines = [f"[   {i}.0] WARNING: CPU: {i} PID: 1 at mm/damon/core.c:1" for i in range(23)]
    checks = evaluate(Observed(NEW, "b", kernel_log="\n".join(lines)), NEW, None, None)
    assert checks[1] == Check("kernel_log", False, "; ".join(lines[:20]) + " (+3 more)")
    twenty = evaluate(Observed(NEW, "b", kernel_log="\n".join(lines[:20])), NEW, None, None)
    assert twenty[1] == Check("kernel_log", False, "; ".join(lines[:20]))


def test_custom_patterns_and_ignores_reach_the_kernel_log_check() -> None:
    log = BOOT + "[    5.0] damon: perf event create failed\n[    6.0] WARNING: known\n"
    checks = evaluate(
        Observed(NEW, "b", kernel_log=log),
        NEW,
        None,
        None,
        log_patterns=[r"perf event create failed", r"WARNING:"],
        log_ignore=[r"WARNING: known"],
    )
    assert checks[1] == Check("kernel_log", False, "[    5.0] damon: perf event create failed")


def test_command_output_prefers_stdout_and_keeps_its_last_300_characters() -> None:
    command = CommandResult("long", 2, "x" * 10 + "y" * 300 + "\n", "stderr", expect_rc=0)
    (check,) = evaluate(Observed(NEW, "b", kernel_log="", commands=(command,)), NEW, None, None)[2:]
    assert check == Check("command:long", False, "rc 2 (expected 0): " + "y" * 300)


def test_command_result_defaults() -> None:
    assert CommandResult("c", 0) == CommandResult("c", 0, "", "", expect_rc=0)
    assert Observed("r", "b") == Observed("r", "b", None, None, None, ())


# --------------------------------------------------------------------------- scan the log


@pytest.mark.parametrize(
    ("line", "hit"),
    [
        ("[ 1.0] Oops: 0000 [#1] PREEMPT SMP", True),
        ("[ 1.0] Oopsie", False),
        ("[ 1.0] BUG: unable to handle page fault", True),
        ("[ 1.0] DEBUG: value", False),
        ("[ 1.0] WARNING: CPU: 1 PID: 7 at mm/damon/core.c:9", True),
        ("[ 1.0] NOWARNING: x", False),
        ("[ 1.0] Kernel panic - not syncing: Fatal exception", True),
        ("[ 1.0] general protection fault, probably for non-canonical address", True),
        ("[ 1.0] Command line: ro panic=5 oops=panic", False),
    ],
)
def test_default_patterns(line: str, hit: bool) -> None:
    text = f"  {line}  \n[ 2.0] Run /sbin/init as init process\n"
    assert scan_kernel_log(text, DEFAULT_LOG_PATTERNS) == ([line] if hit else [])
    checks = evaluate(Observed(NEW, "b", kernel_log=text), NEW, None, None)
    assert checks[1] == Check("kernel_log", not hit, line if hit else CLEAN)


def test_scan_keeps_matching_lines_in_order_and_drops_ignored_ones() -> None:
    text = "a BUG: one\nb fine\nc BUG: two (known)\nd BUG: three\n"
    assert scan_kernel_log(text, ["BUG:"]) == ["a BUG: one", "c BUG: two (known)", "d BUG: three"]
    assert scan_kernel_log(text, ["BUG:"], ["known", "three"]) == ["a BUG: one"]
    assert scan_kernel_log(text, []) == []


@pytest.mark.parametrize(("patterns", "ignore"), [(["("], []), (["ok"], ["("])])
def test_a_bad_pattern_is_a_gate_error_naming_it(patterns: list[str], ignore: list[str]) -> None:
    with pytest.raises(GateError) as caught:
        scan_kernel_log("x", patterns, ignore)
    assert str(caught.value) == (
        "bad kernel log pattern '(': missing ), unterminated subpattern at position 0"
    )
    assert isinstance(caught.value.__cause__, Exception)


# ------------------------------------------------------------------------ verdict helpers


def test_passed_and_failed_summary() -> None:
    good, bad = Check("a", True, "fine"), Check("b", False, "broken")
    assert passed([]) is True
    assert passed([good]) is True
    assert passed([good, bad]) is False
    assert failed_summary([good]) == ""
    assert failed_summary([bad, good, Check("c", False, "gone")]) == "b: broken; c: gone"
    assert good.as_dict() == {"name": "a", "ok": True, "detail": "fine"}
