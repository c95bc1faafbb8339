"""perf_effective from the kernel's own evidence, through the damon_perf role, on the lab
series kernel (kernel-patches/lab-perf-events-abi: perf events really created).

Under QEMU TCG both paths are real:

* a software event (type 1, config 0: cpu-clock) is created on every CPU and samples, so
  ``kdamonds/<K>/total_reports`` grows: ``perf_effective`` yes, and the kernel is named as
  a stand-in next to it;
* the PEBS load-latency event (type 4, config 0x1cd) has no PMU here, so the kernel logs
  ``perf event create on CPU 0 failed with -2`` and drops it: ``perf_effective`` no with
  that line, and ``damon_perf_fallback_policy: fail`` fails the host with it.

The VM (``lab_series_vm``) and the build are shared with test_lab_series.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labvm import LabVm
from role_runner import RoleRun, role_runner

pytestmark = pytest.mark.vm

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "damon_perf.yml"
APPLY_TASK = "Run damon_sysfs to apply"  # roles/damon_perf/tasks/sysfs.yml
SOFTWARE_EVENT = {"type": 1, "config": 0, "sample_freq": 100}
PEBS_EVENT = {"type": "0x4", "config": "0x1cd", "config1": "0x1f", "sample_freq": 100}


@pytest.fixture(scope="module")
def run_role(
    lab_series_vm: LabVm, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., RoleRun]:
    return role_runner(lab_series_vm, tmp_path_factory.mktemp("perf_effective_vm"), PLAYBOOK)


def role_vars(build: dict[str, Any], event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "damon_perf_kdamonds": [
            {
                "operations": "paddr",
                "intervals": {"sample_us": "20ms", "aggr_us": "200ms", "update_us": "2s"},
                "nr_regions": {"min": 10, "max": 200},
                "perf_events": [event],
            }
        ],
        "damon_perf_persist": False,
        "damon_perf_settle_time": 0.5,
        "damon_perf_evidence_window": 3,
        "damon_perf_stand_in_kernels": [build["kernel_release"]],
    }
    base.update(overrides)
    return base


def test_a_software_event_is_effective_from_the_growing_counter(
    run_role: Callable[..., RoleRun], lab_series_build: dict[str, Any]
) -> None:
    run = run_role(role_vars(lab_series_build, SOFTWARE_EVENT))
    assert run.rc == 0, run.output()
    result = run.result(APPLY_TASK)
    evidence = result["perf_evidence"]
    assert result["perf_effective"] == "yes", evidence
    assert evidence["stand_in"] is True, evidence
    assert evidence["failures"] == [], evidence
    assert result["perf_summary"].startswith("yes (stand-in kernel"), result["perf_summary"]
    print(f"\nsoftware event: {result['perf_summary']} ({run.seconds:.1f}s)")


def test_a_pebs_event_fails_to_be_created_and_the_strict_policy_fails_the_host(
    run_role: Callable[..., RoleRun], lab_series_build: dict[str, Any]
) -> None:
    run = run_role(role_vars(lab_series_build, PEBS_EVENT, damon_perf_fallback_policy="fail"))
    assert run.rc != 0, run.output()
    failed = run.failed()
    assert len(failed) == 1 and failed[0]["task"].endswith(APPLY_TASK), run.output()
    result = failed[0]["result"]
    assert result["perf_effective"] == "no", result
    assert "perf event create on CPU 0 failed with -2" in result["msg"], result["msg"]
    assert any(
        "perf event create on CPU 0 failed with -2" in line
        for line in result["perf_evidence"]["failures"]
    ), result["perf_evidence"]
    print(f"\nPEBS event, strict policy: {result['msg']} ({run.seconds:.1f}s)")
