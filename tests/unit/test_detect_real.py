"""Detection run for real on this machine (a VM without PEBS): perf, sysfs, the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

MEM_EVENTS = [
    *Path("/sys/bus/event_source/devices").glob("*/events/mem-loads"),
    *Path("/sys/bus/event_source/devices").glob("ibs_op"),
    *Path("/sys/bus/event_source/devices").glob("arm_spe*"),
]
pytestmark = pytest.mark.skipif(
    bool(MEM_EVENTS), reason=f"this machine has PMU memory events ({MEM_EVENTS[:1]})"
)
VENV_BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def test_perf_is_installed() -> None:
    # .ci/bootstrap installs the distribution's perf package; the test below needs it.
    assert shutil.which("perf"), "perf missing: run .ci/bootstrap"


def test_module_answers_none_memory_events_not_supported() -> None:
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "perf_mem_facts", "-o"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    facts = result["ansible_facts"]["damon_perf"]
    assert result["changed"] is False
    assert facts["classification"] == "none"
    assert facts["damon_perf_events"] == []
    assert "memory events not supported" in facts["reason"]
    assert facts["perf_version"]
    assert facts["kernel_release"] == os.uname().release


def test_detect_playbook_prints_one_line_per_host() -> None:
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/detect.yml"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "localhost: none (no PMU memory events" in proc.stdout.replace("\n        ", " ")


def test_cli_detect_prints_the_same_facts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", "perf", "detect"],
        cwd=ROOT,
        env={**ENV, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["classification"] == "none"
    assert "memory events not supported" in facts["reason"]
    # no perf.data left behind in the working directory
    assert not (ROOT / "perf.data").exists()
