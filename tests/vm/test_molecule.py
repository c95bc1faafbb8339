"""The Molecule scenarios on the lab fleet: deploy.yml end to end (a firmware and a kexec
trial boot) and then the rollback, and a canary whose kexec'd trial kernel panics and a
canary the bench gate fails.

Each scenario starts its own 2 lab VMs (``tests/molecule/shared/create.yml``), so it does
not touch the default lab fleet; they run one after the other (2 TCG VMs are what a 2-core
machine carries). ``-s`` shows the output, including the phase times and the report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
MOLECULE = Path(sys.executable).with_name("molecule")
PHASE_LINES = re.compile(
    r"(build: [\d.]+ s.*|batch \d+ done in [\d.]+ s|lab\d: \w+ \(batch \d+\), kernel .*)"
)


def molecule(scenario: str) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "PATH": f"{MOLECULE.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [str(MOLECULE), "test", "-s", scenario],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=5400,
        check=False,
    )
    output = proc.stdout + proc.stderr
    (ROOT / ".damon-fleet" / "molecule").mkdir(parents=True, exist_ok=True)
    (ROOT / ".damon-fleet" / "molecule" / f"{scenario}.log").write_text(output)
    return proc.returncode, output, time.monotonic() - started


def show(scenario: str, output: str, seconds: float) -> None:
    print(f"\nmolecule {scenario}: {seconds:.0f}s")
    for line in dict.fromkeys(m.group(1).strip() for m in PHASE_LINES.finditer(output)):
        print(f"  {line}")


REBOOT_LINES = re.compile(r"(reboot seconds lab\d: [^\"\n]*)")


def test_deploy_scenario() -> None:
    """deploy.yml (lab1 the canary with a firmware trial boot, lab2 with kexec), again
    with nothing to change, then damon-fleet rollback and a second rollback that changes
    nothing; prints each host's trial reboot against its firmware rollback reboot."""
    rc, output, seconds = molecule("deploy")
    show("deploy", output, seconds)
    for line in dict.fromkeys(m.group(1).strip() for m in REBOOT_LINES.finditer(output)):
        print(f"  {line}")
    assert rc == 0, output[-8000:]
    # molecule's idempotence step fails when the second converge reports any change
    assert "[deploy > idempotence] Executed: Successful" in output
    # the side effect and the rollback's checks ran (a failing step fails the run)
    assert "[deploy > side_effect] Executed: Successful" in output
    assert "TASK [Check that the host runs its previous kernel as its default" in output


def test_failure_scenario() -> None:
    """A canary whose trial kernel, started with kexec, panics and comes back on its
    previous kernel through the firmware (the rollout stops, the second host untouched),
    then a firmware trial boot whose gate the bench fails (the fallback reboot)."""
    rc, output, seconds = molecule("failure")
    show("failure", output, seconds)
    assert rc == 0, output[-8000:]
