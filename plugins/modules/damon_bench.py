#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: measure one arm of the DAMON A/B bench, or decide from two arms."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: damon_bench
short_description: Measure one arm of the DAMON access-check bench, or apply the overhead gate
version_added: "0.1.0"
description:
  - With O(mode=measure), watches the running kdamond O(kdamond) while the workload
    O(workload_pid) runs, and returns the arm's figures (RV(arm)), first O(seconds)
    untraced (CPU, NMIs, reports, throughput), then O(seconds) more with the functions
    traced (their latency), so that tracing does not inflate the other figures.
  - It times O(functions) with the tracefs C(function_graph) tracer (count, total, avg, min
    and max in microseconds, the figures the RFC cover letter prints with
    C(perf ftrace latency)). A function that cannot be timed is reported as
    C(not_measurable) with the reason (no tracefs, no C(function_graph) tracer, tracefs in
    use by someone else, or the name missing from C(available_filter_functions)). Tracing
    is set back to C(nop) with an empty filter afterwards, also on failure.
  - It also reads the kdamond's CPU time (C(/proc/<pid>/stat)), the NMI count
    (C(/proc/interrupts)), C(kdamonds/<K>/total_reports) where the layout has it, and the
    workload's throughput and batch latency from the access-pattern generator's stats file.
  - Fails when the workload or the kdamond exits during the arm.
  - With O(mode=decide), applies the overhead gate to the figures of arm A and arm B
    (pure, reads nothing) and returns RV(decision).
  - With O(mode=start), starts the workload (O(workload=generator)) as the transient systemd
    unit O(unit) (a leftover of that unit is stopped first), waits for its first stats,
    and returns its pid (RV(pid)); or finds the pid of a running unit or pid.
  - With O(mode=stop), stops the generator's unit and removes O(run_dir).
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: none
    details: Measuring is the point; in check mode nothing is measured and the task is skipped.
  diff_mode:
    support: none
    details: Changes nothing that a diff could show.
options:
  mode:
    description:
      - V(measure) one arm on the host, V(decide) from two arms' figures, V(start) or
        V(stop) the workload.
    type: str
    choices: [measure, decide, start, stop]
    default: measure
  workload:
    description: O(mode=start) V(generator) (started here), V(unit) or V(pid) (running).
    type: str
    choices: [generator, unit, pid]
    default: generator
  unit:
    description: The generator's transient unit, or the user's unit (O(workload=unit)).
    type: str
    default: damon-bench-workload.service
  generator_source:
    description: O(mode=start) the generator's source, written to O(run_dir) and run there.
    type: str
  generator_args:
    description: O(mode=start) the generator's arguments (an argv list, no shell).
    type: list
    elements: str
    default: []
  python:
    description: The interpreter that runs the generator.
    type: path
    default: /usr/bin/python3
  run_dir:
    description: Where the generator and its stats file go (created by O(mode=start),
      removed by O(mode=stop)).
    type: path
    default: /run/damon-bench
  start_timeout:
    description: Seconds to wait for the generator's first stats.
    type: float
    default: 120
  arm:
    description: Which arm is measured, V(A) (accessed bits) or V(B) (perf events).
    type: str
    choices: [A, B]
  seconds:
    description: How long each window of the arm lasts, from 0.5 to 3600 seconds.
    type: float
    default: 5.0
  kdamond:
    description: Index of the kdamond under C(kdamonds/).
    type: int
    default: 0
  aggr_us:
    description:
      - The kdamond's aggregation interval (for CPU per interval), in microseconds or as a
        duration like C(100ms) or C(60s).
    type: raw
    default: 100000
  warmup_seconds:
    description: Seconds to wait before measuring (the regions settle), from 0 to 600.
    type: float
    default: 0
  functions:
    description:
      - Kernel functions to time (at most 8). Left out, the cover letter's for O(operations)
        and O(arm) - vaddr/fvaddr A C(damon_va_prepare_access_checks),
        C(damon_va_check_accesses); paddr A C(damon_pa_prepare_access_checks),
        C(damon_pa_check_accesses); B C(kdamond_prepare_perf_event_report),
        C(kdamond_check_perf_event_reported_accesses).
    type: list
    elements: str
  operations:
    description: The kdamond's operations set (picks the default O(functions)).
    type: str
    choices: [vaddr, fvaddr, paddr]
    default: vaddr
  workload_pid:
    description: The workload's pid; the arm fails when it exits (O(mode=start) with
      O(workload=pid) checks that it runs).
    type: int
  workload_stats:
    description: The generator's stats file (JSON), or none for a workload that reports none.
    type: path
  root:
    description: The DAMON admin directory.
    type: path
    default: /sys/kernel/mm/damon/admin
  tracefs:
    description: Where tracefs is mounted.
    type: path
    default: /sys/kernel/tracing
  stand_in_kernels:
    description: Kernel releases built from a stand-in series; RV(arm) says C(stand_in).
    type: list
    elements: str
    default: []
  arm_a:
    description: O(mode=decide) the figures of arm A (RV(arm) of its measurement).
    type: dict
  arm_b:
    description: O(mode=decide) the figures of arm B, or C({not_measurable{{":"}} reason}).
    type: dict
  gate:
    description:
      - O(mode=decide) the thresholds, C(max_kdamond_cpu_percent),
        C(max_throughput_drop_percent) and C(min_samples_per_second).
    type: dict
notes:
  - Needs root (DAMON sysfs and tracefs).
"""

EXAMPLES = r"""
- name: Measure arm A for 5 s, timing the accessed-bit functions
  damon_bench:
    arm: A
    seconds: 5
    functions: [damon_va_prepare_access_checks, damon_va_check_accesses]
    workload_pid: "{{ workload_pid }}"
    workload_stats: /run/damon-bench/stats.json
  register: arm_a

- name: Decide
  damon_bench:
    mode: decide
    arm_a: "{{ arm_a.arm }}"
    arm_b: "{{ arm_b.arm }}"
    gate: {max_kdamond_cpu_percent: 10, max_throughput_drop_percent: 5,
           min_samples_per_second: 100}
"""

RETURN = r"""
arm:
  description: The arm's figures (see roles/damon_bench/README.md, bench.json).
  returned: mode measure
  type: dict
  sample: {"arm": "A", "seconds": 5.0, "kdamond_cpu_percent": 2.1, "nmi_delta": 0,
           "reports": 0, "reports_per_second": 0.0,
           "functions": {"damon_va_check_accesses": {"count": 50, "avg_us": 310.2}}}
letter:
  description: The function statistics printed as the RFC cover letter prints them.
  returned: mode measure
  type: str
decision:
  description: The gate's decision, V(perf-events) or V(accessed-bits), its reason and checks.
  returned: mode decide
  type: dict
pid:
  description: The workload's pid.
  returned: mode start
  type: int
"""

import contextlib
import json
import os
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.bench import (
    ACCESS_CHECK,
    LETTER_FUNCTIONS,
    BenchInputError,
    BenchParseError,
    Gate,
    check_functions,
    cpu_figures,
    decide,
    format_latency,
    parse_function_graph,
    parse_nmi_count,
    parse_proc_stat,
    parse_workload_stats,
    workload_figures,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    SpecError,
    parse_duration_us,
)

POLL = 0.1
TRACE_HEAD_LINES = 40


class ArmFailed(RuntimeError):
    """The arm could not be measured (the workload or the kdamond went away)."""


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


class Tracing:
    """function_graph on the given functions at the tracefs top level; restored on exit."""

    def __init__(self, tracefs: str, functions: list[str]) -> None:
        self.tracefs = tracefs
        self.functions = functions
        self.reasons: dict[str, str] = {}
        self.active: list[str] = []
        self.tracing_on: str | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.tracefs, name)

    def start(self) -> None:
        if not self.functions:
            return
        reason = self._unusable()
        if reason:
            self.reasons = {f: reason for f in self.functions}
            return
        available = set()
        for line in _read(self.path("available_filter_functions")).splitlines():
            if line.strip():
                available.add(line.split()[0])
        for name in self.functions:
            if name in available:
                self.active.append(name)
            else:
                self.reasons[name] = (
                    "not in available_filter_functions (this kernel has no such function, "
                    "or it is inlined or not traceable)"
                )
        if not self.active:
            return
        self.tracing_on = _read(self.path("tracing_on")).strip()
        _write(self.path("tracing_on"), "0")
        _write(self.path("set_ftrace_filter"), " ".join(self.active) + "\n")
        _write(self.path("current_tracer"), "function_graph")
        _write(self.path("trace"), "")
        _write(self.path("tracing_on"), "1")

    def _unusable(self) -> str | None:
        if not os.path.isfile(self.path("available_filter_functions")):
            return (
                f"no function tracing at {self.tracefs} (tracefs not mounted, or a kernel "
                "without CONFIG_FUNCTION_TRACER)"
            )
        if "function_graph" not in _read(self.path("available_tracers")).split():
            return "no function_graph tracer (a kernel without CONFIG_FUNCTION_GRAPH_TRACER)"
        current = _read(self.path("current_tracer")).strip()
        if current != "nop":
            return f"tracefs is in use (current_tracer is {current}); left alone"
        return None

    def stop(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """(statistics per function, the first lines of the trace as evidence)."""
        out: dict[str, dict[str, Any]] = {f: {"not_measurable": r} for f, r in self.reasons.items()}
        head: list[str] = []
        if self.active:
            _write(self.path("tracing_on"), "0")
            text = _read(self.path("trace"))
            out.update(parse_function_graph(text, self.active))
            head = text.splitlines()[:TRACE_HEAD_LINES]
        return {f: out[f] for f in self.functions}, head

    def restore(self) -> None:
        """Tracing as found: nop, no filter, an empty buffer, tracing_on as it was."""
        if not self.active:
            return
        for name, value in (("tracing_on", "0"), ("current_tracer", "nop")):
            with contextlib.suppress(OSError):
                _write(self.path(name), value)
        for name in ("set_ftrace_filter", "trace"):
            with contextlib.suppress(OSError):
                # An open for writing with O_TRUNC empties the filter and the buffer.
                os.close(os.open(self.path(name), os.O_WRONLY | os.O_TRUNC))
        if self.tracing_on is not None:
            with contextlib.suppress(OSError):
                _write(self.path("tracing_on"), self.tracing_on)
        self.active = []


def _alive(pid: int) -> bool:
    try:
        state = parse_proc_stat(_read(f"/proc/{pid}/stat"))["state"]
    except (OSError, BenchParseError):
        return False
    return state not in ("Z", "X")


def _counter(path: str) -> int | None:
    try:
        return int(_read(path).strip())
    except (OSError, ValueError):
        return None


def _stats(path: str | None) -> dict[str, float] | None:
    if not path:
        return None
    try:
        stats: dict[str, float] = parse_workload_stats(json.loads(_read(path)))
    except (OSError, ValueError) as exc:
        raise ArmFailed(f"cannot read the workload stats {path}: {exc}") from exc
    return stats


def measure(params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    arm = params["arm"]
    kdir = os.path.join(params["root"], "kdamonds", str(params["kdamond"]))
    # The workload first: a vaddr kdamond stops by itself once its target is gone.
    wpid = params["workload_pid"]
    if wpid is None or not _alive(wpid):
        raise ArmFailed(f"the workload (pid {wpid}) is not running at the start of arm {arm}")
    pid_text = _read(os.path.join(kdir, "pid")).strip()
    if not pid_text.lstrip("-").isdigit() or int(pid_text) <= 0:
        raise ArmFailed(f"kdamond {params['kdamond']} is not running (pid {pid_text})")
    kpid = int(pid_text)
    warmup_end = time.monotonic() + params["warmup_seconds"]
    while time.monotonic() < warmup_end:
        time.sleep(POLL)
        if not _alive(wpid):
            raise ArmFailed(f"the workload (pid {wpid}) exited before arm {arm} was measured")

    def watch(seconds: float, what: str) -> float:
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            time.sleep(POLL)
            if not _alive(wpid):
                raise ArmFailed(
                    f"the workload (pid {wpid}) exited during arm {arm} ({what}) after "
                    f"{time.monotonic() - started:.1f} s"
                )
            if not _alive(kpid):
                raise ArmFailed(f"the kdamond (pid {kpid}) exited during arm {arm} ({what})")
        return time.monotonic() - started

    # Window 1, untraced: CPU, NMIs, reports and throughput are not inflated by tracing.
    stats_before = _stats(params["workload_stats"])
    cpu_before = parse_proc_stat(_read(f"/proc/{kpid}/stat"))
    nmi_before = parse_nmi_count(_read("/proc/interrupts"))
    reports_before = _counter(os.path.join(kdir, "total_reports"))
    seconds = watch(params["seconds"], "figures")
    cpu_after = parse_proc_stat(_read(f"/proc/{kpid}/stat"))
    nmi_after = parse_nmi_count(_read("/proc/interrupts"))
    reports_after = _counter(os.path.join(kdir, "total_reports"))
    stats_after = _stats(params["workload_stats"])
    # Window 2, as long: the functions' latency with function_graph.
    tracing = Tracing(params["tracefs"], params["functions"])
    trace_head: list[str] = []
    try:
        tracing.start()
        if tracing.active:
            watch(params["seconds"], "function latency")
        functions, trace_head = tracing.stop()
    finally:
        tracing.restore()
    figures: dict[str, Any] = {
        "arm": arm,
        "access_check": ACCESS_CHECK[arm],
        "seconds": round(seconds, 3),
        "kdamond_pid": kpid,
        "kernel": os.uname().release,
        "stand_in": os.uname().release in params["stand_in_kernels"],
        **cpu_figures(cpu_before, cpu_after, os.sysconf("SC_CLK_TCK"), seconds, params["aggr_us"]),
        "nmi_delta": nmi_after - nmi_before,
        "functions": functions,
    }
    if reports_before is None or reports_after is None:
        figures["reports"] = None
        figures["reports_per_second"] = None
    else:
        figures["reports"] = reports_after - reports_before
        figures["reports_per_second"] = round(figures["reports"] / seconds, 1)
    if stats_before is not None and stats_after is not None:
        figures["workload"] = workload_figures(stats_before, stats_after)
    else:
        figures["workload"] = {"not_reported": "the workload has no stats file the bench reads"}
    figures["trace_head"] = trace_head
    letter = "\n".join(format_latency(name, stats) for name, stats in functions.items())
    return figures, letter


SCRIPT = "damon-bench-workload.py"
STATS = "stats.json"


def _main_pid(module: AnsibleModule, unit: str) -> int:
    rc, out, _err = module.run_command(
        ["systemctl", "show", "--property=MainPID", "--value", "--", unit]
    )
    text = out.strip()
    return int(text) if rc == 0 and text.isdigit() else 0


def start(module: AnsibleModule, params: dict[str, Any]) -> tuple[int, bool]:
    """(the workload's pid, whether it was started here)."""
    kind, unit = params["workload"], params["unit"]
    if kind == "pid":
        pid = params["workload_pid"] or 0
        if pid <= 0 or not _alive(pid):
            raise ArmFailed(f"damon_bench_workload_pid: no running process {pid}")
        return pid, False
    if kind == "unit":
        pid = _main_pid(module, unit)
        if pid <= 0 or not _alive(pid):
            raise ArmFailed(f"damon_bench_workload_unit: {unit} has no running main process")
        return pid, False
    if not params["generator_source"]:
        raise BenchInputError("generator_source: the generator's source is required")
    module.run_command(["systemctl", "stop", "--", unit])
    module.run_command(["systemctl", "reset-failed", "--", unit])
    run_dir = params["run_dir"]
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    script, stats = os.path.join(run_dir, SCRIPT), os.path.join(run_dir, STATS)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(stats)
    _write(script, params["generator_source"])
    argv = ["systemd-run", f"--unit={unit}", "--collect", "--quiet", "--"]
    argv += [params["python"], script, *params["generator_args"], "--stats", stats]
    rc, out, err = module.run_command(argv)
    if rc != 0:
        raise ArmFailed(f"systemd-run failed ({rc}): {' '.join((err or out).split())[:300]}")
    deadline = time.monotonic() + params["start_timeout"]
    while time.monotonic() < deadline:
        pid = _main_pid(module, unit)
        if os.path.exists(stats) and pid > 0:
            return pid, True
        time.sleep(POLL)
    rc, out, err = module.run_command(["journalctl", "-u", unit, "-n", "5", "--no-pager"])
    raise ArmFailed(
        f"the generator wrote no stats in {params['start_timeout']:g} s: "
        + " ".join(out.split())[-300:]
    )


def stop(module: AnsibleModule, params: dict[str, Any]) -> bool:
    """Stop the generator's unit and remove its run directory; whether anything was."""
    changed = False
    if _main_pid(module, params["unit"]) > 0:
        module.run_command(["systemctl", "stop", "--", params["unit"]])
        changed = True
    run_dir = params["run_dir"]
    for name in (SCRIPT, STATS):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(run_dir, name))
            changed = True
    with contextlib.suppress(FileNotFoundError, OSError):
        os.rmdir(run_dir)
        changed = True
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "mode": {
                "type": "str",
                "choices": ["measure", "decide", "start", "stop"],
                "default": "measure",
            },
            "workload": {
                "type": "str",
                "choices": ["generator", "unit", "pid"],
                "default": "generator",
            },
            "unit": {"type": "str", "default": "damon-bench-workload.service"},
            "generator_source": {"type": "str"},
            "generator_args": {"type": "list", "elements": "str", "default": []},
            "python": {"type": "path", "default": "/usr/bin/python3"},
            "run_dir": {"type": "path", "default": "/run/damon-bench"},
            "start_timeout": {"type": "float", "default": 120.0},
            "arm": {"type": "str", "choices": ["A", "B"]},
            "seconds": {"type": "float", "default": 5.0},
            "kdamond": {"type": "int", "default": 0},
            "aggr_us": {"type": "raw", "default": 100000},
            "warmup_seconds": {"type": "float", "default": 0.0},
            "functions": {"type": "list", "elements": "str"},
            "operations": {
                "type": "str",
                "choices": ["vaddr", "fvaddr", "paddr"],
                "default": "vaddr",
            },
            "workload_pid": {"type": "int"},
            "workload_stats": {"type": "path"},
            "root": {"type": "path", "default": "/sys/kernel/mm/damon/admin"},
            "tracefs": {"type": "path", "default": "/sys/kernel/tracing"},
            "stand_in_kernels": {"type": "list", "elements": "str", "default": []},
            "arm_a": {"type": "dict"},
            "arm_b": {"type": "dict"},
            "gate": {"type": "dict"},
        },
        required_if=[("mode", "measure", ("arm", "workload_pid")), ("mode", "decide", ("gate",))],
        supports_check_mode=False,
    )
    params = module.params
    try:
        if params["mode"] == "decide":
            gate = Gate.from_mapping(params["gate"])
            module.exit_json(changed=False, decision=decide(params["arm_a"], params["arm_b"], gate))
        if params["mode"] == "start":
            pid, started = start(module, params)
            module.exit_json(changed=started, pid=pid)
        if params["mode"] == "stop":
            module.exit_json(changed=stop(module, params))
        if params["functions"] is None:
            params["functions"] = list(LETTER_FUNCTIONS[params["operations"]][params["arm"]])
        check_functions(params["functions"], "functions")
        if not 0.5 <= params["seconds"] <= 3600:
            raise BenchInputError(f"seconds: got {params['seconds']}; expected 0.5 to 3600")
        if not 0 <= params["warmup_seconds"] <= 600:
            raise BenchInputError(
                f"warmup_seconds: got {params['warmup_seconds']}; expected 0 to 600"
            )
        params["aggr_us"] = parse_duration_us(params["aggr_us"], "aggr_us")
        figures, letter = measure(params)
    except (BenchInputError, ArmFailed, BenchParseError, SpecError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or 'I/O'}: {exc.strerror or exc}")
    module.exit_json(changed=False, arm=figures, letter=letter)


if __name__ == "__main__":
    main()
