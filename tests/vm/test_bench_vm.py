"""The A/B bench (role damon_bench, playbooks/benchmark.yml) on the lab series kernel.

Under QEMU TCG: arm A (accessed bits) is real, function latencies included (the lab
kernel has function-graph tracing); arm B runs the lab series' real software perf event
(cpu-clock, type 1 config 0) whose samples grow ``total_reports``; the series has no
``kdamond_*perf_event*`` functions, so arm B's function rows are "not measurable". Every
figure printed here is a lab figure on a stand-in kernel.

The second test kills the workload in the middle of arm B: the bench fails, and DAMON is
back as configured, proven by ``playbooks/verify.yml``. The VM (``lab_series_vm``) is shared
with the other lab series tests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labvm import LabVm
from role_runner import REPO, RoleRun, role_runner

pytestmark = pytest.mark.vm

CONFIGURE = Path(__file__).resolve().parent / "playbooks" / "damon_perf.yml"
BENCH = REPO / "playbooks" / "benchmark.yml"
VERIFY = REPO / "playbooks" / "verify.yml"
RESULT_TASK = "Hand the bench of this host to damon-fleet (bench.json)"
FAIL_TASK = "Fail with what went wrong during the bench (DAMON is back as configured)"
SOFTWARE_EVENT = {"type": 1, "config": 0, "sample_freq": 100}
ADMIN = "/sys/kernel/mm/damon/admin/kdamonds/0"


@pytest.fixture(scope="module")
def runs(
    lab_series_vm: LabVm, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Callable[..., RoleRun]]:
    return {
        name: role_runner(lab_series_vm, tmp_path_factory.mktemp(f"bench_vm_{name}"), playbook)
        for name, playbook in (("configure", CONFIGURE), ("bench", BENCH), ("verify", VERIFY))
    }


def lab_vars(build: dict[str, Any], state_dir: Path) -> dict[str, Any]:
    """The lab's configured DAMON (paddr, the software event pinned) and a bench scaled
    down for the lab: 5 ms / 100 ms / 1 s, 2 s per window."""
    return {
        "damon_perf_kdamonds": [
            {
                "operations": "paddr",
                "intervals": {"sample_us": "20ms", "aggr_us": "200ms", "update_us": "2s"},
                "nr_regions": {"min": 10, "max": 200},
            }
        ],
        "damon_perf_events": [SOFTWARE_EVENT],
        "damon_perf_persist": False,
        "damon_perf_settle_time": 0.5,
        "damon_perf_evidence_window": 1,
        "damon_perf_stand_in_kernels": [build["kernel_release"]],
        "damon_bench_intervals": {"sample_us": "5ms", "aggr_us": "100ms", "update_us": "1s"},
        "damon_bench_nr_regions": {"min": 10, "max": 1000},
        "damon_bench_arm_seconds": 2,
        "damon_bench_warmup_seconds": 0.5,
        "damon_bench_generator_mib": 32,
        "damon_bench_gate_max_kdamond_cpu_percent": 50,
        "damon_bench_gate_max_throughput_drop_percent": 20,
        "damon_bench_gate_min_samples_per_second": 50,
        "rollout_state_dir": str(state_dir),
    }


def print_bench(bench: dict[str, Any], seconds: float) -> None:
    arms = bench["arms"]
    print(f"\nbench on {bench['kernel']} (lab figures, stand-in kernel), {seconds:.0f} s")
    print(bench["letter"]["A"])
    print(bench["letter"]["B"])
    for key in (
        "kdamond_cpu_percent",
        "kdamond_cpu_ms_per_aggr",
        "nmi_delta",
        "reports_per_second",
    ):
        print(f"  {key}: A {arms['A'].get(key)}  B {arms['B'].get(key)}")
    print(f"  workload: A {arms['A']['workload']}  B {arms['B']['workload']}")
    print(f"  decision: {bench['decision']['decision']} ({bench['decision']['reason']})")


def test_a_bench_measures_both_arms_and_records_a_decision(
    runs: dict[str, Callable[..., RoleRun]],
    lab_series_build: dict[str, Any],
    lab_series_vm: LabVm,
    tmp_path: Path,
) -> None:
    variables = lab_vars(lab_series_build, tmp_path / "state")
    configured = runs["configure"](variables)
    assert configured.rc == 0, configured.output()
    run = runs["bench"](variables)
    assert run.rc == 0, run.output()
    bench = run.result(RESULT_TASK)["ansible_stats"]["data"]["damon_bench"]
    print_bench(bench, run.seconds)
    a, b = bench["arms"]["A"], bench["arms"]["B"]
    assert bench["lab"] is True and bench["stand_in"] is True
    for name in ("damon_va_prepare_access_checks", "damon_va_check_accesses"):
        stats = a["functions"][name]
        assert stats["count"] > 0 and 0 < stats["min_us"] <= stats["avg_us"] <= stats["max_us"]
    for name in ("kdamond_prepare_perf_event_report", "kdamond_check_perf_event_reported_accesses"):
        assert b["functions"][name]["not_measurable"].startswith(
            "not in available_filter_functions"
        )
    assert a["reports"] == 0 and b["reports"] > 0
    assert a["workload"]["ops_per_second"] > 0 and b["workload"]["ops_per_second"] > 0
    record = json.loads((tmp_path / "state" / "bench" / "labvm.json").read_text())
    assert record["decision"] == bench["decision"]["decision"]
    assert record["checks"] == bench["decision"]["checks"] and record["stand_in"] is True
    # Back as configured: the paddr kdamond, tracing off, no workload left.
    state = lab_series_vm.ssh(
        f"cat {ADMIN}/contexts/0/operations /sys/kernel/tracing/current_tracer; "
        "systemctl is-active damon-bench-workload.service || true"
    ).stdout.split()
    assert state == ["paddr", "nop", "inactive"], state


def test_a_failure_in_arm_b_leaves_damon_as_configured(
    runs: dict[str, Callable[..., RoleRun]],
    lab_series_build: dict[str, Any],
    lab_series_vm: LabVm,
    tmp_path: Path,
) -> None:
    variables = lab_vars(lab_series_build, tmp_path / "state")
    done: dict[str, RoleRun] = {}
    bench = threading.Thread(target=lambda: done.setdefault("run", runs["bench"](variables)))
    bench.start()
    # Arm B is being measured once the bench's vaddr kdamond has a perf event and the
    # damon_bench module runs (its AnsiballZ payload directory exists, in /tmp with
    # pipelining); then the workload dies. At the latest 5 s into arm B it dies anyway.
    killed = False
    seen_b = None
    deadline = time.monotonic() + 240
    while bench.is_alive() and time.monotonic() < deadline:
        probe = lab_series_vm.ssh(
            f"cat {ADMIN}/contexts/0/operations "
            f"{ADMIN}/contexts/0/monitoring_attrs/sample/primitives/perf_events/nr_perf_events; "
            "ls -d /tmp/ansible_damon_bench_payload_* "
            "/root/.ansible/tmp/ansible_damon_bench_payload_* 2>/dev/null | wc -l",
            check=False,
        ).stdout.split()
        if probe[:2] == ["vaddr", "1"]:
            seen_b = seen_b or time.monotonic()
            if probe[2:] != ["0"] or time.monotonic() - seen_b > 5:
                time.sleep(1.0 if probe[2:] != ["0"] else 0)
                lab_series_vm.ssh("systemctl kill --signal=KILL damon-bench-workload.service")
                killed = True
                break
        time.sleep(0.3)
    bench.join(timeout=300)
    run = done["run"]
    assert killed, run.output()
    assert run.rc != 0, run.output()
    failed = run.failed()
    assert [f["task"].split(" : ")[-1] for f in failed] == ["Arm B - measure", FAIL_TASK], failed
    message = failed[-1]["result"]["msg"]
    assert re.match(
        r"bench failed in Arm B - measure: the workload \(pid [0-9]+\) "
        r"(exited during arm B \(figures\) after [0-9.]+ s|exited before arm B was measured"
        r"|is not running at the start of arm B); "
        r"DAMON is back as configured \(verified\)$",
        message,
    ), message
    print(f"\ninjected failure: {message} ({run.seconds:.0f} s)")
    verified = runs["verify"](variables)
    assert verified.rc == 0, verified.output()
    state = lab_series_vm.ssh(
        f"cat {ADMIN}/state {ADMIN}/contexts/0/operations /sys/kernel/tracing/current_tracer; "
        "systemctl is-active damon-bench-workload.service || true; ls /run/damon-bench || true"
    ).stdout.split()
    assert state[:4] == ["on", "paddr", "nop", "inactive"], state
    assert len(state) == 4, state  # the run directory is gone
