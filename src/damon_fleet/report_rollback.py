"""Reboots per host from the rollout records: how each host booted its trial kernel
(firmware or kexec, and why a kexec boot fell back) and the seconds of every reboot the
records hold, firmware against kexec side by side.

Pure functions, no I/O. The seconds are the ``elapsed`` time ``ansible.builtin.reboot``
measured (from the reboot command until the host answered with a new boot id), else the
phase's own ``seconds``. A record keeps the last rollout's trial reboot (``reboot``),
its rollback's reboot (``rollback_reboot``, always through the firmware) and, under
``previous``, the rollout of the build before, so one host can show both methods.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The phases of a record that are reboots, and what each is called in the report.
#: (A fallback's phase also regenerates GRUB's menu: its seconds are no reboot's.)
REBOOT_PHASES = (("reboot", "trial"), ("rollback_reboot", "rollback"))
METHODS = ("firmware", "kexec")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _reboots_of(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    phases = record.get("phases") or {}
    for phase, what in REBOOT_PHASES:
        entry = phases.get(phase)
        if not isinstance(entry, Mapping):
            continue
        seconds = _number(entry.get("elapsed"))
        if seconds is None:
            seconds = _number(entry.get("seconds"))
        if seconds is None:
            continue
        # Trial reboots name their method; rollback reboots, and trial reboots recorded
        # before methods existed, went through the firmware.
        method = entry.get("method") if phase == "reboot" else "firmware"
        out.append(
            {
                "what": what,
                "method": method if method in METHODS else "firmware",
                "seconds": round(seconds, 1),
                "release": record.get("kernel_release"),
                "at": entry.get("finished"),
            }
        )
    return out


def reboot_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per host with a reboot in its records: the boot method of its last trial
    boot (and the reason a kexec boot fell back), every reboot, and the latest seconds
    per method."""
    rows = []
    for record in sorted(records, key=lambda r: str(r.get("host"))):
        reboots = _reboots_of(record)
        previous = record.get("previous")
        if isinstance(previous, Mapping):
            reboots = _reboots_of(previous) + reboots
        if not reboots:
            continue
        latest: dict[str, float | None] = dict.fromkeys(METHODS)
        for reboot in sorted(reboots, key=lambda r: str(r.get("at") or "")):
            latest[reboot["method"]] = reboot["seconds"]
        rows.append(
            {
                "host": str(record.get("host")),
                "boot_method": record.get("boot_method"),
                "boot_method_reason": record.get("boot_method_reason"),
                "status": record.get("status"),
                "firmware_seconds": latest["firmware"],
                "kexec_seconds": latest["kexec"],
                "reboots": reboots,
            }
        )
    return rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def format_reboots(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The rows as aligned text: host, trial boot method, firmware and kexec reboot
    seconds side by side; then why a kexec boot went through the firmware."""
    if not rows:
        return []
    header = ("host", "trial boot", "firmware reboot", "kexec reboot", "record")
    table = [
        (
            str(row["host"]),
            str(row.get("boot_method") or "-"),
            _seconds(row.get("firmware_seconds")),
            _seconds(row.get("kexec_seconds")),
            str(row.get("status") or "-"),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    lines = ["reboots (seconds until the host answered again):"]
    for line in [header, *table]:
        lines.append(
            "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
        )
    for row in rows:
        if row.get("boot_method_reason"):
            lines.append(f"  {row['host']}: kexec not used: {row['boot_method_reason']}")
    return lines


def reboot_lines(report: Mapping[str, Any]) -> list[str]:
    """:func:`format_reboots` of a report's ``reboots`` (none when it has no usable one)."""
    rows = report.get("reboots")
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) and "host" in r for r in rows):
        return []
    return format_reboots(rows)
