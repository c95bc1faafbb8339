"""The controller's cost per host: detect and configure, in check mode, on N simulated hosts.

Run: .venv/bin/python tests/bench/bench_scale.py [N ...] [--forks F ...]
     (default: N = 10, forks 10 and 50; the README's projection used N = 10, 100, 1000)

Each simulated host is a folder on this machine, reached with the local connection:

* its PMU sysfs tree, cpuinfo and perf stand-in are a copy of one lab profile
  (``roles/lab_profile/files/profiles``, the four real machines in turn), so
  ``perf_detect`` parses a real capture and resolves real PMU files per host;
* ``damon_perf`` plans the lab's kdamond (``inventories/lab/group_vars/all.yml``)
  against this machine's DAMON sysfs in check mode: it reads, plans and diffs, and writes
  nothing.  Their ``systemctl`` is ``scale/bin/systemctl``, which answers ``show`` as a
  host with the boot-time unit installed (check mode only asks).

``playbooks/detect.yml`` and ``playbooks/configure.yml`` run as they do in ``deploy.yml``
(one ``ansible-playbook``, ``--check``).  The run's CPU is split in two:

* **host side**: every command the connection runs (the module's Python, Ansible's
  temporary-file commands), counted by the connection plugin ``bench_local`` (beside this
  file) around each command;
* **controller**: the rest of the CPU of ``ansible-playbook`` and its workers
  (templating, module packing, strategy, callbacks): what a control node spends per host
  of a real fleet, whose modules run on the hosts.

It prints, per N and forks: wall time, controller CPU per host and per task, host-side CPU
per host, and the tasks per host.  A bench, not a test: it fails only when a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "roles" / "lab_profile" / "files" / "profiles"
PERF_STAND_IN = ROOT / "roles" / "lab_profile" / "files" / "perf"
PLUGIN_DIR = Path(__file__).resolve().parent / "scale"
PLAYBOOKS = [ROOT / "playbooks" / "detect.yml", ROOT / "playbooks" / "configure.yml"]
PROFILE_NAMES = ("sapphirerapids", "raptorlake-hybrid", "icelake-sp", "amd-epyc-vm")
KDAMONDS = [
    {
        "operations": "paddr",
        "intervals": {"sample_us": "5ms", "aggr_us": "100ms", "update_us": "1s"},
        "nr_regions": {"min": 10, "max": 1000},
    }
]


def make_hosts(workdir: Path, count: int) -> Path:
    """Write *count* host folders and an inventory for them; return the inventory."""
    hosts: dict[str, dict[str, object]] = {}
    for index in range(count):
        name = f"sim{index:04d}"
        profile = PROFILE_NAMES[index % len(PROFILE_NAMES)]
        home = workdir / "hosts" / name
        shutil.copytree(PROFILES / profile, home, symlinks=True)
        (home / "bin").mkdir()
        shutil.copy2(PERF_STAND_IN, home / "bin" / "perf")
        hosts[name] = {
            "perf_detect_perf_path": str(home / "bin" / "perf"),
            "perf_detect_sysfs_root": str(home / "sys"),
            "perf_detect_proc_root": str(home / "proc"),
        }
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "bench_local",
                "ansible_python_interpreter": sys.executable,
                "ansible_become": False,
                "damon_perf_kdamonds": KDAMONDS,
                "damon_perf_no_event_policy": "accessed_bit",
                "perf_detect_summary": False,
            },
            "hosts": hosts,
        }
    }
    path = workdir / "hosts.json"
    path.write_text(json.dumps(inventory))
    return path


def run(inventory: Path, workdir: Path, forks: int) -> dict[str, float]:
    """One check-mode run of detect + configure; its wall time, CPU split and task count."""
    ledger = workdir / f"ledger-{forks}"
    ledger.write_text("")
    log = workdir / f"run-{forks}.log"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_CONNECTION_PLUGINS": str(PLUGIN_DIR),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": str(forks),
        # As on the lab and as the README recommends for fleets: one command per module.
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        "ANSIBLE_REMOTE_TMP": str(workdir / "remote-tmp"),
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "DAMON_FLEET_SCALE_LEDGER": str(ledger),
        # The simulated hosts' systemctl (scale/bin/systemctl): this machine may run no
        # systemd, and the bench must not ask the real one about units.
        "PATH": f"{PLUGIN_DIR / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(
            [
                str(Path(sys.executable).with_name("ansible-playbook")),
                "-i",
                str(inventory),
                "--check",
                *map(str, PLAYBOOKS),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(
            f"bench_scale: ansible-playbook failed ({proc.returncode}):\n"
            + "\n".join(log.read_text().splitlines()[-40:])
        )
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line.split() for line in ledger.read_text().splitlines() if line.strip()]
    host_side = sum(float(user) + float(system) for user, system in lines)
    recap = [line for line in log.read_text().splitlines() if " ok=" in line and ":" in line]
    tasks = 0
    for line in recap:
        fields = dict(part.split("=") for part in line.split(":", 1)[1].split())
        tasks += sum(int(fields[key]) for key in ("ok", "failed", "skipped"))  # ok has changed
    return {
        "wall": wall,
        "total_cpu": total,
        "host_cpu": host_side,
        "controller_cpu": total - host_side,
        "commands": len(lines),
        "tasks": tasks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="*", type=int, default=[10], metavar="N")
    parser.add_argument("--forks", nargs="+", type=int, default=[10, 50])
    args = parser.parse_args(argv)
    print(
        "scale bench: playbooks/detect.yml + configure.yml, --check, local connection; "
        f"{os.cpu_count()} CPUs"
    )
    header = (
        f"{'hosts':>6} {'forks':>5} {'wall s':>8} {'wall/host ms':>12} "
        f"{'ctl CPU/host ms':>15} {'ctl CPU/task ms':>15} {'host CPU/host ms':>16} "
        f"{'tasks/host':>10}"
    )
    print(header)
    for count in args.counts:
        with tempfile.TemporaryDirectory(prefix="damon-fleet-scale-") as tmp:
            workdir = Path(tmp)
            inventory = make_hosts(workdir, count)
            for forks in args.forks:
                figures = run(inventory, workdir, forks)
                per_host_tasks = figures["tasks"] / count
                print(
                    f"{count:>6} {forks:>5} {figures['wall']:>8.1f} "
                    f"{1000 * figures['wall'] / count:>12.0f} "
                    f"{1000 * figures['controller_cpu'] / count:>15.0f} "
                    f"{1000 * figures['controller_cpu'] / max(figures['tasks'], 1):>15.1f} "
                    f"{1000 * figures['host_cpu'] / count:>16.0f} "
                    f"{per_host_tasks:>10.1f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
