"""Time ``perf_mem_vv.parse`` on a ~10,000-line log made of the real fixtures.

Run: ``.venv/bin/python tests/bench/bench_parse.py [--lines N] [--repeat N]``.
Prints the best and the median time of one parse (target: < 50 ms for 10,000 lines).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import damon_fleet._paths  # noqa: E402,F401,I001  (registers plugins/module_utils)
from ansible.module_utils.perf_mem_vv import parse, summarize  # noqa: E402

LOGS = ROOT / "tests" / "fixtures" / "perf-mem-logs"
TARGET_MS = 50.0


def build_log(lines: int) -> str:
    """Repeat the fixtures (the -vv ones first, all of them after) up to ``lines`` lines."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(LOGS.glob("*.log"))]
    pool = [line for text in texts for line in text.splitlines()]
    out: list[str] = []
    while len(out) < lines:
        out.extend(pool[: lines - len(out)])
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()

    text = build_log(args.lines)
    times: list[float] = []
    result = parse(text)  # warm-up
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = parse(text)
        times.append((time.perf_counter() - start) * 1000.0)
    start = time.perf_counter()
    summarize(result)
    summary_ms = (time.perf_counter() - start) * 1000.0

    best = min(times)
    median = statistics.median(times)
    print(
        f"parse: {text.count(chr(10))} lines, {len(text)} chars, {len(result.blocks)} blocks, "
        f"{sum(len(b.opens) for b in result.blocks)} open lines"
    )
    print(f"parse time: best of {args.repeat} = {best:.2f} ms, median = {median:.2f} ms")
    print(f"summarize time: {summary_ms:.2f} ms")
    print(f"target < {TARGET_MS:.0f} ms: {'met' if best < TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
