"""Detection run for real on this machine, whatever it is: perf, sysfs, the module.

On a machine without PMU memory events (a VM, like the CI machines) the answer must be
"none" with the reason; on one with PEBS, IBS or SPE it must be that facility with events.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


DEVICES = Path("/sys/bus/event_source/devices")


def expected_facility(devices: Path = DEVICES) -> str:
    """What this machine's PMUs offer DAMON, from sysfs alone (as perf_mem_facts reports
    it): ``pebs`` (an Intel core PMU with ``events/mem-loads``), ``ibs`` (``ibs_op``),
    ``spe`` (``arm_spe*``) or ``none``."""
    if any(devices.glob("*/events/mem-loads")):
        return "pebs"
    if (devices / "ibs_op").is_dir():
        return "ibs"
    if any(devices.glob("arm_spe*")):
        return "spe"
    return "none"


EXPECTED = expected_facility()
VENV_BIN = os.path.dirname(sys.executable)
# The default inventory without a lab fleet, whatever the checkout's own lab does: this
# machine as localhost (the lab_fleet inventory plugin over a state directory that does
# not exist).
NO_LAB = Path(tempfile.gettempdir()) / "damon-fleet-tests-no-lab"
ENV = {
    **os.environ,
    "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    "ANSIBLE_NOCOLOR": "1",
    "DAMON_FLEET_LAB_STATE": str(NO_LAB),
}


def test_perf_is_installed() -> None:
    assert not NO_LAB.exists()
    # .ci/bootstrap installs the distribution's perf package; the test below needs it.
    assert shutil.which("perf"), "perf missing: run .ci/bootstrap"


def test_module_answers_what_the_pmus_offer() -> None:
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
    assert facts["classification"] == EXPECTED
    if EXPECTED == "none":
        assert facts["damon_perf_events"] == []
        assert "memory events not supported" in facts["reason"]
    else:
        assert facts["damon_perf_events"], facts
        assert facts["reason"] is None
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
    out = proc.stdout.replace("\n        ", " ")
    if EXPECTED == "none":
        assert "localhost: none (no PMU memory events" in out
    else:
        assert f"localhost: {EXPECTED} " in out


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
    assert facts["classification"] == EXPECTED
    if EXPECTED == "none":
        assert "memory events not supported" in facts["reason"]
    else:
        assert facts["damon_perf_events"] and facts["reason"] is None
    # no perf.data left behind in the working directory
    assert not (ROOT / "perf.data").exists()


def test_the_expectation_follows_the_pmus(tmp_path: Path) -> None:
    """A machine with PEBS, IBS or SPE expects that facility (the tests above run there
    too); one without expects none."""
    assert expected_facility(tmp_path) == "none"
    (tmp_path / "software" / "events").mkdir(parents=True)
    assert expected_facility(tmp_path) == "none"
    (tmp_path / "arm_spe_0").mkdir()
    assert expected_facility(tmp_path) == "spe"
    (tmp_path / "ibs_op").mkdir()
    assert expected_facility(tmp_path) == "ibs"
    (tmp_path / "cpu_core" / "events").mkdir(parents=True)
    (tmp_path / "cpu_core" / "events" / "mem-loads").write_text("event=0xcd,umask=0x1,ldlat=3\n")
    assert expected_facility(tmp_path) == "pebs"
