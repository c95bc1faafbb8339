"""The bench's parsing and gate (plugins/module_utils/damon/bench.py) over real output:
the RFC v3 cover letter's `perf ftrace latency` blocks, /proc files of the build machine,
and tracefs function_graph output captured on the lab (tests/fixtures/ftrace-latency)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.bench import (
    DECISION_ACCESSED,
    DECISION_PERF,
    BenchInputError,
    BenchParseError,
    Gate,
    bench_problem,
    check_functions,
    cpu_figures,
    decide,
    format_latency,
    parse_ftrace_latency,
    parse_function_graph,
    parse_function_profile,
    parse_nmi_count,
    parse_proc_stat,
    parse_workload_stats,
    ratio,
    workload_figures,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LATENCY = FIXTURES / "ftrace-latency"
PROC = FIXTURES / "bench-proc"

# The cover letter's figures (usec), as its text states them.
LETTER = {
    "damon_va_prepare_access_checks": (4, 28624961, 7156240, 7322209, 6859464),
    "damon_va_check_accesses": (3, 16007973, 5335991, 5369579, 5300285),
    "kdamond_prepare_perf_event_report": (7, 75641, 10806, 11174, 9945),
    "kdamond_check_perf_event_reported_accesses": (7, 18101248, 2585893, 2834578, 2504466),
}


def body(path: Path) -> str:
    """A fixture without its header lines (# SOURCE, # COMMAND, # COMPLETENESS, ...)."""
    lines = path.read_text().splitlines()
    header = re.compile(r"^# [A-Z][A-Z-]*: ")
    return "\n".join(line for line in lines if not header.match(line)) + "\n"


GATE = Gate(max_kdamond_cpu_percent=10, max_throughput_drop_percent=5, min_samples_per_second=50)


@pytest.mark.parametrize("function", sorted(LETTER))
def test_the_letters_blocks_parse_to_its_figures(function: str) -> None:
    stats = parse_ftrace_latency(body(LATENCY / f"rfc-v3-cover-letter-{function}.txt"))
    count, total, avg, mx, mn = LETTER[function]
    assert (stats["count"], stats["total_us"], stats["avg_us"]) == (count, total, avg)
    assert (stats["max_us"], stats["min_us"]) == (mx, mn)
    assert sum(n for _, n in stats["histogram"]) == count


def test_the_letters_histogram_buckets_are_kept() -> None:
    prepare = parse_ftrace_latency(
        body(LATENCY / "rfc-v3-cover-letter-kdamond_prepare_perf_event_report.txt")
    )
    assert prepare["histogram"] == [["4 - 8 ms", 7]]
    check = parse_ftrace_latency(body(LATENCY / "rfc-v3-cover-letter-damon_va_check_accesses.txt"))
    assert check["histogram"] == [["1 - ... s", 3]]


@pytest.mark.parametrize("function", sorted(LETTER))
def test_statistics_are_printed_as_the_letter_prints_them(function: str) -> None:
    text = body(LATENCY / f"rfc-v3-cover-letter-{function}.txt")
    stats = parse_ftrace_latency(text)
    printed = format_latency(function, stats).splitlines()
    assert printed[0] == f"# {function}"
    letter_lines = [" ".join(x.split()) for x in text.splitlines()]
    start = letter_lines.index("# statistics (in usec)")
    assert [" ".join(x.split()) for x in printed[1:]] == letter_lines[start : start + 6]


def test_padded_output_parses_like_the_archived_one() -> None:
    # The mail archive dropped perf's column padding; perf itself pads. Both parse alike.
    text = body(LATENCY / "rfc-v3-cover-letter-damon_va_check_accesses.txt")
    padded = "\n".join(
        "   " + line.replace(" | ", "   |   ") if "|" in line else "  " + line
        for line in text.splitlines()
    )
    assert parse_ftrace_latency(padded) == parse_ftrace_latency(text)


def test_latency_output_without_statistics_is_refused() -> None:
    text = body(LATENCY / "rfc-v3-cover-letter-damon_va_check_accesses.txt")
    head = text.split("# statistics")[0]
    with pytest.raises(
        BenchParseError, match=r"^perf ftrace latency output: no '# statistics' block$"
    ):
        parse_ftrace_latency(head)
    cut = "\n".join(line for line in text.splitlines() if not line.startswith("min time"))
    with pytest.raises(
        BenchParseError, match=r"^perf ftrace latency output: statistics without min time$"
    ):
        parse_ftrace_latency(cut)


def test_a_histogram_that_disagrees_with_the_count_is_refused() -> None:
    text = body(LATENCY / "rfc-v3-cover-letter-damon_va_check_accesses.txt")
    with pytest.raises(BenchParseError, match=r"histogram counts 4 calls, statistics count 3"):
        parse_ftrace_latency(text.replace("| 3 |", "| 4 |"))


def test_not_measurable_and_not_called_are_printed_as_such() -> None:
    assert (
        format_latency("f", {"not_measurable": "no tracefs"}) == "# f: not measurable: no tracefs"
    )
    assert format_latency("f", {"count": 0}) == "# f: not called during the arm"


# --- function_graph and the function profiler ---------------------------------------------


def graph_fixtures() -> list[Path]:
    return sorted(LATENCY.glob("lab-function-graph-*.txt"))


@pytest.mark.parametrize("path", graph_fixtures(), ids=lambda p: p.name)
def test_lab_function_graph_output_gives_every_call(path: Path) -> None:
    text = body(path)
    names = re.findall(r"^# FUNCTIONS: (.*)$", path.read_text(), re.M)[0].split()
    stats = parse_function_graph(text, names)
    for name in names:
        calls = [
            float(m.group(1))
            for m in re.finditer(
                rf"([0-9]+\.[0-9]+) us +\| +(?:{name}\(\);|\}} /\* {name} \*/)", text
            )
        ]
        assert stats[name]["count"] == len(calls)
        if calls:
            assert stats[name]["min_us"] == min(calls)
            assert stats[name]["max_us"] == max(calls)
            assert stats[name]["total_us"] == round(sum(calls), 3)


def test_function_graph_markers_and_closing_lines() -> None:
    # Duration markers (+ ! # * @ $) precede long calls; a call with traced children ends
    # with a closing line naming the function (funcgraph-tail).
    text = (
        " 0) ! 7156.240 us |  damon_va_prepare_access_checks();\n"
        " 1)   2.500 us    |  damon_va_check_accesses();\n"
        " 1) $ 1200000.5 us |  } /* damon_va_check_accesses */\n"
        " ------------------------------------------\n"
        " 0)   <idle>-0    =>  kdamond-120\n"
    )
    stats = parse_function_graph(
        text, ["damon_va_prepare_access_checks", "damon_va_check_accesses"]
    )
    assert stats["damon_va_prepare_access_checks"]["count"] == 1
    assert stats["damon_va_check_accesses"] == {
        "count": 2,
        "total_us": 1200003.0,
        "avg_us": 600001.5,
        "min_us": 2.5,
        "max_us": 1200000.5,
    }


def test_a_function_never_called_counts_zero() -> None:
    assert parse_function_graph("", ["f"]) == {
        "f": {"count": 0, "total_us": 0.0, "avg_us": None, "min_us": None, "max_us": None}
    }


def test_the_function_profiler_is_summed_over_cpus() -> None:
    cpu0 = (
        "  Function                               Hit    Time            Avg             s^2\n"
        "  --------                               ---    ----            ---             ---\n"
        "  damon_va_check_accesses                 10    100.000 us     10.000 us       1.000 us\n"
    )
    cpu1 = cpu0.replace(" 10    100.000", " 30    500.000")
    assert parse_function_profile([cpu0, cpu1]) == {
        "damon_va_check_accesses": {"count": 40, "total_us": 600.0, "avg_us": 15.0}
    }


# --- /proc ------------------------------------------------------------------------------


def test_proc_stat_of_a_kernel_thread() -> None:
    stat = parse_proc_stat(body(PROC / "build-machine-kthreadd-stat.txt"))
    assert stat["pid"] == 2 and stat["comm"] == "kthreadd" and stat["state"] == "S"
    assert isinstance(stat["utime_ticks"], int) and isinstance(stat["stime_ticks"], int)


def test_proc_stat_with_spaces_and_parentheses_in_comm() -> None:
    real = body(PROC / "build-machine-kthreadd-stat.txt").strip()
    odd = real.replace("(kthreadd)", "(kd (x) y)", 1)
    stat = parse_proc_stat(odd)
    assert stat["comm"] == "kd (x) y"
    assert (stat["utime_ticks"], stat["stime_ticks"]) == (
        parse_proc_stat(real)["utime_ticks"],
        parse_proc_stat(real)["stime_ticks"],
    )


def test_proc_stat_that_is_not_one_is_refused() -> None:
    with pytest.raises(BenchParseError, match=r"^/proc/<pid>/stat: unexpected text 'hello'$"):
        parse_proc_stat("hello")


def test_nmi_count_sums_every_cpu() -> None:
    text = body(PROC / "build-machine-interrupts.txt")
    row = next(line for line in text.splitlines() if line.startswith("NMI:"))
    cpus = len(text.splitlines()[0].split())
    expected = sum(int(x) for x in row.split()[1 : 1 + cpus])
    assert parse_nmi_count(text) == expected
    bumped = text.replace(row, "NMI:" + "".join(f" {n:10d}" for n in range(5, 5 + cpus)) + " x")
    assert parse_nmi_count(bumped) == sum(range(5, 5 + cpus))


def test_interrupts_without_an_nmi_row_is_refused() -> None:
    text = "\n".join(
        line
        for line in body(PROC / "build-machine-interrupts.txt").splitlines()
        if not line.startswith("NMI:")
    )
    with pytest.raises(BenchParseError, match=r"^/proc/interrupts: no NMI row$"):
        parse_nmi_count(text)


def test_cpu_figures_per_aggregation_interval() -> None:
    before = {"utime_ticks": 0, "stime_ticks": 100}
    after = {"utime_ticks": 0, "stime_ticks": 150}  # 0.5 s of CPU at 100 ticks/s
    assert cpu_figures(before, after, 100, 5.0, 100_000) == {
        "kdamond_cpu_seconds": 0.5,
        "kdamond_cpu_percent": 10.0,
        "kdamond_cpu_ms_per_aggr": 10.0,  # 50 intervals of 100 ms
    }


def test_workload_figures_between_two_reads() -> None:
    before = parse_workload_stats({"ops": 1000, "batches": 10, "latency_us_sum": 500, "time": 1.0})
    after = parse_workload_stats({"ops": 5000, "batches": 30, "latency_us_sum": 2500, "time": 3.0})
    assert workload_figures(before, after) == {
        "ops_per_second": 2000.0,
        "batch_latency_us_avg": 100.0,
    }


def test_workload_stats_with_a_bad_field_are_refused() -> None:
    with pytest.raises(
        BenchParseError, match=r"^workload stats: ops is 'x', expected a number >= 0$"
    ):
        parse_workload_stats({"ops": "x", "batches": 1, "latency_us_sum": 1, "time": 1})


# --- inputs -----------------------------------------------------------------------------


def test_function_names() -> None:
    assert check_functions(["damon_va_check_accesses", "f.isra.0"], "x") == [
        "damon_va_check_accesses",
        "f.isra.0",
    ]
    with pytest.raises(BenchInputError, match=r"^damon_bench_functions_a: 'a b' is not a function"):
        check_functions(["a b"], "damon_bench_functions_a")
    with pytest.raises(BenchInputError, match=r"^x: got .*; expected a list of at most 8"):
        check_functions(["f"] * 9, "x")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_kdamond_cpu_percent", -1, "damon_bench_gate_max_kdamond_cpu_percent: got -1; "),
        ("max_throughput_drop_percent", 101, "percentage 0..100"),
        ("min_samples_per_second", "x", "damon_bench_gate_min_samples_per_second: got 'x'"),
        ("min_samples_per_second", True, "got True"),
    ],
)
def test_bad_gate_thresholds_name_the_input(key: str, value: Any, message: str) -> None:
    data: dict[str, Any] = {**GATE.as_dict(), key: value}
    with pytest.raises(BenchInputError, match=re.escape(message)):
        Gate.from_mapping(data)


# --- the gate ---------------------------------------------------------------------------


def arm(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kdamond_cpu_percent": 2.0,
        "reports_per_second": 90.0,
        "workload": {"ops_per_second": 1000.0},
    }
    base.update(kw)
    return base


def test_b_within_every_threshold_decides_perf_events() -> None:
    result = decide(arm(reports_per_second=0.0), arm(), GATE)
    assert result["decision"] == DECISION_PERF
    assert [c["passed"] for c in result["checks"]] == [True, True, True]
    assert (
        result["reason"]
        == "kdamond CPU 2% (max 10%); throughput drop 0% (max 5%); 90 samples/s (min 50)"
    )


@pytest.mark.parametrize(
    ("b", "failed"),
    [
        (arm(kdamond_cpu_percent=10.5), "kdamond CPU 10.5% (max 10%)"),
        (arm(workload={"ops_per_second": 940.0}), "throughput drop 6% (max 5%)"),
        (arm(reports_per_second=49.9), "49.9 samples/s (min 50)"),
        (arm(reports_per_second=None), "samples per second not measured (no total_reports)"),
        (arm(kdamond_cpu_percent=None), "kdamond CPU not measured"),
    ],
)
def test_one_failed_check_decides_accessed_bits(b: dict[str, Any], failed: str) -> None:
    result = decide(arm(), b, GATE)
    assert result["decision"] == DECISION_ACCESSED
    assert result["reason"] == failed


def test_the_limits_themselves_pass() -> None:
    b = arm(kdamond_cpu_percent=10.0, workload={"ops_per_second": 950.0}, reports_per_second=50)
    assert decide(arm(), b, GATE)["decision"] == DECISION_PERF


def test_a_workload_without_throughput_cannot_show_a_drop() -> None:
    b = arm(workload={"not_reported": "no stats"})
    result = decide(arm(workload={"not_reported": "no stats"}), b, GATE)
    assert result["decision"] == DECISION_PERF
    assert result["checks"][1]["value"] is None
    assert "throughput not reported" in result["checks"][1]["text"]


def test_arm_b_not_measurable_decides_accessed_bits() -> None:
    result = decide(arm(), {"not_measurable": "no perf event for this host"}, GATE)
    assert result == {
        "decision": DECISION_ACCESSED,
        "reason": "arm B not measurable: no perf event for this host",
        "checks": [],
        "gate": GATE.as_dict(),
    }


def test_ratio() -> None:
    assert ratio(7156240, 10806) == 0.0015
    assert ratio(0, 5) is None and ratio(None, 5) is None and ratio(5, "x") is None


# --- bench.json -------------------------------------------------------------------------


def measured(**kw: Any) -> dict[str, Any]:
    base = {
        "arm": "A",
        "seconds": 3.0,
        "kdamond_cpu_percent": 1.0,
        "kdamond_cpu_seconds": 0.03,
        "kdamond_cpu_ms_per_aggr": 1.0,
        "nmi_delta": 0,
        "reports": 0,
        "reports_per_second": 0.0,
        "functions": {"damon_va_check_accesses": {"count": 3, "avg_us": 5.0}},
        "workload": {"ops_per_second": 10.0},
    }
    base.update(kw)
    return base


def doc(**host: Any) -> dict[str, Any]:
    entry = {
        "host": "h1",
        "lab": True,
        "stand_in": True,
        "arms": {"A": measured(), "B": measured(arm="B")},
        "decision": {"decision": "accessed-bits"},
    }
    entry.update(host)
    return {"format": 1, "hosts": [entry]}


def test_a_complete_bench_document_has_no_problem() -> None:
    assert bench_problem(doc()) is None
    assert bench_problem(doc(arms={"A": measured(), "B": {"not_measurable": "why"}})) is None
    assert bench_problem(doc(error="bench failed", arms=None)) is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"lab": "yes"}, "hosts[0].lab and .stand_in must be true/false"),
        ({"arms": {"A": measured()}}, "hosts[0].arms must have exactly A and B"),
        (
            {"arms": {"A": measured(seconds="3"), "B": measured()}},
            "hosts[0].arms.A.seconds is not a number",
        ),
        (
            {"arms": {"A": measured(functions={"f": {}}), "B": measured()}},
            "hosts[0].arms.A.functions.f has neither a count nor not_measurable",
        ),
        ({"decision": {"decision": "maybe"}}, "hosts[0].decision.decision is not one of"),
    ],
)
def test_a_broken_bench_document_is_named(change: dict[str, Any], problem: str) -> None:
    found = bench_problem(doc(**change))
    assert found is not None and found.startswith(problem)


def test_the_format_is_checked() -> None:
    assert bench_problem({"format": 2, "hosts": []}) == "format is 2, expected 1"
    assert bench_problem([]) == "not a JSON object"
