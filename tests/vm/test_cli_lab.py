"""``damon-fleet deploy`` on the lab fleet: ansible-runner, progress, report, ctrl-C,
SIGTERM, --resume, and per-host perf detection on the lab profiles.

Starts its own 2 lab VMs (private state directory, read by the lab_fleet inventory plugin
through a private inventory folder: ``hosts.yml`` with ``plugin: lab_fleet`` and the state
directory, ``group_vars`` linked to the lab's), runs the real CLI, interrupts it with
SIGINT once the canary finished its rollout, and resumes: the canary is not rebooted
again, the second host is rolled out, DAMON is configured, and the report of the run shows
both hosts with their kernels. Then,
on the same lab and build, a deploy with nothing left to roll out is stopped with SIGTERM
during detect/configure (exit 143, report, ``canceled``) and resumed without a reboot.

The CLI runs with SIGINT, SIGTERM and SIGHUP at their defaults whatever this test inherited
(a background job of a non-interactive shell starts with SIGINT ignored, and the CLI then
keeps ignoring it on purpose).
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
from lab_inventory import lab_hosts, lab_ssh

from damon_fleet._paths import REPO_ROOT
from damon_fleet.events import marker

pytestmark = pytest.mark.vm

TIMINGS: dict[str, float] = {}


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
    }


def _default_signals() -> None:
    """In the child: SIGINT, SIGTERM and SIGHUP as a terminal's foreground job has them."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def cli(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(),
        restore_signals=True,
        preexec_fn=_default_signals,
    )


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "damon_fleet.cli", *args],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        restore_signals=True,
        preexec_fn=_default_signals,
    )


def run_stages(run_dir: Path) -> set[str]:
    """The stages a run has entered so far: its ``stage`` events (damon_fleet.events) in
    the task events ansible-runner has written."""
    stages = set()
    for path in (run_dir / "artifacts" / "ansible" / "job_events").glob("*.json"):
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written
        found = marker(event) if isinstance(event, dict) else None
        if found is not None and found["event"] == "stage":
            stages.add(str(found.get("stage")))
    return stages


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "lab"
        # The inventory the deploys use: the lab_fleet plugin over the private state
        # directory, as inventories/lab/hosts.yml is over the checkout's.
        self.inventory = root / "inventory"
        # What `lab up` writes into the state directory (lab_fleet_inventory_path's default).
        self.hosts_file = self.state_dir / "hosts.yml"
        self.lab_args = ["--state-dir", str(self.state_dir)]
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
    (lab.inventory / "hosts.yml").write_text(f"plugin: lab_fleet\nstate_dir: {lab.state_dir}\n")
    (lab.inventory / "group_vars").symlink_to(REPO_ROOT / "inventories" / "lab" / "group_vars")
    started = time.monotonic()
    # lab up's own run directory (Ansible's log) apart from the deploys' runs
    lab_runs = ["--runs-dir", str(lab.root / "lab-runs")]
    up = cli("lab", "up", "--count", "2", *lab.lab_args, *lab_runs)
    TIMINGS["lab up"] = time.monotonic() - started
    try:
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
        yield lab
    finally:
        cli("lab", "down", *lab.lab_args, *lab_runs, timeout=300)
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
    proc = start_cli(
        "deploy",
        "-i",
        str(lab.inventory),
        "-e",
        f"rollout_state_dir={lab.records}",
        *lab.run_args(),
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
    assert run["status"] == "canceled" and run["exit_code"] == 130 and run["signal"] == "SIGINT"
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
    # Per-host detection, nothing pinned: each VM plays the real machine of its lab profile
    # (lab1 sapphirerapids, lab2 raptorlake-hybrid; roles/lab_profile) and deploy.yml
    # detected its events from that machine's captured perf run, PMU sysfs and cpuinfo.
    for host, profile in (("lab1", "sapphirerapids"), ("lab2", "raptorlake-hybrid")):
        assert lab.ssh(host, "readlink /opt/damon-fleet-lab/profile").startswith(
            f"/opt/damon-fleet-lab/profiles/{profile}-"
        )
        assert rows[host]["perf"]["source"] == "detected", rows[host]["perf"]
        assert rows[host]["perf"]["classification"] == "pebs", rows[host]["perf"]
    assert rows["lab1"]["perf"]["events"] == [
        {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 0x1F, "config2": 0}
    ]
    assert rows["lab2"]["perf"]["events"] == [
        {"pmu": "cpu_atom", "type": 10, "config": 0x5D0, "config1": 0x1F, "config2": 0}
    ]
    assert rows["lab1"]["perf"]["pmu_name"] == "sapphire_rapids"
    assert rows["lab2"]["perf"]["pmu_name"] == "alderlake_hybrid"
    markdown = cli("report", "--format", "markdown", *lab.run_args()[:2])
    assert markdown.returncode == 0, markdown.stderr
    assert "lab1" in markdown.stdout and "lab2" in markdown.stdout
    assert "pebs: cpu type=4 config=0x1cd config1=0x1f config2=0x0" in markdown.stdout
    assert "pebs: cpu_atom type=10 config=0x5d0 config1=0x1f config2=0x0" in markdown.stdout
    assert "(pinned)" not in markdown.stdout
    status = cli("status", *lab.run_args()[:2])
    assert status.returncode == 0, status.stderr
    assert release in status.stdout
    print("\n" + markdown.stdout)


def test_sigterm_stops_a_deploy_that_resume_then_finishes(lab: Lab) -> None:
    """SIGTERM during detect/configure of a deploy with nothing left to roll out: exit 143,
    the report, ``canceled``; ``deploy --resume`` then finishes without rebooting a host."""
    hosts = ("lab1", "lab2")
    rolled_out = all(lab.record(h).get("status") == "done" for h in hosts)
    boot_ids = {h: lab.ssh(h, "cat /proc/sys/kernel/random/boot_id") for h in hosts}
    before = set(lab.runs.iterdir()) if lab.runs.exists() else set()
    started = time.monotonic()
    proc = start_cli(
        "deploy",
        "-i",
        str(lab.inventory),
        "-e",
        f"rollout_state_dir={lab.records}",
        *lab.run_args(),
    )
    try:
        deadline = time.monotonic() + 1800
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the deploy never reached detect/configure"
            new = sorted(set(lab.runs.iterdir()) - before) if lab.runs.exists() else []
            if new and run_stages(new[-1]) & {"detect", "configure"}:
                break
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    TIMINGS["deploy until SIGTERM (detect/configure)"] = time.monotonic() - started
    assert proc.returncode == 143, err[-4000:]
    assert "damon-fleet: SIGTERM: stopping ansible" in err
    assert "interrupted (SIGTERM)" in err and "damon-fleet deploy --resume" in err
    (stopped,) = sorted(set(lab.runs.iterdir()) - before)
    run = json.loads((stopped / "run.json").read_text())
    assert (run["status"], run["exit_code"], run["signal"]) == ("canceled", 143, "SIGTERM")
    report = json.loads((stopped / "report.json").read_text())
    assert report["run"]["status"] == "canceled" and report["run"]["exit_code"] == 143
    assert {h["host"] for h in report["hosts"]} >= set(hosts)
    assert not (stopped / "env" / "extravars").exists()

    started = time.monotonic()
    resumed = cli("deploy", "--resume", *lab.run_args())
    TIMINGS["deploy --resume after SIGTERM"] = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    latest = sorted(lab.runs.iterdir())[-1]
    assert json.loads((latest / "run.json").read_text())["resumed_from"] == stopped.name
    assert {lab.record(h).get("status") for h in hosts} == {"done"}
    if rolled_out:  # nothing was left to roll out: no host rebooted
        for host in hosts:
            assert lab.ssh(host, "cat /proc/sys/kernel/random/boot_id") == boot_ids[host]
    for host in hosts:
        assert lab.ssh(host, "cat /sys/kernel/mm/damon/admin/kdamonds/0/state") == "on"


def test_bench_prints_a_table_and_a_decision_per_host(lab: Lab) -> None:
    """``damon-fleet bench`` on the deployed lab: per host the A/B table of measured
    numbers and a decision; ``damon-fleet report`` shows them; DAMON stays as configured."""
    hosts = sorted(lab_hosts(lab.hosts_file))
    if {lab.record(h).get("status") for h in hosts} != {"done"}:  # run alone: deploy first
        deployed = cli(
            "deploy",
            "-i",
            str(lab.inventory),
            "-e",
            f"rollout_state_dir={lab.records}",
            *lab.run_args(),
        )
        assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
    started = time.monotonic()
    bench = cli(
        "bench", "-i", str(lab.inventory), *lab.run_args(), "-e", f"rollout_state_dir={lab.records}"
    )
    TIMINGS["bench (2 hosts)"] = time.monotonic() - started
    assert bench.returncode == 0, bench.stdout[-4000:] + bench.stderr[-4000:]
    print("\n" + bench.stdout[-3000:])
    run = sorted(lab.runs.iterdir())[-1]
    data = json.loads((run / "bench.json").read_text())
    measured = {h["host"]: h for h in data["hosts"]}
    assert set(measured) == set(hosts)
    for host in hosts:
        assert not measured[host].get("error"), measured[host]
        # arm B ran on the host's detected events (the lab profiles have one each)
        assert "not_measurable" not in measured[host]["arms"]["B"], measured[host]["arms"]["B"]
        decision = json.loads((lab.records / "bench" / f"{host}.json").read_text())
        assert decision["decision"] in ("perf-events", "accessed-bits")
        assert lab.ssh(host, "cat /sys/kernel/mm/damon/admin/kdamonds/0/state") == "on"
    assert (run / "bench.html").is_file() and (run / "bench.md").is_file()
    report = cli("report", *lab.run_args()[:2])
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    for host in hosts:
        assert host in report.stdout
