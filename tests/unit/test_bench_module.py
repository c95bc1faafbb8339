"""The damon_bench module: tracing set up and put back on a tracefs-shaped folder, the gate
through main(), and inputs refused with the input named (nothing measured)."""

from __future__ import annotations

import re
from pathlib import Path

import damon_bench
import pytest
from module_harness import run_module

FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "ftrace-latency"
    / "lab-function-graph-paddr-base-kernel.txt"
)
FUNCTIONS = ["damon_pa_prepare_access_checks", "damon_pa_check_accesses"]


def tracefs(tmp_path: Path, current: str = "nop") -> Path:
    """The files of /sys/kernel/tracing the module reads and writes."""
    root = tmp_path / "tracing"
    root.mkdir()
    (root / "available_filter_functions").write_text(
        "damon_pa_check_accesses\ndamon_pa_prepare_access_checks\nkdamond_fn\n"
    )
    (root / "available_tracers").write_text("function_graph function nop\n")
    (root / "current_tracer").write_text(current + "\n")
    (root / "tracing_on").write_text("1\n")
    (root / "set_ftrace_filter").write_text("#### all functions enabled ####\n")
    (root / "trace").write_text("stale\n")
    return root


def lab_trace() -> str:
    return "".join(
        line + "\n"
        for line in FIXTURE.read_text().splitlines()
        if not re.match(r"^# [A-Z][A-Z-]*: ", line)
    )


def test_tracing_times_the_functions_and_puts_tracefs_back(tmp_path: Path) -> None:
    root = tracefs(tmp_path)
    tracing = damon_bench.Tracing(str(root), [*FUNCTIONS, "kdamond_prepare_perf_event_report"])
    tracing.start()
    assert (root / "current_tracer").read_text() == "function_graph"
    assert (root / "set_ftrace_filter").read_text() == " ".join(FUNCTIONS) + "\n"
    assert (root / "trace").read_text() == ""  # cleared before the window
    assert (root / "tracing_on").read_text() == "1"
    (root / "trace").write_text(lab_trace())  # what the kernel records meanwhile
    functions, head = tracing.stop()
    tracing.restore()
    calls = re.findall(r"([0-9.]+) us +\| +damon_pa_check_accesses\(\);", lab_trace())
    assert functions["damon_pa_check_accesses"]["count"] == len(calls) > 0
    assert functions["kdamond_prepare_perf_event_report"] == {
        "not_measurable": "not in available_filter_functions (this kernel has no such "
        "function, or it is inlined or not traceable)"
    }
    assert head[0] == "# tracer: function_graph"
    assert (root / "current_tracer").read_text() == "nop"
    assert (root / "set_ftrace_filter").read_text() == ""
    assert (root / "trace").read_text() == ""
    assert (root / "tracing_on").read_text() == "1"


def test_tracefs_in_use_is_left_alone(tmp_path: Path) -> None:
    root = tracefs(tmp_path, current="function")
    tracing = damon_bench.Tracing(str(root), FUNCTIONS)
    tracing.start()
    functions, head = tracing.stop()
    tracing.restore()
    reason = "tracefs is in use (current_tracer is function); left alone"
    assert functions == {name: {"not_measurable": reason} for name in FUNCTIONS}
    assert head == []
    assert (root / "current_tracer").read_text() == "function\n"
    assert (root / "trace").read_text() == "stale\n"


def test_no_tracefs_is_not_measurable(tmp_path: Path) -> None:
    tracing = damon_bench.Tracing(str(tmp_path / "absent"), FUNCTIONS[:1])
    tracing.start()
    functions, _ = tracing.stop()
    assert functions[FUNCTIONS[0]]["not_measurable"] == (
        f"no function tracing at {tmp_path / 'absent'} (tracefs not mounted, or a kernel "
        "without CONFIG_FUNCTION_TRACER)"
    )


def test_decide_through_main() -> None:
    gate = {
        "max_kdamond_cpu_percent": 10,
        "max_throughput_drop_percent": 5,
        "min_samples_per_second": 100,
    }
    done = run_module(
        damon_bench.main,
        {
            "mode": "decide",
            "gate": gate,
            "arm_a": {"workload": {"ops_per_second": 100.0}},
            "arm_b": {
                "kdamond_cpu_percent": 1.0,
                "reports_per_second": 196.4,
                "workload": {"ops_per_second": 99.0},
            },
        },
    )
    assert not done.failed
    assert done.result["decision"]["decision"] == "perf-events"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"mode": "decide", "gate": {"max_kdamond_cpu_percent": 1}},
            "damon_bench_gate_max_throughput_drop_percent: got None; expected a number >= 0",
        ),
        (
            {"arm": "A", "workload_pid": 1, "seconds": 0.1},
            "seconds: got 0.1; expected 0.5 to 3600",
        ),
        (
            {"arm": "A", "workload_pid": 1, "functions": ["a;b"]},
            "functions: 'a;b' is not a function name; expected a list of at most 8 kernel "
            "function names ([A-Za-z_][A-Za-z0-9_]*, optionally with .suffix parts such as "
            ".isra.0)",
        ),
        (
            {"arm": "B", "workload_pid": 1, "aggr_us": "5 parsecs"},
            "aggr_us: ",
        ),
        (
            {"mode": "start", "workload": "pid", "workload_pid": 0},
            "damon_bench_workload_pid: no running process 0",
        ),
    ],
)
def test_bad_inputs_fail_naming_the_input(args: dict[str, object], message: str) -> None:
    done = run_module(damon_bench.main, args)
    assert done.failed
    assert done.result["msg"].startswith(message), done.result["msg"]
