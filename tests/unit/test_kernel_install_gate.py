"""The rollout health gate: ``evaluate`` (pure) and the ``kernel_install_gate`` module.

The module runs for real on this machine: ``uname -r`` and the boot id are this kernel's,
user commands run in ``/bin/sh``, and the kernel log comes from a ``dmesg`` placed first
on ``PATH`` that prints a captured boot log (as dmesg does) or fails (as dmesg does
without permission to read the log).
"""

from __future__ import annotations

import platform
import stat
from pathlib import Path

import kernel_install_gate
import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.install_gate import (
    CommandResult,
    Observed,
    evaluate,
    failed_summary,
    passed,
)
from module_harness import run_module

NEW = "6.12.117-lab-perf-events-abi-31bdcb99"
CLEAN_LOG = """\
[    0.000000] Linux version 6.12.117-lab-perf-events-abi-31bdcb99 (damon-fleet@damon-fleet)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.12.117 root=/dev/vda1 ro panic=5
[    1.104000] Run /sbin/init as init process
"""
SPLAT_LOG = (
    CLEAN_LOG + "[    3.200000] WARNING: CPU: 0 PID: 1 at mm/damon/core.c:123 damon_start+0x1/0x2\n"
)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _observed(*commands: CommandResult) -> Observed:
    return Observed(release=NEW, boot_id="new", kernel_log=CLEAN_LOG, commands=commands)


# --------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize(
    ("rc", "expect_rc", "ok"),
    [
        (0, 0, True),
        (3, 3, True),  # a command that must fail (e.g. `systemctl is-failed`): passes
        (1, 1, True),
        (0, 1, False),  # expected to fail, succeeded: the gate fails
        (1, 0, False),
        (2, 3, False),
    ],
)
def test_a_command_passes_only_on_its_expected_rc(rc: int, expect_rc: int, ok: bool) -> None:
    command = CommandResult("check", rc, "out\n", "", expect_rc=expect_rc)
    checks = evaluate(_observed(command), NEW, "old", None)
    (check,) = [c for c in checks if c.name == "command:check"]
    assert check.ok is ok
    assert check.detail == f"rc {rc} (expected {expect_rc}): out"
    assert passed(checks) is ok


def test_command_detail_keeps_the_last_300_characters_of_its_output() -> None:
    command = CommandResult("noisy", 1, "", "e" * 400 + "END", expect_rc=0)
    (check,) = [c for c in evaluate(_observed(command), NEW, None, None) if c.name != "release"][1:]
    assert check.detail == "rc 1 (expected 0): " + ("e" * 297 + "END")
    assert failed_summary([check]) == "command:noisy: " + check.detail


# --------------------------------------------------------------------------- the module


@pytest.fixture
def dmesg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dmesg first on PATH that prints <tmp>/kernel.log, or fails when it is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "kernel.log"
    script = bin_dir / "dmesg"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ -r "{log}" ]; then exec /bin/cat -- "{log}"; fi\n'
        'echo "dmesg: read kernel buffer failed: Operation not permitted" >&2\n'
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    # Only the fake's folder (and the system's sbin folders the module adds): no
    # journalctl to fall back to, so a failing dmesg means an unreadable log.
    monkeypatch.setenv("PATH", str(bin_dir))
    return log


def _gate(**args: object) -> dict[str, object]:
    done = run_module(kernel_install_gate.main, args)
    assert not done.failed, done.result
    return done.result


def test_module_passes_on_this_kernel_with_a_clean_log(dmesg: Path) -> None:
    dmesg.write_text(CLEAN_LOG)
    result = _gate(
        expected_release=platform.release(),
        previous_boot_id="00000000-0000-0000-0000-000000000000",
        commands=[
            {"name": "true", "command": "true"},
            {"name": "must fail", "command": "echo down; exit 3", "expect_rc": 3},
        ],
    )
    assert result["passed"] is True
    assert result["changed"] is False
    assert result["release"] == platform.release()
    assert result["boot_id"] == BOOT_ID.read_text().strip()
    assert result["layout"] is None
    assert result["summary"] == ""
    assert result["checks"] == [
        {
            "name": "release",
            "ok": True,
            "detail": f"running {platform.release()}, expected {platform.release()}",
        },
        {"name": "boot_id", "ok": True, "detail": "boot id changed"},
        {"name": "kernel_log", "ok": True, "detail": "no oops, BUG, WARNING or panic since boot"},
        {"name": "command:true", "ok": True, "detail": "rc 0 (expected 0)"},
        {"name": "command:must fail", "ok": True, "detail": "rc 3 (expected 3): down"},
    ]


def test_module_fails_a_command_that_succeeds_when_it_should_fail(dmesg: Path) -> None:
    dmesg.write_text(CLEAN_LOG)
    result = _gate(
        expected_release=platform.release(),
        commands=[{"name": "is-failed", "command": "echo active", "expect_rc": 1}],
    )
    assert result["passed"] is False
    assert result["summary"] == "command:is-failed: rc 0 (expected 1): active"


def test_module_names_every_failed_check(dmesg: Path) -> None:
    dmesg.write_text(SPLAT_LOG)
    boot_id = BOOT_ID.read_text().strip()
    result = _gate(
        expected_release=NEW,
        previous_boot_id=boot_id,
        commands=[{"name": "sshd", "command": "echo inactive; exit 3"}],
    )
    assert result["passed"] is False
    assert [c["name"] for c in result["checks"] if not c["ok"]] == [  # type: ignore[union-attr]
        "release",
        "boot_id",
        "kernel_log",
        "command:sshd",
    ]
    assert result["summary"] == (
        f"release: running {platform.release()}, expected {NEW}; "
        f"boot_id: boot id still {boot_id}: no reboot; "
        "kernel_log: [    3.200000] WARNING: CPU: 0 PID: 1 at mm/damon/core.c:123 "
        "damon_start+0x1/0x2; "
        "command:sshd: rc 3 (expected 0): inactive"
    )


def test_module_log_ignore_accepts_a_known_warning(dmesg: Path) -> None:
    dmesg.write_text(SPLAT_LOG)
    result = _gate(
        expected_release=platform.release(), log_ignore=[r"WARNING: CPU: \d+ PID: \d+ at mm/damon"]
    )
    assert result["passed"] is True


def test_module_fails_when_the_kernel_log_cannot_be_read(dmesg: Path) -> None:
    assert not dmesg.exists()
    result = _gate(expected_release=platform.release())
    assert result["passed"] is False
    assert result["summary"] == "kernel_log: the kernel log could not be read"


def _tree(root: Path, probe: str | None) -> Path:
    context = root / "kdamonds" / "0" / "contexts" / "0"
    context.mkdir(parents=True)
    (root / "kdamonds" / "nr_kdamonds").write_text("1\n")
    if probe:
        (context / probe).mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    ("probe", "expected", "ok", "detail"),
    [
        (
            "monitoring_attrs/sample/primitives/perf_events",
            "rfc-v3",
            True,
            "DAMON sysfs layout rfc-v3, expected rfc-v3",
        ),
        ("perf_events", "rfc-v2", True, "DAMON sysfs layout rfc-v1, expected rfc-v1"),
        (
            "monitoring_attrs/intervals",
            "rfc-v3",
            False,
            "DAMON sysfs layout mainline, expected rfc-v3",
        ),
    ],
)
def test_module_checks_the_layout_the_series_promises(
    dmesg: Path, tmp_path: Path, probe: str, expected: str, ok: bool, detail: str
) -> None:
    dmesg.write_text(CLEAN_LOG)
    root = _tree(tmp_path / "admin", probe)
    result = _gate(
        expected_release=platform.release(), expected_layout=expected, damon_root=str(root)
    )
    (layout,) = [c for c in result["checks"] if c["name"] == "layout"]  # type: ignore[union-attr]
    assert layout == {"name": "layout", "ok": ok, "detail": detail}
    assert result["passed"] is ok


def test_module_layout_without_damon_sysfs(dmesg: Path, tmp_path: Path) -> None:
    dmesg.write_text(CLEAN_LOG)
    root = tmp_path / "none"
    result = _gate(
        expected_release=platform.release(), expected_layout="rfc-v3", damon_root=str(root)
    )
    assert result["passed"] is False
    assert result["layout"] is None
    assert result["summary"] == (
        f"layout: no DAMON sysfs interface at {root} (looked for {root}/kdamonds; the kernel "
        "needs CONFIG_DAMON_SYSFS=y)"
    )


def test_module_does_not_probe_the_layout_in_check_mode(dmesg: Path, tmp_path: Path) -> None:
    dmesg.write_text(CLEAN_LOG)
    root = tmp_path / "admin"
    (root / "kdamonds").mkdir(parents=True)
    (root / "kdamonds" / "nr_kdamonds").write_text("0\n")
    result = _gate(
        expected_release=platform.release(),
        expected_layout="rfc-v3",
        damon_root=str(root),
        _ansible_check_mode=True,
    )
    assert result["summary"] == "layout: layout not probed in check mode (no kdamond exists)"
    assert (root / "kdamonds" / "nr_kdamonds").read_text() == "0\n"


def test_module_refuses_a_command_without_command(dmesg: Path) -> None:
    done = run_module(
        kernel_install_gate.main,
        {"expected_release": "x", "commands": [{"name": "a", "command": "true"}, {"name": "b"}]},
    )
    assert done.failed
    assert done.result["msg"] == "commands[1] needs a command (and a name)"


def test_module_refuses_a_bad_log_pattern(dmesg: Path) -> None:
    dmesg.write_text(CLEAN_LOG)
    done = run_module(
        kernel_install_gate.main, {"expected_release": "x", "log_patterns": ["(unclosed"]}
    )
    assert done.failed
    assert done.result["msg"] == (
        "bad kernel log pattern '(unclosed': missing ), unterminated subpattern at position 0"
    )
