"""Whether DAMON's perf-event access check is in effect, decided from evidence.

The one definition of the ``perf_effective`` value that ``damon_sysfs``, the
boot-time applier (``damon-fleet-apply``), ``playbooks/verify.yml`` and the
``damon-fleet report``/``status`` tables show.  Pure functions; the reads (kernel
log, ``total_reports``) are done by ``damon.engine``.

The rules (``perf_effective`` is ``yes``, ``no`` or ``unknown``):

* **yes** only when both hold for every kdamond with perf events configured: the
  kernel log has no ``perf event create on CPU <n> failed with <err>`` line since
  the kdamond started (or since the ``on``/``commit`` write of this run), and its
  ``kdamonds/<K>/total_reports`` counter grew over the evidence window.
* **no** when perf events are configured and the log has such a line (the kernel
  dropped the event; with every event dropped DAMON monitors with accessed bits),
  or when the counter stayed flat over the window; and when no perf event is
  configured at all (DAMON then uses the page-table accessed-bit check).
* **unknown** when the kernel's layout has no ``total_reports`` file (the kernel
  log is then the only evidence, and a clean log proves nothing), when the log
  cannot be read, or when nothing was measured (check mode with writes pending,
  or a window of 0).

Every value carries ``perf_evidence``: the reason in words, the failure lines
(quoted, at most :data:`MAX_FAILURE_LINES`, each at most :data:`MAX_LINE_CHARS`),
the counter samples, the window, and whether the running kernel is a stand-in
(a lab series whose manifest says ``stand_in: true``).  :func:`describe` turns
the value and its evidence into the one-line text every report prints, and
names a stand-in kernel next to the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

YES = "yes"
NO = "no"
UNKNOWN = "unknown"
VALUES = (YES, NO, UNKNOWN)

# What to do when perf events are configured but the evidence says they are not in
# effect (perf_effective no): keep monitoring (the kernel then uses accessed bits, or
# events that deliver no sample), or fail the host.
FALLBACK_ACCESSED_BITS = "accessed_bits"
FALLBACK_FAIL = "fail"
FALLBACK_POLICIES = (FALLBACK_ACCESSED_BITS, FALLBACK_FAIL)

DEFAULT_WINDOW = 3.0  # seconds total_reports is watched
MAX_WINDOW = 60.0
MAX_FAILURE_LINES = 8  # failure lines quoted in the evidence
MAX_LINE_CHARS = 160
MAX_STAND_IN_KERNELS = 64
MAX_RELEASE_CHARS = 64

PERF_FAILURE_RE = re.compile(r"perf event create on CPU (\d+) failed with (-?\w+)", re.ASCII)
# /dev/kmsg record header (prio,seq,usec,flags;) and the dmesg/console time prefix.
_KMSG_HEADER_RE = re.compile(r"\A[0-9]+,[0-9]+,[0-9]+,[^;]*;", re.ASCII)
_PRINTK_TIME_RE = re.compile(r"\A\[\s*[0-9]+\.[0-9]+\]\s?", re.ASCII)
_COUNTER_RE = re.compile(r"[0-9]{1,20}", re.ASCII)
_RELEASE_RE = re.compile(r"[A-Za-z0-9._+~-]{1,64}", re.ASCII)
_WINDOW_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3})?", re.ASCII)


class EvidenceInputError(ValueError):
    """An evidence input (window, fallback policy, stand-in kernels) is invalid."""


# --------------------------------------------------------------------------- inputs


def parse_window(value: Any, name: str) -> float:
    """Seconds ``total_reports`` is watched: a number from 0 to :data:`MAX_WINDOW`."""
    accepted = f"seconds as a number from 0 to {MAX_WINDOW:g} (0: do not watch the counter)"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EvidenceInputError(f"{name}: got {type(value).__name__}; expected {accepted}")
    if isinstance(value, str):
        text = value.strip(" \t")
        if not _WINDOW_RE.fullmatch(text):
            raise EvidenceInputError(f"{name}: {value[:40]!r} is not {accepted}")
        number = float(text)
    else:
        number = float(value)
    if math.isnan(number) or not 0 <= number <= MAX_WINDOW:
        raise EvidenceInputError(f"{name}: {value!r} is out of range; expected {accepted}")
    return number


def parse_fallback_policy(value: Any, name: str) -> str:
    if isinstance(value, str) and value in FALLBACK_POLICIES:
        return value
    shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
    raise EvidenceInputError(f"{name}: {shown} is not one of {', '.join(FALLBACK_POLICIES)}")


def parse_stand_in_kernels(value: Any, name: str) -> tuple[str, ...]:
    """Kernel releases (``uname -r``) built from a stand-in series."""
    accepted = (
        f"a list of at most {MAX_STAND_IN_KERNELS} kernel releases "
        f"(uname -r: [A-Za-z0-9._+~-], at most {MAX_RELEASE_CHARS} characters)"
    )
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise EvidenceInputError(f"{name}: got {type(value).__name__}; expected {accepted}")
    if len(value) > MAX_STAND_IN_KERNELS:
        raise EvidenceInputError(f"{name}: {len(value)} items; expected {accepted}")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _RELEASE_RE.fullmatch(item):
            shown = repr(item[:40]) if isinstance(item, str) else type(item).__name__
            raise EvidenceInputError(f"{name}[{index}]: {shown} is not {accepted}")
        out.append(item)
    return tuple(out)


# --------------------------------------------------------------------------- log lines


def log_text(line: str) -> str:
    """The message of a kernel log line: without the ``/dev/kmsg`` record header or the
    ``[   12.345678] `` time prefix, first line only (continuation lines of a kmsg record
    are key=value dictionary entries)."""
    text = line.split("\n", 1)[0]
    text = _KMSG_HEADER_RE.sub("", text, count=1)
    return _PRINTK_TIME_RE.sub("", text, count=1).rstrip()


def failure_lines(lines: Sequence[str]) -> list[str]:
    """Every kernel log line that says a perf event could not be created, as logged."""
    return [log_text(line) for line in lines if PERF_FAILURE_RE.search(log_text(line))]


def parse_failures(lines: Sequence[str]) -> list[dict[str, Any]]:
    """``perf event create on CPU N failed with E`` lines as ``{cpu, error}``."""
    out: list[dict[str, Any]] = []
    for line in lines:
        for match in PERF_FAILURE_RE.finditer(log_text(line)):
            out.append({"cpu": int(match.group(1)), "error": match.group(2)})
    return out


def parse_counter(text: str) -> int:
    """The decimal value of ``total_reports``; ValueError when it is not one."""
    value = text.strip()
    if not _COUNTER_RE.fullmatch(value):
        raise ValueError(f"not a decimal counter: {value[:40]!r}")
    return int(value, 10)


def _quoted(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..."


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Counter:
    """``kdamonds/<kdamond>/total_reports`` read at the start and the end of the window."""

    kdamond: int
    first: int
    last: int

    @property
    def grew(self) -> bool:
        return self.last > self.first


@dataclass
class Evidence:
    value: str
    reason: str
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    counters: list[Counter] = field(default_factory=list)
    window_s: float | None = None
    stand_in: bool = False
    fallback: str | None = None  # "accessed_bits" when monitoring goes on without perf

    def as_dict(self) -> dict[str, Any]:
        return {
            "perf_effective": self.value,
            "perf_evidence": {
                "reason": self.reason,
                "failures": list(self.failures),
                "failure_count": self.failure_count,
                "total_reports": [
                    {"kdamond": c.kdamond, "first": c.first, "last": c.last} for c in self.counters
                ],
                "window_s": self.window_s,
                "stand_in": self.stand_in,
                "fallback": self.fallback,
            },
        }


def _seconds(window: float) -> str:
    return f"{window:g} s"


def not_measured(reason: str, stand_in: bool = False) -> Evidence:
    """``unknown``: nothing was measured (check mode with writes pending, no window...)."""
    return Evidence(UNKNOWN, reason, stand_in=stand_in)


def no_perf_configured(reason: str, stand_in: bool = False) -> Evidence:
    """``no``: DAMON runs without perf events (none configured, or no perf layout)."""
    return Evidence(NO, reason, stand_in=stand_in, fallback=FALLBACK_ACCESSED_BITS)


def judge(
    log_lines: Sequence[str] | None,
    counters: Sequence[Counter] | None,
    window_s: float,
    stand_in: bool = False,
    log_error: str | None = None,
    since: str = "since the kdamond started",
) -> Evidence:
    """Apply the rules to what was read for the kdamonds with perf events configured.

    ``log_lines``: the kernel log since the kdamonds started (None: unreadable, then
    ``log_error`` says why).  ``counters``: ``total_reports`` at the start and end of the
    window, one per kdamond (None: the layout has no counter, or ``window_s`` is 0).
    """
    lines = failure_lines(log_lines) if log_lines is not None else []
    if lines:
        quoted = [_quoted(line) for line in lines[:MAX_FAILURE_LINES]]
        more = len(lines) - len(quoted)
        reason = "; ".join(quoted) + (f"; and {more} more such lines" if more else "")
        if counters and all(c.grew for c in counters):
            # some events were created and sample; the dropped ones do not
            reason += f"; {_grew_text(counters, window_s)} from the events that remain"
            fallback = None
        else:
            reason += "; monitoring with accessed bits"
            fallback = FALLBACK_ACCESSED_BITS
        return Evidence(
            NO,
            reason,
            failures=quoted,
            failure_count=len(lines),
            counters=list(counters or []),
            window_s=window_s if counters is not None else None,
            stand_in=stand_in,
            fallback=fallback,
        )
    flat = [c for c in (counters or []) if not c.grew]
    if counters is not None and flat:
        reason = "; ".join(
            (f"kdamond {c.kdamond}: " if len(counters) > 1 else "")
            + f"total_reports stayed at {c.last} over {_seconds(window_s)}"
            for c in flat
        )
        if log_lines is None:
            reason += f" (kernel log not read: {log_error})"
        return Evidence(
            NO,
            reason,
            counters=list(counters),
            window_s=window_s,
            stand_in=stand_in,
            fallback=FALLBACK_ACCESSED_BITS,
        )
    if log_lines is None:
        grew = (
            "; " + _grew_text(counters, window_s) if counters else ""
        )  # growth alone is not enough
        return Evidence(
            UNKNOWN,
            f"cannot read the kernel log ({log_error}){grew}",
            counters=list(counters or []),
            window_s=window_s if counters is not None else None,
            stand_in=stand_in,
        )
    clean = f"no perf event create failure in the kernel log {since}"
    if counters is None:
        return Evidence(
            UNKNOWN,
            f"{clean}, but this kernel has no total_reports counter: "
            "the kernel log is the only evidence"
            if window_s > 0
            else f"{clean}; total_reports not watched (evidence window 0)",
            stand_in=stand_in,
        )
    return Evidence(
        YES,
        f"{clean}; {_grew_text(counters, window_s)}",
        counters=list(counters),
        window_s=window_s,
        stand_in=stand_in,
    )


def _grew_text(counters: Sequence[Counter], window_s: float) -> str:
    return "; ".join(
        (f"kdamond {c.kdamond}: " if len(counters) > 1 else "")
        + f"total_reports grew {c.first} -> {c.last} over {_seconds(window_s)}"
        for c in counters
    )


# --------------------------------------------------------------------------- display


def value_of(result: Mapping[str, Any]) -> str | None:
    """``perf_effective`` of a result as yes/no/unknown (None when absent).

    Results written before the value had three states carry a bool; those read as
    yes/no so that old run records still show.
    """
    value = result.get("perf_effective")
    if value is True:
        return YES
    if value is False:
        return NO
    if isinstance(value, str) and value in VALUES:
        return value
    return None


def describe(result: Mapping[str, Any], with_reason: bool = True) -> str:
    """The one-line text of ``perf_effective`` every report prints, e.g.
    ``no (perf event create on CPU 0 failed with -2; monitoring with accessed bits ...)``
    or ``yes (stand-in kernel; ...)``; ``-`` when the result has none.

    A stand-in kernel is named next to the value even without the reason.
    """
    value = value_of(result)
    if value is None:
        return "-"
    evidence = result.get("perf_evidence")
    evidence = evidence if isinstance(evidence, Mapping) else {}
    notes = []
    if evidence.get("stand_in") is True:
        notes.append("stand-in kernel")
    reason = evidence.get("reason")
    if with_reason and isinstance(reason, str) and reason:
        notes.append(" ".join(reason.split()))
    return f"{value} ({'; '.join(notes)})" if notes else value


def is_stand_in(release: str | None, stand_in_kernels: Sequence[str]) -> bool:
    return release is not None and release in stand_in_kernels
