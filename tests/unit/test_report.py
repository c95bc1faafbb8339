"""The per-host report from REAL runner events and rollout records.

localhost-*.json: runs on the development machine (localhost-unreachable-*: with a second
host, gone1, whose SSH port refuses connections; once complete, once stopped by SIGTERM);
lab-deploy-rollout-fallback.json and lab-rollout-records.json: a deploy on 3 lab VMs where
lab1 passed its gate, lab2's trial kernel panicked and it fell back, and lab3 was never
reached. Each file's ``_captured`` says how it was made.
"""

from __future__ import annotations

import copy
import json
from unittest import mock

import damon_sysfs
from conftest import FIXTURES
from damon_examples import EXAMPLE
from event_markers import captured
from fake_damon_sysfs import FakeDamonSysfs
from module_harness import run_module

from damon_fleet import report

EVENTS = FIXTURES / "runner-events"
RELEASE = "6.12.117-lab-perf-events-abi-0c853a0d"
BEFORE = "6.12.117-lab-1b9cc979"


def events(name):
    """A captured stream (event_markers.captured)."""
    return captured(name)


def records():
    return json.loads((EVENTS / "lab-rollout-records.json").read_text())["records"]


def run_info(command, **extra):
    info = {"id": "20261126T100000Z", "command": command, "inventory": "/inv.yml"}
    info.update(extra)
    return info


def deploy_report(hosts=("lab1", "lab2", "lab3")):
    return report.build_report(
        run_info("deploy", status="failed", ansible_rc=2, finished="2026-11-26T10:40:00Z"),
        events("lab-deploy-rollout-fallback.json"),
        records(),
        list(hosts),
    )


def test_detect_report_from_real_events():
    rep = report.build_report(
        run_info("detect", status="successful"), events("localhost-detect.json"), [], ["localhost"]
    )
    (row,) = rep["hosts"]
    assert row["outcome"] == "done"
    assert row["perf"]["classification"] == "none"
    assert row["perf"]["source"] == "detected"
    assert row["perf"]["events"] == []
    assert "virtual machine" in row["perf"]["reason"]
    assert row["perf"]["kernel_release"] == "6.18.44-fc-v857"
    assert row["damon"] is None and row["kernel"] is None and row["failure"] is None
    assert 0.5 < row["stage_seconds"]["detect"] < 1.0
    assert rep["summary"]["done"] == ["localhost"]
    assert rep["tasks_started"] == 6  # the stage event is a task


def test_configure_check_report_keeps_damon_state_and_marks_check_mode():
    rep = report.build_report(
        run_info("configure", status="successful", check=True),
        events("localhost-configure-check.json"),
        [],
        ["localhost"],
    )
    (row,) = rep["hosts"]
    damon = row["damon"]
    assert damon["from"] == "configure" and damon["check_mode"] is True
    assert damon["state"] == "on"
    assert damon["kdamonds"] == [{"index": 0, "state": "on", "pid": 77}]
    assert damon["layout"] == "mainline"
    assert row["perf_effective"] == "no"
    assert row["perf_evidence"]["reason"] == (
        "no perf event configured (mainline layout); monitoring with accessed bits"
    )
    assert row["damon"]["perf_evidence"] == row["perf_evidence"]
    cells = report.cells(row)
    assert cells["damon"] == "on (1 kdamond) [check]"
    assert cells["perf_effective"] == "no"


def test_verify_failure_names_stage_task_and_reason():
    rep = report.build_report(
        run_info("verify", status="failed"), events("localhost-verify-failed.json"), [], []
    )
    (row,) = rep["hosts"]
    assert row["outcome"] == "failed"
    failure = row["failure"]
    assert failure["stage"] == "verify"
    assert failure["task"] == "Check that nothing is left to write and every kdamond runs"
    assert failure["reason"].startswith("localhost: DAMON differs from the inventory")
    assert row["damon"]["from"] == "verify" and row["damon"]["pending_writes"] == 13
    assert rep["summary"]["failed"] == ["localhost"]
    table = report.render_table(rep)
    assert "localhost  FAILED" in table
    assert "localhost: failed in verify, task 'Check that nothing" in table


def test_interrupted_run_shows_where_each_host_was():
    rep = report.build_report(
        run_info("detect", status="canceled"),
        events("localhost-detect-interrupted.json"),
        [],
        ["localhost", "otherhost"],
    )
    rows = {r["host"]: r for r in rep["hosts"]}
    assert rows["localhost"]["outcome"] == "interrupted"
    assert rows["localhost"]["last_task"]["task"] == "Detect the perf event DAMON should use"
    assert rows["otherhost"]["outcome"] == "not_reached"
    assert "localhost: interrupted in detect, during task" in report.render_table(rep)


def test_deploy_report_joins_events_and_records():
    rep = deploy_report()
    rows = {r["host"]: r for r in rep["hosts"]}
    lab1, lab2, lab3 = rows["lab1"], rows["lab2"], rows["lab3"]
    assert lab1["outcome"] == "done"
    assert lab1["kernel"]["before"] == BEFORE and lab1["kernel"]["after"] == RELEASE
    assert lab1["kernel"]["status"] == "done" and lab1["kernel"]["batch"] == 1
    assert lab1["gate"]["passed"] is True and len(lab1["gate"]["checks"]) == 4
    assert lab1["phase_seconds"] == {
        "install": 78.1,
        "reboot": 37.2,
        "gate": 4.7,
        "default": 14.7,
    }
    assert lab2["outcome"] == "failed"
    assert lab2["failure"]["stage"] == "rollout" and lab2["failure"]["phase"] == "fallback"
    assert lab2["failure"]["task"] == "Fail the host (the rollout stops)"
    assert lab2["kernel"]["after"] == BEFORE and lab2["gate"]["passed"] is False
    assert lab2["error"].startswith("gate failed: release")
    assert lab3["outcome"] == "not_reached" and lab3["kernel"] is None
    assert rep["summary"]["failed"] == ["lab2"] and rep["summary"]["not_reached"] == ["lab3"]
    assert rep["build"]["kernel_release"] == RELEASE and rep["build"]["built"] is False
    assert rep["build"]["packages"][0] == f"linux-image-{RELEASE}_{RELEASE}-1_amd64.deb"
    assert rep["timing"]["build_seconds"] == 8.8
    assert rep["batches"] == [
        {"batch": 1, "hosts": ["lab1"], "seconds": 164.6},
        {"batch": 2, "hosts": ["lab2"], "seconds": None},
    ]
    cells = report.cells(lab2)
    assert cells["gate"] == "FAILED (release, layout)"
    assert cells["kernel"] == BEFORE
    assert report.cells(lab1)["kernel"] == f"{BEFORE} -> {RELEASE}"
    assert report.cells(lab1)["time"] == (
        "install 78s, reboot 37s, gate 4.7s, default 15s, "
        "tool 49s = 42.8% over install + reboot 115s"
    )
    # the tool's own time: the host's rollout span (164.6 s) minus install + reboot
    assert lab1["overhead"] == {"seconds": 49.3, "bare_seconds": 115.3, "percent": 42.8}


def test_table_markdown_and_html_renderings():
    rep = deploy_report()
    table = report.render_table(rep)
    lines = table.splitlines()
    assert lines[0].startswith("run 20261126T100000Z: damon-fleet deploy on /inv.yml: failed;")
    assert f"build: {RELEASE} (up to date) on localhost" in table
    assert "batch 1: lab1 in 165s" in table
    assert f"lab2: gate check release failed: running {BEFORE}, expected {RELEASE}" in table
    assert "lab2: gate check layout failed: DAMON sysfs layout mainline, expected rfc-v3" in table
    markdown = report.render_markdown(rep)
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + 3  # header + one row per host
    assert "## Details" in markdown
    rep["hosts"][0]["failure"] = {"stage": "rollout", "task": "a|b", "reason": "<script>"}
    assert "a\\|b" in report.render_markdown(rep)
    page = report.render_html(rep)
    assert page.startswith("<!DOCTYPE html>") and "&lt;script&gt;" in page
    assert page.count('<tr class="bad">') == 2
    assert json.loads(report.render_json(rep))["format"] == 1


def test_events_of_a_host_outside_the_target_list_show_only_when_it_failed():
    evs = events("lab-deploy-rollout-fallback.json")
    rep = report.build_report(run_info("deploy"), evs, [], ["lab1"])
    assert [r["host"] for r in rep["hosts"]] == ["lab1", "lab2"]


def test_damon_state():
    assert report.damon_state(None) is None
    assert report.damon_state([]) == "none"
    assert report.damon_state([{"state": "on"}, {"state": "on"}]) == "on"
    assert report.damon_state([{"state": "on"}, {"state": "off"}]) == "mixed"


def test_format_event():
    event = {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 0x1F, "config2": 0}
    assert report.format_event(event) == "cpu type=4 config=0x1cd config1=0x1f config2=0x0"


def test_fleet_status_takes_the_newest_value_of_each_field():
    deploy = deploy_report()
    detect = report.build_report(
        run_info("detect", status="successful", finished="2026-11-26T16:00:00Z"),
        events("localhost-detect.json"),
        [],
        ["localhost"],
    )
    configure_check = report.build_report(
        run_info("configure", status="successful", check=True, finished="2026-11-26T17:00:00Z"),
        events("localhost-configure-check.json"),
        [],
        ["localhost"],
    )
    rows = {r["host"]: r for r in report.fleet_status([deploy, detect, configure_check], records())}
    assert rows["localhost"]["kernel"] == "6.18.44-fc-v857"
    assert rows["localhost"]["classification"] == "none"
    assert rows["localhost"]["damon"] is None  # a check-mode run is no sighting of DAMON
    assert rows["localhost"]["outcome"] == "done (configure)"
    assert rows["lab1"]["kernel"] == RELEASE
    assert rows["lab1"]["rollout"] == f"done {RELEASE}"
    assert rows["lab2"]["kernel"] == BEFORE and rows["lab2"]["rollout"].startswith("failed")
    assert rows["lab3"]["kernel"] is None  # not reached: nothing seen
    text = report.render_status(list(rows.values()))
    assert text.splitlines()[0].split() == [
        "host",
        "kernel",
        "DAMON",
        "perf_effective",
        "perf",
        "rollout",
        "last",
        "seen",
        "last",
        "outcome",
    ]
    assert json.loads(report.render_status(list(rows.values()), "json"))[0]["host"] == "lab1"


UNREACHABLE_TASK = "Detect the perf event DAMON should use"


def test_unreachable_host_of_a_finished_run_is_unreachable_not_failed():
    rep = report.build_report(
        run_info("detect", status="failed", ansible_rc=4),
        events("localhost-unreachable-detect.json"),
        [],
        ["localhost", "gone1"],
    )
    rows = {r["host"]: r for r in rep["hosts"]}
    assert rows["localhost"]["outcome"] == "done"
    gone = rows["gone1"]
    assert gone["outcome"] == "unreachable"
    assert gone["failure"]["unreachable"] is True
    assert gone["failure"]["stage"] == "detect" and gone["failure"]["task"] == UNREACHABLE_TASK
    assert "port" in gone["failure"]["reason"] and "Connection refused" in gone["failure"]["reason"]
    assert rep["summary"]["unreachable"] == ["gone1"]
    assert rep["summary"]["failed"] == [] and rep["summary"]["done"] == ["localhost"]
    assert report.cells(gone)["outcome"] == "UNREACHABLE"
    table = report.render_table(rep)
    assert "1 done, 1 unreachable" in table.splitlines()[0]
    assert f"gone1: unreachable in detect, task '{UNREACHABLE_TASK}': " in table
    assert report.render_html(rep).count('<tr class="bad">') == 1


def test_unreachable_host_of_an_interrupted_run_without_stats():
    evs = events("localhost-unreachable-detect-interrupted.json")
    assert all(e["event"] != "playbook_on_stats" for e in evs)
    rep = report.build_report(
        run_info("detect", status="canceled"), evs, [], ["localhost", "gone1"]
    )
    rows = {r["host"]: r for r in rep["hosts"]}
    assert rows["gone1"]["outcome"] == "unreachable"
    assert rows["gone1"]["failure"]["unreachable"] is True
    assert rows["localhost"]["outcome"] == "interrupted"
    assert rows["localhost"]["last_task"]["task"] == UNREACHABLE_TASK
    assert rep["summary"]["unreachable"] == ["gone1"] and rep["summary"]["failed"] == []
    assert rep["summary"]["interrupted"] == ["localhost"]


def test_a_failed_host_is_failed_not_unreachable():
    rep = report.build_report(
        run_info("verify", status="failed"), events("localhost-verify-failed.json"), [], []
    )
    (row,) = rep["hosts"]
    assert (row["outcome"], row["failure"]["unreachable"]) == ("failed", False)
    assert rep["summary"]["unreachable"] == []


# --------------------------------------------------------------------------- perf_effective


def damon_module_result(tmp_path, kdamond=EXAMPLE, **args):
    """What the damon_sysfs module returns on a host where the PEBS event (type 4) cannot
    be created (the fake sysfs logs the kernel's line and total_reports stays flat) and a
    software event (type 1) samples."""
    fake = FakeDamonSysfs(tmp_path, perf_unsupported_types=(4,), online_cpus=(0,))
    with (
        mock.patch.object(damon_sysfs, "RealSysfs", return_value=fake),
        mock.patch.object(damon_sysfs, "KmsgLog", return_value=fake.log),
        mock.patch.object(damon_sysfs, "host_max_sample_rate", return_value=100000),
        mock.patch.object(damon_sysfs, "_sleep", fake.advance),
        mock.patch.object(damon_sysfs, "running_release", return_value=RELEASE),
    ):
        done = run_module(
            damon_sysfs.main,
            {"kdamonds": [kdamond], "settle_time": 0, "root": fake.root, **args},
        )
    assert not done.failed, done.result
    return done.result


def configure_events_with(res):
    """The REAL events of a configure run, its apply (the last damon_sysfs) answering
    ``res``."""
    out = copy.deepcopy(events("localhost-configure-check.json"))
    calls = [
        event["event_data"]
        for event in out
        if event.get("event") == "runner_on_ok"
        and event["event_data"].get("task_action") == "damon_sysfs"
    ]
    assert len(calls) == 2  # validate, apply
    calls[-1]["res"] = res
    return out


def test_perf_effective_no_with_the_kernels_reason_and_the_stand_in(tmp_path):
    res = damon_module_result(tmp_path, stand_in_kernels=[RELEASE])
    rep = report.build_report(
        run_info("configure", status="successful", finished="2026-11-30T21:00:00Z"),
        configure_events_with(res),
        [],
        ["localhost"],
    )
    (row,) = rep["hosts"]
    assert row["perf_effective"] == "no"
    assert row["perf_evidence"]["stand_in"] is True
    assert row["damon"]["perf_evidence"] == row["perf_evidence"]
    assert report.cells(row)["perf_effective"] == "no (stand-in kernel)"
    assert (
        "localhost: perf_effective: no (stand-in kernel; damon: perf event create on CPU 0 "
        "failed with -2; monitoring with accessed bits)"
    ) in report.details(row)
    assert not any("perf event create failed: {" in line for line in report.details(row))
    assert "no (stand-in kernel)" in report.render_table(rep)

    (status,) = report.fleet_status([rep])
    assert status["perf_effective"] == "no"
    assert status["perf_evidence"]["reason"] == (
        "damon: perf event create on CPU 0 failed with -2; monitoring with accessed bits"
    )
    assert "no (stand-in kernel)" in report.render_status([status])


def test_perf_effective_yes_on_a_stand_in_is_never_bare(tmp_path):
    cpu_clock = dict(EXAMPLE, perf_events=[{"type": 1, "config": 0}])
    res = damon_module_result(tmp_path, cpu_clock, stand_in_kernels=[RELEASE])
    assert res["perf_effective"] == "yes"
    rep = report.build_report(
        run_info("configure", status="successful", finished="2026-11-30T21:00:00Z"),
        configure_events_with(res),
        [],
        ["localhost"],
    )
    (row,) = rep["hosts"]
    assert report.cells(row)["perf_effective"] == "yes (stand-in kernel)"
    (status,) = report.fleet_status([rep])
    assert "  yes (stand-in kernel)  " in report.render_status([status])


def test_tool_overhead_is_the_rollout_span_beyond_install_and_reboot():
    assert report.tool_overhead({"install": 80, "reboot": 37}, {"rollout": 128.7}) == {
        "seconds": 11.7,
        "bare_seconds": 117.0,
        "percent": 10.0,
    }
    # a host that was not rebooted (rollout_reboot_ok false) or no rollout in the run
    assert report.tool_overhead({"install": 80}, {"rollout": 90}) is None
    assert report.tool_overhead({"install": 80, "reboot": 37}, {"configure": 3}) is None
    assert report.tool_overhead({"install": True, "reboot": 37}, {"rollout": 90}) is None
    assert report.tool_overhead({"install": 0, "reboot": 0}, {"rollout": 9}) is None
    # clocks of controller events and host records disagree by a little: never negative
    assert report.tool_overhead({"install": 80, "reboot": 37}, {"rollout": 116.5}) == {
        "seconds": 0.0,
        "bare_seconds": 117.0,
        "percent": 0.0,
    }


def test_no_tool_overhead_for_a_host_whose_rollout_began_in_an_earlier_run():
    """A resumed run: the install and reboot recorded for lab1 started before this run's
    first event, so this run's span says nothing about them."""
    recs = records()
    for rec in recs:
        if rec["host"] == "lab1":
            rec["phases"]["install"]["started"] = "2026-11-25T09:00:00Z"
    rep = report.build_report(
        run_info("deploy", status="failed", ansible_rc=2, finished="2026-11-26T10:40:00Z"),
        events("lab-deploy-rollout-fallback.json"),
        recs,
        ["lab1", "lab2"],
    )
    rows = {r["host"]: r for r in rep["hosts"]}
    assert rows["lab1"]["overhead"] is None
    assert "tool" not in report.cells(rows["lab1"])["time"]
    assert rows["lab2"]["overhead"] == {"seconds": 42.5, "bare_seconds": 118.6, "percent": 35.8}
