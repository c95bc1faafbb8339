"""Bench: playbooks/configure.yml against a no-op play on the same lab host.

The shared lab VM (tests/vm/conftest.py, no extra VM). The guest starts as booted (no
kdamond, no boot-time files), so the first configure run has everything to change; the
second has nothing to change. Each is timed against a no-op play
(``ansible.builtin.ping``, no facts) on the same host, and the module runs per host are
counted from the task results (tests/vm/callback_plugins/damon_results.py): results of
tasks whose action runs a module on the host (not the controller-side actions below, such
as the role's argument validation), handlers included, skipped ones too.

Prints ``configure (nothing to change): X.X s, N module runs/host; no-op play: Y.Y s;
ratio R.R`` and asserts ratio <= 3 and at most 3 module runs a host.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labvm import LabVm
from role_runner import RoleRun, role_runner

pytestmark = pytest.mark.vm

VM_DIR = Path(__file__).resolve().parent
REPO = VM_DIR.parents[1]
CONFIGURE = REPO / "playbooks" / "configure.yml"

MAX_RATIO = 3.0
MAX_MODULE_RUNS = 3

# Actions that run on the controller only (no module run on the host).
CONTROLLER_ACTIONS = {
    f"{prefix}{name}"
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in (
        "set_stats",
        "validate_argument_spec",
        "debug",
        "meta",
        "set_fact",
        "assert",
        "fail",
        "include_tasks",
        "include_role",
        "import_tasks",
        "import_role",
        "include_vars",
        "add_host",
        "group_by",
    )
}

NOOP_PLAY = """---
- name: A no-op play (the bench's baseline)
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

ROLE_VARS: dict[str, Any] = {
    "damon_perf_kdamonds": [
        {
            "operations": "paddr",
            "intervals": {"sample_us": "20ms", "aggr_us": "200ms", "update_us": "2s"},
            "nr_regions": {"min": 10, "max": 200},
        }
    ],
    "damon_perf_no_event_policy": "accessed_bit",  # the lab kernel: mainline layout
    "damon_perf_settle_time": 0.5,
}

ADMIN = "/sys/kernel/mm/damon/admin"
UNIT = "damon-fleet-apply.service"
RESET = (
    f"systemctl disable --now {UNIT}; "
    f"rm -rf /etc/systemd/system/{UNIT} /etc/damon-fleet /usr/local/sbin/damon-fleet-apply "
    "/usr/local/lib/damon-fleet; systemctl daemon-reload; systemctl reset-failed; "
    f"K={ADMIN}/kdamonds; for s in $K/*/state; do "
    '[ "$(cat $s)" = on ] && echo off > $s; done; echo 0 > $K/nr_kdamonds'
)


def module_runs(run: RoleRun) -> dict[str, int]:
    """Module runs per host: task results whose action runs a module on the host."""
    counts: Counter[str] = Counter()
    for task in run.tasks:
        if task.get("action") not in CONTROLLER_ACTIONS:
            counts[task["host"]] += 1
    return dict(counts)


def figures(label: str, configure: RoleRun, noop: RoleRun) -> tuple[float, int]:
    runs = module_runs(configure)
    per_host = max(runs.values(), default=0)
    ratio = configure.seconds / noop.seconds
    modules = [
        f"{t['task'].split(' : ')[-1]} ({t['status']}, {t['seconds']:.1f} s)"
        for t in configure.tasks
        if t.get("action") not in CONTROLLER_ACTIONS
    ]
    print(
        f"\nconfigure ({label}): {configure.seconds:.1f} s, {per_host} module runs/host; "
        f"no-op play: {noop.seconds:.1f} s; ratio {ratio:.1f}"
        f"\n  module tasks: {modules}"
        f"\n  no-op play's ping: {[t['seconds'] for t in noop.tasks]} s"
    )
    return ratio, per_host


@pytest.fixture(scope="module")
def runs(
    lab_vm: LabVm, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Callable[..., RoleRun]]:
    workdir = tmp_path_factory.mktemp("configure_bench")
    noop = workdir / "noop.yml"
    noop.write_text(NOOP_PLAY)
    return {
        "configure": role_runner(lab_vm, workdir / "configure", CONFIGURE),
        "noop": role_runner(lab_vm, workdir / "noop", noop),
    }


def test_configure_with_nothing_to_change_costs_at_most_3x_a_noop_play(
    lab_vm: LabVm, runs: dict[str, Callable[..., RoleRun]]
) -> None:
    started = time.monotonic()
    lab_vm.ssh(RESET, check=False)
    try:
        configure, noop = runs["configure"], runs["noop"]
        baseline = noop({})
        assert baseline.rc == 0, baseline.output()

        first = configure(ROLE_VARS)
        assert first.rc == 0, first.output()
        assert first.recap.get("changed", 0) > 0, "the first run should have changed the host"
        figures("something to change, first run", first, baseline)

        again = configure(ROLE_VARS)
        assert again.rc == 0, again.output()
        assert again.recap.get("changed") == 0, again.changed_tasks()
        noop_again = noop({})
        assert noop_again.rc == 0, noop_again.output()
        best_noop = min(baseline, noop_again, key=lambda r: r.seconds)
        ratio, per_host = figures("nothing to change", again, best_noop)
        print(f"bench total: {time.monotonic() - started:.1f} s")
        assert per_host <= MAX_MODULE_RUNS, again.tasks
        assert ratio <= MAX_RATIO
    finally:
        lab_vm.ssh(RESET, check=False)
