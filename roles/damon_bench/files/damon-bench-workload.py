#!/usr/bin/python3
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The damon_bench access-pattern generator: a bounded, self-measuring memory workload.

Allocates SIZE MiB, touches every page once, then reads and writes pages in batches of
BATCH accesses until --seconds have passed (or SIGTERM), following a pattern:

  hot         --hot-percent of the accesses go to the first --hot-size-percent of the
              memory (a hot set DAMON should find), the rest uniformly anywhere
  uniform     every page equally likely
  sequential  pages in address order, wrapping around

Every --stats-interval seconds it writes, atomically, a JSON object to --stats:
  {"ops": accesses done, "batches": batches done, "latency_us_sum": sum of the batch
   times in microseconds, "latency_us_max": the slowest batch, "time": CLOCK_MONOTONIC}
The bench reads it at the start and the end of each arm (throughput and batch latency).
Only the Python standard library; runs as any user.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

PAGE = mmap.PAGESIZE


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage 0..100, got {text!r}")
    return value


def write_stats(path: str, stats: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(stats, handle)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=positive(int), default=64)
    parser.add_argument("--pattern", choices=("hot", "uniform", "sequential"), default="hot")
    parser.add_argument("--hot-percent", type=percent, default=80.0)
    parser.add_argument("--hot-size-percent", type=percent, default=10.0)
    parser.add_argument("--batch", type=positive(int), default=4096)
    parser.add_argument("--seconds", type=positive(float), default=600.0)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--stats-interval", type=positive(float), default=0.2)
    args = parser.parse_args(argv)

    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    memory = mmap.mmap(-1, args.size_mib * 1024 * 1024)
    pages = len(memory) // PAGE
    for page in range(pages):
        memory[page * PAGE] = 1
    hot_pages = max(1, int(pages * args.hot_size_percent / 100))
    rng = random.Random(0)
    stats: dict[str, Any] = {
        "ops": 0,
        "batches": 0,
        "latency_us_sum": 0.0,
        "latency_us_max": 0.0,
        "time": time.monotonic(),
        "pid": os.getpid(),
        "pages": pages,
    }
    write_stats(args.stats, stats)
    end = time.monotonic() + args.seconds
    next_stats = time.monotonic() + args.stats_interval
    cursor = 0
    while not stop and time.monotonic() < end:
        began = time.monotonic()
        for _ in range(args.batch):
            if args.pattern == "sequential":
                page = cursor
                cursor = (cursor + 1) % pages
            elif args.pattern == "uniform" or rng.random() * 100 >= args.hot_percent:
                page = rng.randrange(pages)
            else:
                page = rng.randrange(hot_pages)
            offset = page * PAGE + (cursor & 0xFF)
            memory[offset] = (memory[offset] + 1) & 0xFF
        now = time.monotonic()
        took = (now - began) * 1e6
        stats["ops"] += args.batch
        stats["batches"] += 1
        stats["latency_us_sum"] += took
        stats["latency_us_max"] = max(stats["latency_us_max"], took)
        if now >= next_stats:
            stats["time"] = now
            write_stats(args.stats, stats)
            next_stats = now + args.stats_interval
    stats["time"] = time.monotonic()
    write_stats(args.stats, stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
