"""bench.json from a run's events, its tables and chart (src/damon_fleet/bench.py), the
`damon-fleet report` hook, and the `bench` subcommand's wiring. The host payload is a real
one: what the damon_bench role handed over on a lab VM (tests/fixtures/bench-runs)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.bench import bench_problem

from damon_fleet import bench as bench_mod
from damon_fleet import report as report_mod
from damon_fleet.cli import build_parser

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bench-runs"


def payload() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURE / "lab-series-bench-labvm.json").read_text())
    return copy.deepcopy(data["damon_bench"])


def ok_event(host: str, found: dict[str, Any], counter: int = 1) -> dict[str, Any]:
    """A runner_on_ok event of the role's set_stats task, as ansible-runner hands it over."""
    return {
        "event": "runner_on_ok",
        "counter": counter,
        "event_data": {
            "host": host,
            "role": "damon_bench",
            "task": "Hand the bench of this host to damon-fleet (bench.json)",
            "task_action": "ansible.builtin.set_stats",
            "res": {
                "ansible_stats": {"data": {"damon_bench": found}, "per_host": True},
                "changed": False,
            },
        },
    }


def failed_event(host: str, msg: str) -> dict[str, Any]:
    return {
        "event": "runner_on_failed",
        "event_data": {"host": host, "role": "damon_bench", "res": {"msg": msg}},
    }


def two_hosts() -> list[dict[str, Any]]:
    worse = payload()
    worse["host"] = "h2"
    worse["arms"]["B"]["kdamond_cpu_percent"] = worse["arms"]["A"]["kdamond_cpu_percent"] * 2
    return [ok_event("labvm", payload()), ok_event("h2", worse, 2)]


def test_the_lab_payload_makes_a_valid_bench_document() -> None:
    doc = bench_mod.from_events("run1", [ok_event("labvm", payload())])
    assert doc is not None
    assert bench_problem(doc) is None
    (host,) = doc["hosts"]
    assert host["host"] == "labvm" and host["lab"] is True and host["stand_in"] is True
    assert doc["summary"]["lab_hosts"] == ["labvm"]
    assert doc["summary"]["decisions"] == {"labvm": payload()["decision"]["decision"]}


def test_no_bench_in_the_run_gives_no_document() -> None:
    skipped = {"event": "runner_on_skipped", "event_data": {"host": "h", "role": "damon_bench"}}
    other = {"event": "runner_on_ok", "event_data": {"host": "h", "role": "damon_perf", "res": {}}}
    assert bench_mod.from_events("r", [skipped, other]) is None
    assert bench_mod.report_entry("r", [skipped]) == {}


def test_a_failed_host_is_listed_with_its_reason() -> None:
    msg = "bench failed in Arm B - measure: the workload (pid 9) exited during arm B"
    doc = bench_mod.from_events("r", [ok_event("labvm", payload()), failed_event("h3", msg)])
    assert doc is not None and bench_problem(doc) is None
    assert doc["hosts"][-1] == {"host": "h3", "lab": False, "stand_in": False, "error": msg}
    assert doc["summary"]["failed"] == ["h3"]
    assert f"h3: bench failed: {msg}" in bench_mod.render_table(doc)


def test_fleet_summary_median_ratios_and_hosts_where_b_is_worse() -> None:
    doc = bench_mod.from_events("r", two_hosts())
    assert doc is not None
    lab = payload()
    a, b = lab["arms"]["A"], lab["arms"]["B"]
    own = b["kdamond_cpu_percent"] / a["kdamond_cpu_percent"]
    doubled = 2.0
    medians = doc["summary"]["median_ratio_b_over_a"]
    assert medians["kdamond_cpu_percent"] == pytest.approx((own + doubled) / 2, abs=1e-3)
    assert "kdamond CPU" in doc["summary"]["b_worse"]["h2"]


def test_the_table_is_the_letters_a_b_table_labelled_as_lab_figures() -> None:
    doc = bench_mod.from_events("r1", [ok_event("labvm", payload())])
    assert doc is not None
    text = bench_mod.render_table(doc)
    lab = payload()
    lines = text.splitlines()
    assert lines[0] == "bench of run r1"
    assert lines[2].startswith(f"labvm: kernel {lab['kernel']} [LAB FIGURES; stand-in kernel")
    header = next(line for line in lines if line.strip().startswith("measurement"))
    assert header.split() == ["measurement", "A", "accessed", "bits", "B", "perf", "events", "B/A"]
    prepare = next(line for line in lines if "damon_va_prepare_access_checks" in line)
    stats = lab["arms"]["A"]["functions"]["damon_va_prepare_access_checks"]
    assert f"n={stats['count']}" in prepare and "not measurable" in prepare
    assert f"decision: {lab['decision']['decision']} ({lab['decision']['reason']})" in text
    assert bench_mod.LAB_NOTE in text


def test_markdown_has_a_table_row_per_measurement() -> None:
    doc = bench_mod.from_events("r1", [ok_event("labvm", payload())])
    assert doc is not None
    text = bench_mod.render_markdown(doc)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2 + len(bench_mod.MEASUREMENTS)  # header, functions, figures
    assert "# statistics (in usec)" in text  # the letter-style blocks


def test_html_has_a_chart_drawn_by_matplotlib() -> None:
    doc = bench_mod.from_events("r1", two_hosts())
    assert doc is not None
    page = bench_mod.render_html(doc)
    assert page.startswith("<!DOCTYPE html>")
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert "Matplotlib" in svg  # the generator's metadata
    assert "labvm (lab)" in svg and "h2 (lab)" in svg
    assert "kdamond CPU" in svg


def test_the_report_shows_the_bench_of_its_run() -> None:
    run = {"id": "r9", "command": "bench", "hosts": ["labvm"], "status": "successful"}
    stats = {
        "event": "playbook_on_stats",
        "event_data": {"ok": {"labvm": 5}, "processed": {"labvm": 1}},
    }
    report = report_mod.build_report(run, [ok_event("labvm", payload()), stats], [], ["labvm"])
    assert report["bench"]["run"] == "r9"
    assert report_mod.report_problem(report) is None
    table = report_mod.render_table(report)
    assert "bench of run r9" in table and "median B/A over the fleet" in table
    assert "## damon-fleet bench, run r9" in report_mod.render_markdown(report)
    assert "<h2>Bench</h2>" in report_mod.render_html(report)
    broken = {**report, "bench": {"format": 1, "hosts": "x"}}
    assert report_mod.report_problem(broken) == "bench: hosts is not a list"


def test_a_report_without_a_bench_has_no_bench_key() -> None:
    run = {"id": "r9", "command": "verify", "hosts": ["h"], "status": "successful"}
    report = report_mod.build_report(run, [], [], ["h"])
    assert "bench" not in report
    assert "bench of run" not in report_mod.render_table(report)


def test_the_bench_subcommand_takes_the_run_options() -> None:
    args = build_parser().parse_args(
        ["bench", "-i", "inv.yml", "--limit", "web*", "-e", "a=1", "--runs-dir", "/x"]
    )
    assert (args.command, args.inventory, args.limit, args.extra_vars, args.runs_dir) == (
        "bench",
        "inv.yml",
        "web*",
        ["a=1"],
        "/x",
    )
    assert args.check is False and args.func.__name__ == "cmd_bench"
