"""Time to apply a one-kdamond configuration on the real lab kernel (QEMU guest, TCG).

Boots the lab VM (kernel and image from the cache, built if missing), installs the
boot-time applier in the guest (the role's ``damon-fleet-apply`` template and the
module_utils files the role ships, laid out as the role lays them out, under a private
directory so no role run is needed), and prints the
median of N runs of

* a first apply from nothing (``nr_kdamonds`` 0, as at boot) and
* a re-apply with nothing to change,

both as the ``damon-fleet-apply`` command (Python start-up included: what boot pays) and
in-process (``apply_spec`` alone), timed inside the guest with ``settle_time`` 0 (the
post-``on`` settle wait is excluded), against the 1 s target.

Needs the VM: skipped (exit 0, one line) unless ``DAMON_FLEET_VM=1``.

Run: DAMON_FLEET_VM=1 .venv/bin/python tests/bench/bench_apply_vm.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT / "src", ROOT / "tests"):  # the package and the lab harness (labvm)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

TARGET_S = 1.0
GUEST_DIR = "/tmp/damon-bench"
ROLE = ROOT / "roles" / "damon_perf"
ROLE_TEMPLATES = ROLE / "templates"
WORKLOAD_UNIT = "damon-bench-workload.service"

# The RFC v3 cover-letter kdamond on the mainline layout: vaddr, its intervals, the
# accessed-bit check (the lab kernel has no perf_events directory).
BENCH_KDAMOND: dict[str, Any] = {
    "operations": "vaddr",
    "targets": [{"pid": 0}],  # replaced by the guest workload's pid
    "intervals": {"sample_us": "5s", "aggr_us": "60s", "update_us": "300s"},
    "nr_regions": {"min": 10, "max": 1000},
    "perf_events": [],
}

# Runs in the guest: N rounds of (reset to nr_kdamonds 0, first apply, re-apply), both
# as the applier command and in-process; prints one JSON object.
GUEST_BENCH = r"""
import json, os, runpy, subprocess, sys, time

bench_dir, rounds = sys.argv[1], int(sys.argv[2])
admin = "/sys/kernel/mm/damon/admin"
config = os.path.join(bench_dir, "damon.yml")
applier = os.path.join(bench_dir, "damon-fleet-apply")


def put(rel, value):
    with open(os.path.join(admin, rel), "w") as f:
        f.write(value)


def get(rel):
    with open(os.path.join(admin, rel)) as f:
        return f.read().strip()


def reset():
    for k in range(int(get("kdamonds/nr_kdamonds"))):
        if get(f"kdamonds/{k}/state") == "on":
            put(f"kdamonds/{k}/state", "off")
    put("kdamonds/nr_kdamonds", "0")


def command():
    start = time.perf_counter()
    proc = subprocess.run([applier, "--config", config, "--settle-time", "0"],
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("applier failed: " + proc.stdout + proc.stderr)
    return took, json.loads(proc.stdout)


# The applier's own private module_utils package (its LIB_DIR is bench_dir).
runpy.run_path(applier, run_name="damon_fleet_apply")["_private_namespace"](bench_dir)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import adapters as da
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import applier as dp
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import engine as de


def in_process():
    start = time.perf_counter()
    spec = dp.load_config(config).spec
    result = de.apply_spec(spec, da.RealSysfs(), admin, da.KmsgLog(), da.HostResolver(),
                           layout="auto", max_sample_rate=da.host_max_sample_rate(),
                           settle_time=0)
    return time.perf_counter() - start, result.as_dict()


out = {"cmd_first": [], "cmd_again": [], "proc_first": [], "proc_again": [], "python": []}
for _ in range(rounds):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    out["python"].append(time.perf_counter() - start)
    for kind, run in (("cmd", command), ("proc", in_process)):
        reset()
        took, first = run()
        if not first["changed"] or first["kdamonds"][0]["state"] != "on":
            sys.exit(f"{kind}: first apply did not start the kdamond: {first}")
        out[kind + "_first"].append(took)
        took, again = run()
        if again["changed"] or again["writes"]:
            sys.exit(f"{kind}: re-apply changed something: {again['writes']}")
        out[kind + "_again"].append(took)
reset()
print(json.dumps(out))
"""


def shipped_module_utils() -> list[str]:
    """The module_utils files the role installs in its lib dir (paths under it)."""
    import yaml

    data = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    return list(data["__damon_perf_module_utils"])


def render_applier(lib_dir: str) -> str:
    """The role's damon-fleet-apply template, rendered with the role's defaults."""
    import jinja2

    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    env.filters["split"] = lambda text, sep=None: str(text).split(sep)  # Ansible's filter
    template = env.from_string((ROLE_TEMPLATES / "damon-fleet-apply.j2").read_text())
    return template.render(
        damon_perf_python="/usr/bin/python3",
        damon_perf_lib_dir=lib_dir,
        ansible_managed="Installed by tests/bench/bench_apply_vm.py",
    )


def install(vm: Any, guest_dir: str = GUEST_DIR) -> int:
    """Install applier, code and a one-kdamond config in the guest; return the target pid."""
    vm.ssh(
        f"systemctl stop {WORKLOAD_UNIT} 2>/dev/null; systemctl reset-failed {WORKLOAD_UNIT} "
        f"2>/dev/null; systemd-run --quiet --unit {WORKLOAD_UNIT} /bin/sleep infinity"
    )
    pid = int(vm.ssh(f"systemctl show -p MainPID --value {WORKLOAD_UNIT}").stdout.strip())
    if pid <= 0:
        raise RuntimeError(f"{WORKLOAD_UNIT} has no MainPID")
    kdamond = dict(BENCH_KDAMOND, targets=[{"pid": pid}])
    config = {
        "damon_perf_kdamonds": [kdamond],
        "damon_perf_default_perf_events": [],
        "damon_perf_sample_freq": 5000,
        "damon_perf_no_event_policy": "accessed_bit",
        "damon_perf_layout": "auto",
        "damon_perf_settle_time": 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "damon-bench"
        local.mkdir()
        for name in shipped_module_utils():
            (local / name).parent.mkdir(exist_ok=True)
            (local / name).write_text((ROOT / "plugins" / "module_utils" / name).read_text())
        applier = local / "damon-fleet-apply"
        applier.write_text(render_applier(guest_dir))
        applier.chmod(0o755)
        (local / "damon.yml").write_text(json.dumps(config, indent=2) + "\n")
        (local / "bench.py").write_text(GUEST_BENCH)
        vm.ssh(f"rm -rf {shlex.quote(guest_dir)}")
        vm.scp_to(local, guest_dir)
    return pid


def measure(vm: Any, rounds: int = 5, guest_dir: str = GUEST_DIR) -> dict[str, list[float]]:
    """Install (see :func:`install`) and time ``rounds`` rounds in the guest (seconds)."""
    install(vm, guest_dir)
    try:
        proc = vm.ssh(
            f"python3 {shlex.quote(guest_dir)}/bench.py {shlex.quote(guest_dir)} {rounds}",
            timeout=120 + 30 * rounds,
        )
    finally:
        vm.ssh(f"systemctl stop {WORKLOAD_UNIT}; rm -rf {shlex.quote(guest_dir)}", check=False)
    times: dict[str, list[float]] = json.loads(proc.stdout)
    return times


def report(times: dict[str, list[float]]) -> list[str]:
    """Printable lines: median and max of each series, against the target."""
    labels = (
        ("cmd_first", "first apply from off, damon-fleet-apply command"),
        ("cmd_again", "re-apply (no change), damon-fleet-apply command"),
        ("proc_first", "first apply from off, in-process apply_spec"),
        ("proc_again", "re-apply (no change), in-process apply_spec"),
        ("python", "python3 start-up alone (-c pass)"),
    )
    lines = []
    for key, label in labels:
        series = times[key]
        median = statistics.median(series)
        verdict = "" if key == "python" else (" OK" if median < TARGET_S else " OVER TARGET")
        lines.append(
            f"guest {label}: median {median * 1000:.0f} ms, max {max(series) * 1000:.0f} ms "
            f"over {len(series)} runs (target < {TARGET_S:g} s, settle_time 0){verdict}"
        )
    return lines


def main() -> int:
    if os.environ.get("DAMON_FLEET_VM") != "1":
        print(
            "bench_apply_vm: skipped: needs the QEMU lab VM; run with DAMON_FLEET_VM=1 "
            "(the VM tier, tests/vm/test_damon_perf_vm.py, prints the same numbers)"
        )
        return 0
    from labvm import LabVm, build_image, build_kernel, ssh_key_path

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with LabVm(build_kernel(), build_image(), ssh_key=ssh_key_path()) as vm:
        release = vm.ssh("uname -r").stdout.strip()
        print(f"lab VM up in {vm.boot_seconds:.1f}s ({vm.accel}), Linux {release}")
        for line in report(measure(vm, rounds)):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
