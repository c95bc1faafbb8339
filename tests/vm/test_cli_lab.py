"""``damon-fleet deploy`` on the lab fleet: ansible-runner, progress, report, ctrl-C, --resume.

Starts its own 2 lab VMs (private state directory and inventory, linked to the lab
group_vars), runs the real CLI, interrupts it with SIGINT once the canary finished its
rollout, and resumes: the canary is not rebooted again, the second host is rolled out,
DAMON is configured, and the report of the run shows both hosts with their kernels.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_inventory import lab_ssh

from damon_fleet._paths import REPO_ROOT

pytestmark = pytest.mark.vm

TIMINGS: dict[str, float] = {}


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
    }


def cli(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(),
    )


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.inventory = root / "inventory"
        self.hosts_file = self.inventory / "hosts.yml"
        self.lab_args = ["--state-dir", str(root / "lab"), "--inventory", str(self.hosts_file)]
        self.runs = root / "runs"
        self.records = root / "rollout-state"

    def ssh(self, host: str, cmd: str) -> str:
        return lab_ssh(self.hosts_file, host, cmd, timeout=120, check=True).stdout.strip()

    def record(self, host: str) -> dict[str, Any]:
        path = self.records / f"{host}.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def run_args(self) -> list[str]:
        return ["--runs-dir", str(self.runs), "--no-progress-bar"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("cli-lab"))
    lab.inventory.mkdir()
    (lab.inventory / "group_vars").symlink_to(REPO_ROOT / "inventories" / "lab" / "group_vars")
    started = time.monotonic()
    up = cli("lab", "up", "--count", "2", *lab.lab_args)
    TIMINGS["lab up"] = time.monotonic() - started
    try:
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
        yield lab
    finally:
        cli("lab", "down", *lab.lab_args, timeout=300)
        print("\ndamon-fleet CLI on the lab:")
        for label, seconds in TIMINGS.items():
            print(f"  {label}: {seconds:.1f}s")


def test_bad_input_exits_2_before_anything_runs(lab: Lab) -> None:
    proc = cli("deploy", "-i", str(lab.inventory), "--limit", "nosuchhost", *lab.run_args())
    assert proc.returncode == 2, proc.stderr
    assert "nosuchhost" in proc.stderr
    assert not lab.records.exists()


def test_interrupted_deploy_resumes_without_rebooting_the_finished_host(lab: Lab) -> None:
    boot_ids = {
        host: lab.ssh(host, "cat /proc/sys/kernel/random/boot_id") for host in ("lab1", "lab2")
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "damon_fleet.cli",
            "deploy",
            "-i",
            str(lab.inventory),
            "-e",
            f"rollout_state_dir={lab.records}",
            *lab.run_args(),
        ],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # ctrl-C as soon as the canary is done (the second batch is about to start)
        deadline = time.monotonic() + 1800
        while lab.record("lab1").get("status") != "done":
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "lab1 never finished its rollout"
            time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    TIMINGS["deploy until ctrl-C (canary done)"] = time.monotonic() - started
    assert proc.returncode == 130, err[-4000:]
    assert "damon-fleet deploy --resume" in err
    (interrupted,) = sorted(lab.runs.iterdir())
    run = json.loads((interrupted / "run.json").read_text())
    assert run["status"] == "canceled" and run["exit_code"] == 130
    report = json.loads((interrupted / "report.json").read_text())
    assert {h["host"] for h in report["hosts"]} >= {"lab1", "lab2"}
    canary_boot = lab.ssh("lab1", "cat /proc/sys/kernel/random/boot_id")
    assert canary_boot != boot_ids["lab1"]  # lab1 rebooted into the new kernel
    assert lab.ssh("lab2", "cat /proc/sys/kernel/random/boot_id") == boot_ids["lab2"]

    started = time.monotonic()
    resumed = cli("deploy", "--resume", *lab.run_args())
    TIMINGS["deploy --resume (second host, DAMON)"] = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    assert "resuming run" in resumed.stderr
    # the canary was not rebooted again; the second host was
    assert lab.ssh("lab1", "cat /proc/sys/kernel/random/boot_id") == canary_boot
    assert lab.ssh("lab2", "cat /proc/sys/kernel/random/boot_id") != boot_ids["lab2"]
    records = {host: lab.record(host) for host in ("lab1", "lab2")}
    assert {r["status"] for r in records.values()} == {"done"}
    release = records["lab1"]["kernel_release"]
    assert lab.ssh("lab2", "uname -r") == release
    for host in ("lab1", "lab2"):
        state = "/sys/kernel/mm/damon/admin/kdamonds/0/state"
        assert lab.ssh(host, f"cat {state}") == "on"

    latest = sorted(lab.runs.iterdir())[-1]
    report = json.loads((latest / "report.json").read_text())
    rows = {h["host"]: h for h in report["hosts"]}
    assert set(rows) >= {"lab1", "lab2"}
    text = json.dumps(rows)
    assert release in text
    markdown = cli("report", "--format", "markdown", *lab.run_args()[:2])
    assert markdown.returncode == 0, markdown.stderr
    assert "lab1" in markdown.stdout and "lab2" in markdown.stdout
    status = cli("status", *lab.run_args()[:2])
    assert status.returncode == 0, status.stderr
    assert release in status.stdout
    print("\n" + markdown.stdout)
