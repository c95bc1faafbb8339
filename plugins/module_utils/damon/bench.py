"""The DAMON A/B bench: parsing what it reads on a host, its figures and the gate.

Pure functions, no I/O (the reads are the ``damon_bench`` module's). The bench runs one
workload twice with the same DAMON parameters: arm A with the page-table accessed-bit
check (no perf events), arm B with perf events. Per arm it measures:

* the latency of the access-check functions the RFC's cover letter times, from tracefs
  ``function_graph`` output (:func:`parse_function_graph`) or the output of
  ``perf ftrace latency`` (:func:`parse_ftrace_latency`), and printed as the letter
  prints them (:func:`format_latency`);
* kdamond CPU time (``/proc/<pid>/stat``, :func:`parse_proc_stat`), NMIs
  (``/proc/interrupts``, :func:`parse_nmi_count`), the ``total_reports`` rate, and the
  workload's throughput and latency from the generator's stats (:func:`parse_workload_stats`).

:func:`decide` is the overhead gate: ``perf-events`` only when arm B measured and passes
every threshold, else ``accessed-bits``, with the figures that decided it.
:func:`bench_problem` is the one check of a ``bench.json`` document (format
:data:`BENCH_FORMAT`, documented in roles/damon_bench/README.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BENCH_FORMAT = 1
RECORD_FORMAT = 1
ARMS = ("A", "B")
ACCESS_CHECK = {"A": "accessed-bits", "B": "perf-events"}
DECISION_PERF = "perf-events"
DECISION_ACCESSED = "accessed-bits"
DECISIONS = (DECISION_PERF, DECISION_ACCESSED)

# The functions the cover letter times, per operations set and arm. The lab series names
# nothing of its own (its perf events only count samples): on it arm B's letter
# functions are "not measurable" (not in available_filter_functions).
LETTER_FUNCTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "vaddr": {
        "A": ("damon_va_prepare_access_checks", "damon_va_check_accesses"),
        "B": ("kdamond_prepare_perf_event_report", "kdamond_check_perf_event_reported_accesses"),
    },
    "fvaddr": {
        "A": ("damon_va_prepare_access_checks", "damon_va_check_accesses"),
        "B": ("kdamond_prepare_perf_event_report", "kdamond_check_perf_event_reported_accesses"),
    },
    "paddr": {
        "A": ("damon_pa_prepare_access_checks", "damon_pa_check_accesses"),
        "B": ("kdamond_prepare_perf_event_report", "kdamond_check_perf_event_reported_accesses"),
    },
}
# A kernel symbol as tracefs lists it (compiler suffixes such as .isra.0 included).
FUNCTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}(?:\.[A-Za-z0-9_]{1,32}){0,3}", re.ASCII)
MAX_FUNCTIONS = 8

# Gate threshold inputs (role variables) and what each bounds.
GATE_INPUTS = {
    "max_kdamond_cpu_percent": "damon_bench_gate_max_kdamond_cpu_percent",
    "max_throughput_drop_percent": "damon_bench_gate_max_throughput_drop_percent",
    "min_samples_per_second": "damon_bench_gate_min_samples_per_second",
}


class BenchInputError(ValueError):
    """A bench input is invalid; the message names it and what is accepted."""


class BenchParseError(ValueError):
    """Text read on a host is not what the parser expects; the message says where."""


# --------------------------------------------------------------------------- inputs


def check_functions(value: Any, name: str) -> list[str]:
    """A list of kernel function names (at most :data:`MAX_FUNCTIONS`)."""
    accepted = (
        f"a list of at most {MAX_FUNCTIONS} kernel function names "
        "([A-Za-z_][A-Za-z0-9_]*, optionally with .suffix parts such as .isra.0)"
    )
    if not isinstance(value, list) or len(value) > MAX_FUNCTIONS:
        raise BenchInputError(f"{name}: got {value!r:.80}; expected {accepted}")
    out = []
    for item in value:
        if not isinstance(item, str) or not FUNCTION_RE.fullmatch(item):
            raise BenchInputError(
                f"{name}: {item!r:.80} is not a function name; expected {accepted}"
            )
        out.append(item)
    return out


@dataclass(frozen=True)
class Gate:
    """The thresholds of the overhead gate (see :data:`GATE_INPUTS`)."""

    max_kdamond_cpu_percent: float
    max_throughput_drop_percent: float
    min_samples_per_second: float

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Gate:
        values = {}
        for key, var in GATE_INPUTS.items():
            raw = data.get(key)
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise BenchInputError(f"{var}: got {raw!r:.60}; expected a number >= 0")
            number = float(raw)
            if not math.isfinite(number) or number < 0:
                raise BenchInputError(f"{var}: got {raw!r:.60}; expected a number >= 0")
            if key.endswith("_percent") and number > 100:
                raise BenchInputError(f"{var}: got {raw!r:.60}; expected a percentage 0..100")
            values[key] = number
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return {
            "max_kdamond_cpu_percent": self.max_kdamond_cpu_percent,
            "max_throughput_drop_percent": self.max_throughput_drop_percent,
            "min_samples_per_second": self.min_samples_per_second,
        }


# --------------------------------------------------------------------------- parsers


_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_LATENCY_STAT_RE = re.compile(
    rf"^\s*(total time|avg time|max time|min time|count)\s*:\s*({_NUMBER})\s*$", re.ASCII
)
_LATENCY_ROW_RE = re.compile(r"^\s*(.+?)\s*\|\s*([0-9]+)\s*\|\s*(#*)\s*\|\s*$", re.ASCII)


def parse_ftrace_latency(text: str) -> dict[str, Any]:
    """The statistics and histogram of one ``perf ftrace latency -T FUNC`` run.

    Returns ``{count, total_us, avg_us, min_us, max_us, histogram: [[bucket, count]]}``
    (microseconds, as perf prints them under ``# statistics (in usec)``). BenchParseError
    when the statistics block is missing or incomplete.
    """
    stats: dict[str, float] = {}
    histogram: list[list[Any]] = []
    seen_stats = False
    for line in text.splitlines():
        if line.strip().startswith("# statistics"):
            seen_stats = True
            continue
        match = _LATENCY_STAT_RE.match(line)
        if match and seen_stats:
            stats[match.group(1)] = float(match.group(2))
            continue
        row = _LATENCY_ROW_RE.match(line)
        if row and not line.lstrip().startswith("#"):
            histogram.append([" ".join(row.group(1).split()), int(row.group(2))])
    if not seen_stats:
        raise BenchParseError("perf ftrace latency output: no '# statistics' block")
    missing = [
        k for k in ("total time", "avg time", "max time", "min time", "count") if k not in stats
    ]
    if missing:
        raise BenchParseError(
            f"perf ftrace latency output: statistics without {', '.join(missing)}"
        )
    count = int(stats["count"])
    if sum(n for _, n in histogram) not in (0, count):
        raise BenchParseError(
            f"perf ftrace latency output: histogram counts {sum(n for _, n in histogram)} "
            f"calls, statistics count {count}"
        )
    return {
        "count": count,
        "total_us": stats["total time"],
        "avg_us": stats["avg time"],
        "max_us": stats["max time"],
        "min_us": stats["min time"],
        "histogram": histogram,
    }


# " 0) ! 7156.240 us |  func();"  or  " 1)   2.345 us |  } /* func */"
_GRAPH_RE = re.compile(
    r"^\s*(?:[0-9]+\.[0-9]+\s*\|\s*)?"  # funcgraph-abstime
    r"(?P<cpu>[0-9]+)\)\s+"
    r"(?:\S+\s+\|\s+)?"  # funcgraph-proc (comm-pid |)
    r"[$@*#!+]?\s*(?P<dur>[0-9]+\.[0-9]+)\s+us\s+\|\s+"
    r"(?:(?P<leaf>[A-Za-z_][A-Za-z0-9_.]*)\(\);|\}\s*/\*\s*(?P<close>[A-Za-z_][A-Za-z0-9_.]*)\s*\*/)",
    re.ASCII,
)


def parse_function_graph(text: str, functions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Durations per function from tracefs ``trace`` of the ``function_graph`` tracer.

    Only completed calls count: a leaf line (``func();``) or the closing line of a call
    whose children were traced (``} /* func */``, with ``funcgraph-tail``). Returns, for
    each of *functions*, ``{count, total_us, avg_us, min_us, max_us}`` (count 0 and the
    others None when it was not called).
    """
    wanted = set(functions)
    durations: dict[str, list[float]] = {name: [] for name in functions}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _GRAPH_RE.match(line)
        if not match:
            continue
        name = match.group("leaf") or match.group("close")
        if name in wanted:
            durations[name].append(float(match.group("dur")))
    return {name: summarize(values) for name, values in durations.items()}


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{count, total_us, avg_us, min_us, max_us}`` of durations in microseconds."""
    if not values:
        return {"count": 0, "total_us": 0.0, "avg_us": None, "min_us": None, "max_us": None}
    total = sum(values)
    return {
        "count": len(values),
        "total_us": round(total, 3),
        "avg_us": round(total / len(values), 3),
        "min_us": min(values),
        "max_us": max(values),
    }


_PROFILE_RE = re.compile(
    rf"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s+(?P<hit>[0-9]+)\s+(?P<time>{_NUMBER})\s+us\s+"
    rf"(?P<avg>{_NUMBER})\s+us\s+(?P<s2>{_NUMBER})\s+us\s*$",
    re.ASCII,
)


def parse_function_profile(texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Hits and time per function from tracefs ``trace_stat/function<N>`` (the function
    profiler; one text per CPU, summed). ``{name: {count, total_us, avg_us}}``; the
    profiler keeps no min/max."""
    out: dict[str, dict[str, Any]] = {}
    for text in texts:
        for line in text.splitlines():
            match = _PROFILE_RE.match(line)
            if not match:
                continue
            entry = out.setdefault(match.group("name"), {"count": 0, "total_us": 0.0})
            entry["count"] += int(match.group("hit"))
            entry["total_us"] = round(entry["total_us"] + float(match.group("time")), 3)
    for entry in out.values():
        entry["avg_us"] = round(entry["total_us"] / entry["count"], 3) if entry["count"] else None
    return out


def parse_proc_stat(text: str) -> dict[str, Any]:
    """``/proc/<pid>/stat``: ``{pid, comm, state, utime_ticks, stime_ticks}``. The comm
    may hold spaces and parentheses, so fields are split after the last ``)``."""
    head, sep, tail = text.strip().rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    if not sep or not pid_text.isdigit() or len(fields) < 13:
        raise BenchParseError(f"/proc/<pid>/stat: unexpected text {text[:80]!r}")
    try:
        utime, stime = int(fields[11]), int(fields[12])
    except ValueError as exc:
        raise BenchParseError(f"/proc/<pid>/stat: utime/stime not integers: {text[:80]!r}") from exc
    return {
        "pid": int(pid_text),
        "comm": comm,
        "state": fields[0],
        "utime_ticks": utime,
        "stime_ticks": stime,
    }


def parse_nmi_count(text: str) -> int:
    """The total of the ``NMI:`` row of ``/proc/interrupts`` over all CPUs."""
    lines = text.splitlines()
    if not lines:
        raise BenchParseError("/proc/interrupts: empty")
    cpus = len(lines[0].split())
    for line in lines[1:]:
        label, _, rest = line.partition(":")
        if label.strip() != "NMI":
            continue
        counts = rest.split()[:cpus]
        if len(counts) < cpus or not all(c.isdigit() for c in counts):
            raise BenchParseError(f"/proc/interrupts: NMI row without {cpus} counts: {line[:80]!r}")
        return sum(int(c) for c in counts)
    raise BenchParseError("/proc/interrupts: no NMI row")


def parse_workload_stats(data: Any) -> dict[str, float]:
    """The access-pattern generator's stats file (JSON): ``ops`` (accesses done),
    ``batches``, ``latency_us_sum`` and ``latency_us_max`` (per batch), ``time``."""
    if not isinstance(data, Mapping):
        raise BenchParseError("workload stats: not a JSON object")
    out = {}
    for key in ("ops", "batches", "latency_us_sum", "time"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise BenchParseError(f"workload stats: {key} is {value!r:.40}, expected a number >= 0")
        out[key] = float(value)
    return out


# --------------------------------------------------------------------------- figures


def cpu_figures(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    ticks_per_second: int,
    seconds: float,
    aggr_us: int,
) -> dict[str, float]:
    """kdamond CPU time over an arm: seconds, percent of one CPU, and milliseconds per
    aggregation interval."""
    ticks = (after["utime_ticks"] + after["stime_ticks"]) - (
        before["utime_ticks"] + before["stime_ticks"]
    )
    cpu = max(0, ticks) / ticks_per_second
    intervals = seconds / (aggr_us / 1e6) if aggr_us > 0 else 0.0
    return {
        "kdamond_cpu_seconds": round(cpu, 3),
        "kdamond_cpu_percent": round(100.0 * cpu / seconds, 2) if seconds > 0 else 0.0,
        "kdamond_cpu_ms_per_aggr": round(1000.0 * cpu / intervals, 3) if intervals else 0.0,
    }


def workload_figures(
    before: Mapping[str, float], after: Mapping[str, float]
) -> dict[str, float | None]:
    """Throughput (accesses per second) and mean batch latency between two stats reads."""
    span = after["time"] - before["time"]
    ops = after["ops"] - before["ops"]
    batches = after["batches"] - before["batches"]
    latency = after["latency_us_sum"] - before["latency_us_sum"]
    return {
        "ops_per_second": round(ops / span, 1) if span > 0 else None,
        "batch_latency_us_avg": round(latency / batches, 1) if batches > 0 else None,
    }


def format_latency(function: str, stats: Mapping[str, Any]) -> str:
    """One function's statistics as the cover letter prints them (``perf ftrace
    latency``'s ``# statistics (in usec)`` block), or why it is not measurable."""
    if stats.get("not_measurable"):
        return f"# {function}: not measurable: {stats['not_measurable']}"
    if not stats.get("count"):
        return f"# {function}: not called during the arm"
    return "\n".join(
        [
            f"# {function}",
            "# statistics (in usec)",
            f"  total time: {round(stats['total_us'])}",
            f"    avg time: {round(stats['avg_us'])}",
            f"    max time: {round(stats['max_us'])}",
            f"    min time: {round(stats['min_us'])}",
            f"       count: {stats['count']}",
        ]
    )


# --------------------------------------------------------------------------- the gate


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def decide(
    arm_a: Mapping[str, Any] | None, arm_b: Mapping[str, Any] | None, gate: Gate
) -> dict[str, Any]:
    """The overhead gate: ``perf-events`` when arm B was measured and passes every check
    below, else ``accessed-bits``. Each check names its figure, limit and outcome; a figure
    that was not measured fails its check (the gate decides on evidence only).

    * kdamond CPU (percent of one CPU) in arm B at most ``max_kdamond_cpu_percent``;
    * throughput drop of B against A at most ``max_throughput_drop_percent`` (a workload
      without a reporting load generator cannot show a drop: the check passes, saying so);
    * ``total_reports`` per second in B at least ``min_samples_per_second``.
    """
    checks: list[dict[str, Any]] = []
    if not arm_b or arm_b.get("not_measurable"):
        reason = (arm_b or {}).get("not_measurable") or "arm B did not run"
        return {
            "decision": DECISION_ACCESSED,
            "reason": f"arm B not measurable: {reason}",
            "checks": [],
            "gate": gate.as_dict(),
        }
    cpu = _number(arm_b.get("kdamond_cpu_percent"))
    checks.append(
        {
            "check": "kdamond_cpu_percent",
            "value": cpu,
            "limit": gate.max_kdamond_cpu_percent,
            "passed": cpu is not None and cpu <= gate.max_kdamond_cpu_percent,
            "text": (
                "kdamond CPU not measured"
                if cpu is None
                else f"kdamond CPU {cpu:g}% (max {gate.max_kdamond_cpu_percent:g}%)"
            ),
        }
    )
    a_ops = _number(((arm_a or {}).get("workload") or {}).get("ops_per_second"))
    b_ops = _number((arm_b.get("workload") or {}).get("ops_per_second"))
    if a_ops is None or b_ops is None or a_ops <= 0:
        drop = None
        passed = True
        text = "throughput not reported by the workload (no drop can be shown)"
    else:
        drop = round(100.0 * (a_ops - b_ops) / a_ops, 2)
        passed = drop <= gate.max_throughput_drop_percent
        text = f"throughput drop {drop:g}% (max {gate.max_throughput_drop_percent:g}%)"
    checks.append(
        {
            "check": "throughput_drop_percent",
            "value": drop,
            "limit": gate.max_throughput_drop_percent,
            "passed": passed,
            "text": text,
        }
    )
    rate = _number(arm_b.get("reports_per_second"))
    checks.append(
        {
            "check": "samples_per_second",
            "value": rate,
            "limit": gate.min_samples_per_second,
            "passed": rate is not None and rate >= gate.min_samples_per_second,
            "text": (
                "samples per second not measured (no total_reports)"
                if rate is None
                else f"{rate:g} samples/s (min {gate.min_samples_per_second:g})"
            ),
        }
    )
    failed = [c["text"] for c in checks if not c["passed"]]
    decision = DECISION_ACCESSED if failed else DECISION_PERF
    reason = "; ".join(failed) if failed else "; ".join(c["text"] for c in checks)
    return {"decision": decision, "reason": reason, "checks": checks, "gate": gate.as_dict()}


# --------------------------------------------------------------------------- documents


def ratio(a: Any, b: Any) -> float | None:
    """B / A, or None when either is missing or A is 0."""
    x, y = _number(a), _number(b)
    if x is None or y is None or x == 0:
        return None
    return round(y / x, 4)


def _problem_arm(arm: Any, where: str) -> str | None:
    if not isinstance(arm, Mapping):
        return f"{where} is not an object"
    if arm.get("not_measurable") is not None:
        return (
            None
            if isinstance(arm["not_measurable"], str)
            else f"{where}.not_measurable is not a string"
        )
    for key in ("seconds", "kdamond_cpu_percent", "kdamond_cpu_seconds", "kdamond_cpu_ms_per_aggr"):
        if _number(arm.get(key)) is None:
            return f"{where}.{key} is not a number"
    for key in ("nmi_delta", "reports", "reports_per_second"):
        if arm.get(key) is not None and _number(arm.get(key)) is None:
            return f"{where}.{key} is not a number or null"
    functions = arm.get("functions")
    if not isinstance(functions, Mapping):
        return f"{where}.functions is not an object"
    for name, stats in functions.items():
        if not isinstance(stats, Mapping):
            return f"{where}.functions.{name} is not an object"
        if stats.get("not_measurable") is None and not isinstance(stats.get("count"), int):
            return f"{where}.functions.{name} has neither a count nor not_measurable"
    if not isinstance(arm.get("workload"), Mapping):
        return f"{where}.workload is not an object"
    return None


def bench_problem(doc: Any) -> str | None:
    """What keeps *doc* from being a ``bench.json`` of format :data:`BENCH_FORMAT`, or
    None. The one check of the schema in roles/damon_bench/README.md."""
    if not isinstance(doc, Mapping):
        return "not a JSON object"
    if doc.get("format") != BENCH_FORMAT:
        return f"format is {doc.get('format')!r}, expected {BENCH_FORMAT}"
    hosts = doc.get("hosts")
    if not isinstance(hosts, list):
        return "hosts is not a list"
    for index, host in enumerate(hosts):
        where = f"hosts[{index}]"
        if not isinstance(host, Mapping) or not isinstance(host.get("host"), str):
            return f"{where} has no host name"
        if not isinstance(host.get("lab"), bool) or not isinstance(host.get("stand_in"), bool):
            return f"{where}.lab and .stand_in must be true/false"
        if host.get("error") is not None:
            if not isinstance(host["error"], str):
                return f"{where}.error is not a string"
            continue
        arms = host.get("arms")
        if not isinstance(arms, Mapping) or set(arms) != set(ARMS):
            return f"{where}.arms must have exactly A and B"
        for arm in ARMS:
            problem = _problem_arm(arms[arm], f"{where}.arms.{arm}")
            if problem:
                return problem
        decision = host.get("decision")
        if not isinstance(decision, Mapping) or decision.get("decision") not in DECISIONS:
            return f"{where}.decision.decision is not one of {DECISIONS}"
    return None
