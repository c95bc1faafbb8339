"""Concurrent updates of one rollout record: none is lost, and it takes bounded time."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import (
    apply,
    scan,
)

WORKERS = 8
UPDATES = 50


def _worker(state_dir: str, worker: int, start: float) -> None:
    while time.time() < start:  # start together, so the updates really overlap
        time.sleep(0.001)
    for step in range(UPDATES):
        apply(
            Path(state_dir),
            "lab1",
            now=1_800_000_000.0 + step,
            values={"batch": step},
            phase="install",
            result={f"w{worker}-{step}": step},
        )


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory when the machine has one (/dev/shm), else tmp_path: the time
    bound is for the locking, not for the disk's fsync latency, which other work on the
    machine (a VM run) can make arbitrarily long."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="damon-fleet-records-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_no_update_is_lost_under_concurrency(memory_dir: Path) -> None:
    state_dir = memory_dir / "state"
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 0.3
    workers = [ctx.Process(target=_worker, args=(str(state_dir), w, start)) for w in range(WORKERS)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=30)
    took = time.time() - start  # from the moment all workers start updating
    assert [p.exitcode for p in workers] == [0] * WORKERS
    record = json.loads((state_dir / "lab1.json").read_text())
    keys = set(record["phases"]["install"])
    expected = {f"w{w}-{s}" for w in range(WORKERS) for s in range(UPDATES)}
    assert expected - keys == set(), f"{len(expected - keys)} of {len(expected)} updates lost"
    print(f"{WORKERS} x {UPDATES} updates: {took:.2f} s")
    assert took < 5, f"{WORKERS} x {UPDATES} updates took {took:.1f} s"
    records, bad = scan(state_dir, None)
    assert bad == [] and [r["host"] for r in records] == ["lab1"]
    assert sorted(p.name for p in state_dir.iterdir()) == [".lab1.lock", "lab1.json"]
