"""The health gate of a kernel rollout: decide from what a freshly booted host shows.

Pure functions only; the ``kernel_install_gate`` module gathers the observations (``uname
-r``, ``boot_id``, the DAMON sysfs layout, the kernel log since boot, user commands) and
:func:`evaluate` turns them into named checks, each passed or failed with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# Kernel log lines that fail the gate: an oops, BUG, WARNING (a WARN_ON splat) or a panic.
DEFAULT_LOG_PATTERNS = (
    r"\bOops\b",
    r"\bBUG:",
    r"\bWARNING:",
    r"Kernel panic",
    r"general protection fault",
)
MAX_REPORTED_LINES = 20
# The id of the current boot: a new one after every boot (kexec included).
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
# Series layouts (kernel-patches manifests) -> the layout the DAMON planner detects:
# RFC v1 and v2 share the perf_events directory the planner calls rfc-v1.
LAYOUT_ALIASES = {"rfc-v2": "rfc-v1"}


class GateError(ValueError):
    """A gate input that cannot be used (a bad regular expression, ...)."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class CommandResult:
    name: str
    rc: int
    stdout: str = ""
    stderr: str = ""
    expect_rc: int = 0


@dataclass(frozen=True)
class Observed:
    release: str
    boot_id: str
    layout: str | None = None
    layout_error: str | None = None
    kernel_log: str | None = None
    commands: Sequence[CommandResult] = field(default_factory=tuple)


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    out = []
    for pattern in patterns:
        try:
            out.append(re.compile(pattern))
        except re.error as exc:
            raise GateError(f"bad kernel log pattern {pattern!r}: {exc}") from exc
    return out


def scan_kernel_log(text: str, patterns: Sequence[str], ignore: Sequence[str] = ()) -> list[str]:
    """Lines of ``text`` matching any of ``patterns`` and none of ``ignore``."""
    wanted = compile_patterns(patterns)
    unwanted = compile_patterns(ignore)
    hits = []
    for line in text.splitlines():
        if any(p.search(line) for p in wanted) and not any(p.search(line) for p in unwanted):
            hits.append(line.strip())
    return hits


def evaluate(
    observed: Observed,
    expected_release: str,
    previous_boot_id: str | None,
    expected_layout: str | None,
    log_patterns: Sequence[str] = DEFAULT_LOG_PATTERNS,
    log_ignore: Sequence[str] = (),
) -> list[Check]:
    """Every check of the gate, in order: release, boot id, layout, kernel log, commands."""
    checks = [
        Check(
            "release",
            observed.release == expected_release,
            f"running {observed.release}, expected {expected_release}",
        )
    ]
    if previous_boot_id is not None:
        changed = observed.boot_id != previous_boot_id
        checks.append(
            Check(
                "boot_id",
                changed,
                "boot id changed" if changed else f"boot id still {previous_boot_id}: no reboot",
            )
        )
    if expected_layout:
        expected_layout = LAYOUT_ALIASES.get(expected_layout, expected_layout)
        if observed.layout_error:
            checks.append(Check("layout", False, observed.layout_error))
        else:
            checks.append(
                Check(
                    "layout",
                    observed.layout == expected_layout,
                    f"DAMON sysfs layout {observed.layout}, expected {expected_layout}",
                )
            )
    if observed.kernel_log is None:
        checks.append(Check("kernel_log", False, "the kernel log could not be read"))
    else:
        hits = scan_kernel_log(observed.kernel_log, log_patterns, log_ignore)
        detail = "no oops, BUG, WARNING or panic since boot"
        if hits:
            shown = hits[:MAX_REPORTED_LINES]
            more = len(hits) - len(shown)
            detail = "; ".join(shown) + (f" (+{more} more)" if more else "")
        checks.append(Check("kernel_log", not hits, detail))
    for command in observed.commands:
        ok = command.rc == command.expect_rc
        output = (command.stdout.strip() or command.stderr.strip())[-300:]
        checks.append(
            Check(
                f"command:{command.name}",
                ok,
                f"rc {command.rc} (expected {command.expect_rc})"
                + (f": {output}" if output else ""),
            )
        )
    return checks


def passed(checks: Sequence[Check]) -> bool:
    return all(check.ok for check in checks)


def failed_summary(checks: Sequence[Check]) -> str:
    return "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
