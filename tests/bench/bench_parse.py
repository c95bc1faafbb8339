"""Time ``perf.mem_vv.parse`` on real logs and on hostile input, against budgets.

Run: ``.venv/bin/python tests/bench/bench_parse.py [--repeat N]``.

Cases (each prints its best and median time of one parse, and its budget):

* ``fixtures-10k``: ~10,000 lines made of the real fixtures, repeated (budget 50 ms);
* ``errors-10k`` / ``errors-40k``: 10,000 / 40,000 distinct error lines (``Error:``
  paragraphs, ``failed:`` lines, ``Failure to open event`` lines, failed opens). The parser
  is linear, so 40,000 lines get 4 x the 10,000-line budget (50 ms -> 200 ms); a quadratic
  parser took 7.5 s there;
* ``fields-1000``: ``perf_event_attr:`` and one line of 1,000 fields (it once raised
  RecursionError; budget 50 ms);
* ``summarize``: :func:`summarize` of the fixtures-10k result.

Exits 1 when a case is over its budget (or raises), 0 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import damon_fleet  # noqa: E402,F401,I001  (makes the collection's module_utils importable)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import (  # noqa: E402
    parse,
    summarize,
)

LOGS = ROOT / "tests" / "fixtures" / "perf-mem-logs"
TARGET_MS = 50.0  # per 10,000 lines


def build_log(lines: int) -> str:
    """Repeat the fixtures (the -vv ones first, all of them after) up to ``lines`` lines."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(LOGS.glob("*.log"))]
    pool = [line for text in texts for line in text.splitlines()]
    out: list[str] = []
    while len(out) < lines:
        out.extend(pool[: lines - len(out)])
    return "\n".join(out) + "\n"


def error_log(lines: int) -> str:
    """``lines`` distinct error lines of the kinds perf prints, in turn."""
    kinds = (
        "Error: The sys_perf_event_open() syscall returned with {i} (Invalid argument) "
        "for event (cpu/mem-loads,ldlat={i}/).",
        "perf: failed: event 'cpu/mem-stores-{i}/P' not supported",
        "Failure to open event 'cpu_atom/mem-loads-{i}/' on PMU 'cpu_atom' which will be removed.",
        "sys_perf_event_open failed, error -{i}",
    )
    return "\n".join(kinds[i % len(kinds)].format(i=i) for i in range(lines)) + "\n"


def wide_line(fields: int) -> str:
    return "perf_event_attr:\n" + " ".join(f"config 0x{i:x}" for i in range(fields)) + "\n"


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    call()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return min(times), statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    fixtures = build_log(10_000)
    errors_10k = error_log(10_000)
    errors_40k = error_log(40_000)
    wide = wide_line(1_000)
    result = parse(fixtures)
    print(
        f"fixtures-10k: {fixtures.count(chr(10))} lines, {len(fixtures)} chars, "
        f"{len(result.blocks)} blocks, {sum(len(b.opens) for b in result.blocks)} open lines"
    )
    cases: list[tuple[str, Callable[[], object], float]] = [
        ("fixtures-10k", lambda: parse(fixtures), TARGET_MS),
        ("errors-10k", lambda: parse(errors_10k), TARGET_MS),
        ("errors-40k", lambda: parse(errors_40k), 4 * TARGET_MS),
        ("fields-1000", lambda: parse(wide), TARGET_MS),
        ("summarize", lambda: summarize(result), TARGET_MS),
    ]
    over = []
    bests: dict[str, float] = {}
    for name, call, budget in cases:
        try:
            best, median = timed(call, args.repeat)
        except Exception as exc:  # a parser that raises is over any budget
            print(f"{name}: raised {type(exc).__name__}: {exc}")
            over.append(name)
            continue
        bests[name] = best
        verdict = "met" if best < budget else "NOT met"
        print(
            f"{name}: best of {args.repeat} = {best:.2f} ms, median = {median:.2f} ms; "
            f"budget < {budget:.0f} ms: {verdict}"
        )
        if best >= budget:
            over.append(name)
    if "errors-10k" in bests and "errors-40k" in bests:
        ratio = bests["errors-40k"] / max(bests["errors-10k"], 1e-6)
        print(f"errors-40k / errors-10k = {ratio:.1f} (linear: 4; quadratic: 16)")
    if over:
        print(f"over budget: {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
