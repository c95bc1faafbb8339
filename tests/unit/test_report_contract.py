"""The report as a contract: whole reports, tables, Markdown, HTML and fleet status, exact.

Built from the REAL runner events and rollout records in tests/fixtures/runner-events (see
test_report.py for what each capture is). Rows are changed afterwards the way
test_report.py changes them, to reach the renderers' other branches; no event is made up.
The perf_effective column is compared through ``cells`` (its display is its own contract,
tested in test_report.py), every other column exactly.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import FIXTURES
from event_markers import captured

from damon_fleet import report

EVENTS = FIXTURES / "runner-events"
RELEASE = "6.12.117-lab-perf-events-abi-0c853a0d"
BEFORE = "6.12.117-lab-1b9cc979"
GATE_ERROR = (
    f"gate failed: release: running {BEFORE}, expected {RELEASE}; "
    "layout: DAMON sysfs layout mainline, expected rfc-v3"
)
FALLBACK_REASON = (
    f"kernel_install: lab2 failed the gate of {RELEASE} (release: running {BEFORE}, expected "
    f"{RELEASE}; layout: DAMON sysfs layout mainline, expected rfc-v3); it runs {BEFORE} "
    "(its previous kernel)."
)
NO_PERF = (
    "no PMU memory events (no PEBS/IBS/SPE sampling): perf says 'failed: memory events not "
    "supported'; this host is a virtual machine"
)
REFUSED = (
    "Task failed: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 "
    "port 37989: Connection refused"
)
DETECT_TASK = "Detect the perf event DAMON should use"
NO_EVENT_EVIDENCE = {
    "reason": "no perf event configured (mainline layout); monitoring with accessed bits",
    "failures": [],
    "failure_count": 0,
    "total_reports": [],
    "window_s": None,
    "stand_in": False,
    "fallback": "accessed_bits",
}


def events(name: str) -> list[dict[str, Any]]:
    """A captured stream (event_markers.captured)."""
    return captured(name)


def records() -> list[dict[str, Any]]:
    return json.loads((EVENTS / "lab-rollout-records.json").read_text())["records"]


def checks_of(host: str) -> list[dict[str, Any]]:
    (record,) = [r for r in records() if r["host"] == host]
    return record["phases"]["gate"]["checks"]


def run_info(command: str, **extra: Any) -> dict[str, Any]:
    info = {"id": "20261126T100000Z", "command": command, "inventory": "/inv.yml"}
    info.update(extra)
    return info


def deploy_report() -> dict[str, Any]:
    return report.build_report(
        run_info("deploy", status="failed", ansible_rc=2, finished="2026-11-26T10:40:00Z"),
        events("lab-deploy-rollout-fallback.json"),
        records(),
        ["lab1", "lab2", "lab3"],
    )


def unreachable_report() -> dict[str, Any]:
    return report.build_report(
        run_info("detect", status="failed", ansible_rc=4),
        events("localhost-unreachable-detect.json"),
        [],
        ["localhost", "gone1"],
    )


def configure_check_report() -> dict[str, Any]:
    return report.build_report(
        run_info("configure", status="successful", check=True),
        events("localhost-configure-check.json"),
        [],
        ["localhost"],
    )


def without_perf_effective(text: str) -> list[str]:
    """The lines of a rendered table with the perf_effective column cut out."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("host "))
    last = lines.index("", first) if "" in lines[first:] else len(lines)
    start = lines[first].index("perf_effective")
    end = start + len(lines[first + 1][start:].split(" ", 1)[0]) + 2
    return [
        line[:start] + line[end:] if first <= i < last else line for i, line in enumerate(lines)
    ]


def run_keys(**values: Any) -> dict[str, Any]:
    keys = (
        "id", "command", "playbook", "inventory", "limit", "check", "extravars",
        "rollout_state_dir", "resumed_from", "started", "finished", "status", "ansible_rc",
        "exit_code",
    )  # fmt: skip
    return {key: values.get(key) for key in keys}


# ------------------------------------------------------------------------- whole reports


def test_the_whole_deploy_report() -> None:
    rep = deploy_report()
    assert {k: v for k, v in rep.items() if k != "hosts"} == {
        "format": 1,
        "run": run_keys(
            id="20261126T100000Z",
            command="deploy",
            inventory="/inv.yml",
            finished="2026-11-26T10:40:00Z",
            status="failed",
            ansible_rc=2,
        ),
        "build": {
            "host": "localhost",
            "kernel_release": RELEASE,
            "built": False,
            "current": True,
            "reason": "inputs unchanged and every package matches its sha256",
            "inputs_hash": "0c853a0da2c09c6d43f6cb906b79240a79087ea087971c8f66bf42930b0dfbc1",
            "packages": [
                f"linux-image-{RELEASE}_{RELEASE}-1_amd64.deb",
                f"linux-libc-dev_{RELEASE}-1_amd64.deb",
            ],
        },
        "timing": {
            "build_seconds": 8.8,
            "total_seconds": None,
            "rollout_seconds": None,
            "first_event": "2026-11-26T20:07:19Z",
            "last_event": "2026-11-26T20:12:54Z",
        },
        "batches": [
            {"batch": 1, "hosts": ["lab1"], "seconds": 164.6},
            {"batch": 2, "hosts": ["lab2"], "seconds": None},
        ],
        "tasks_started": 139,
        "summary": {
            "done": ["lab1"],
            "failed": ["lab2"],
            "unreachable": [],
            "not_reached": ["lab3"],
            "interrupted": [],
        },
    }
    lab1, lab2, lab3 = rep["hosts"]
    assert lab1 == {
        "host": "lab1",
        "outcome": "done",
        "failure": None,
        "kernel": {
            "before": BEFORE,
            "after": RELEASE,
            "release": RELEASE,
            "status": "done",
            "batch": 1,
            "already_done": False,
            "reboot_required": False,
        },
        "gate": {"passed": True, "checks": checks_of("lab1")},
        "perf": None,
        "damon": None,
        "perf_effective": None,
        "phase_seconds": {"install": 78.1, "reboot": 37.2, "gate": 4.7, "default": 14.7},
        "stage_seconds": {"rollout": 164.6},
        "overhead": {"seconds": 49.3, "bare_seconds": 115.3, "percent": 42.8},
        "error": None,
        "last_task": None,
    }
    assert lab2 == {
        **lab1,
        "host": "lab2",
        "outcome": "failed",
        "failure": {
            "stage": "rollout",
            "phase": "fallback",
            "task": "Fail the host (the rollout stops)",
            "reason": FALLBACK_REASON,
            "unreachable": False,
        },
        "kernel": {
            "before": BEFORE,
            "after": BEFORE,
            "release": RELEASE,
            "status": "failed",
            "batch": 2,
            "already_done": False,
            "reboot_required": False,
        },
        "gate": {"passed": False, "checks": checks_of("lab2")},
        "phase_seconds": {"install": 71.4, "reboot": 47.2, "gate": 4.0, "fallback": 12.8},
        "stage_seconds": lab2["stage_seconds"],
        "overhead": {"seconds": 42.5, "bare_seconds": 118.6, "percent": 35.8},
        "error": GATE_ERROR,
    }
    assert set(lab2["stage_seconds"]) == {"rollout"}
    assert lab3 == {
        "host": "lab3",
        "outcome": "not_reached",
        "failure": None,
        "kernel": None,
        "gate": None,
        "perf": None,
        "damon": None,
        "perf_effective": None,
        "phase_seconds": {},
        "stage_seconds": {},
        "overhead": None,
        "error": None,
        "last_task": None,
    }
    assert report.report_problem(rep) is None
    assert json.loads(report.render_json(rep)) == rep
    assert report.render_json(rep) == json.dumps(rep, indent=2, sort_keys=True) + "\n"


def test_the_whole_configure_check_report() -> None:
    rep = configure_check_report()
    assert rep["run"] == run_keys(
        id="20261126T100000Z",
        command="configure",
        inventory="/inv.yml",
        check=True,
        status="successful",
    )
    assert rep["build"] is None and rep["batches"] == [] and rep["tasks_started"] == 19
    assert rep["timing"] == {
        "build_seconds": None,
        "total_seconds": None,
        "rollout_seconds": None,
        "first_event": "2026-11-30T23:57:02Z",
        "last_event": "2026-11-30T23:57:04Z",
    }
    (row,) = rep["hosts"]
    assert row == {
        "host": "localhost",
        "outcome": "done",
        "failure": None,
        "kernel": None,
        "gate": None,
        "perf": None,
        "damon": {
            "from": "configure",
            "check_mode": True,
            "state": "on",
            "kdamonds": [{"index": 0, "state": "on", "pid": 77}],
            "layout": "mainline",
            "perf_effective": "no",
            "perf_failures": [],
            "pending_writes": None,
            "perf_evidence": NO_EVENT_EVIDENCE,
        },
        "perf_effective": "no",
        "perf_evidence": NO_EVENT_EVIDENCE,
        "phase_seconds": {},
        "stage_seconds": {"configure": 2.0},
        "overhead": None,
        "error": None,
        "last_task": None,
    }
    # the same events as a real run (not --check): the DAMON state is a real sighting
    real = report.build_report(
        run_info("configure", status="successful"),
        events("localhost-configure-check.json"),
        [],
        ["localhost"],
    )
    assert real["hosts"][0]["damon"] == {**row["damon"], "check_mode": False}


def test_the_whole_unreachable_report() -> None:
    rep = unreachable_report()
    localhost, gone = rep["hosts"]
    assert localhost == {
        "host": "localhost",
        "outcome": "done",
        "failure": None,
        "kernel": None,
        "gate": None,
        "perf": {
            "classification": "none",
            "reason": NO_PERF,
            "source": "detected",
            "events": [],
            "summary": f"none ({NO_PERF})",
            "kernel_release": "6.18.44-fc-v857",
            "pmu_name": None,
        },
        "damon": None,
        "perf_effective": None,
        "phase_seconds": {},
        "stage_seconds": {"detect": 0.8},
        "overhead": None,
        "error": None,
        "last_task": None,
    }
    assert gone == {
        **localhost,
        "host": "gone1",
        "outcome": "unreachable",
        "failure": {
            "stage": "detect",
            "phase": None,
            "task": DETECT_TASK,
            "reason": REFUSED,
            "unreachable": True,
        },
        "perf": None,
        "stage_seconds": {"detect": 0.5},
    }
    assert rep["summary"] == {
        "done": ["localhost"],
        "failed": [],
        "unreachable": ["gone1"],
        "not_reached": [],
        "interrupted": [],
    }


def test_the_verify_failure_row() -> None:
    rep = report.build_report(
        run_info("verify", status="failed"), events("localhost-verify-failed.json"), [], []
    )
    (row,) = rep["hosts"]
    assert row["damon"] == {
        "from": "verify",
        "check_mode": False,
        "state": "on",
        "kdamonds": row["damon"]["kdamonds"],
        "layout": row["damon"]["layout"],
        "perf_effective": "no",
        "perf_failures": [],
        "pending_writes": 13,
        "perf_evidence": NO_EVENT_EVIDENCE,
    }
    assert len(row["damon"]["kdamonds"]) == 1
    assert row["failure"]["stage"] == "verify" and row["failure"]["phase"] is None
    assert row["stage_seconds"] == {"verify": 0.7}


WARNING = (
    "damon_perf_kdamonds[0]: no perf event listed in inventory nor detected "
    "(damon_perf_events); using the accessed-bit check"
)


@pytest.mark.parametrize(
    ("name", "stage"),
    [("localhost-configure-check.json", "configure"), ("localhost-verify-failed.json", "verify")],
)
def test_collect_keeps_what_damon_sysfs_returned(name: str, stage: str) -> None:
    info = report.collect(events(name))["hosts"]["localhost"]
    assert info[stage] == {
        "layout": "mainline",
        "kdamonds": [{"index": 0, "state": "on", "pid": 77}],
        "perf_effective": "no",
        "perf_failures": [],
        "writes": 13,
        "warnings": [WARNING],
        "failed": False,
        "msg": None,
        "perf_evidence": NO_EVENT_EVIDENCE,
    }
    other = "verify" if stage == "configure" else "configure"
    assert info[other] is None and info["damon_wanted"] is True
    assert info["stage_seconds"] == {stage: 2.0 if stage == "configure" else 0.7}


def test_collect_of_the_failed_verify() -> None:
    info = report.collect(events("localhost-verify-failed.json"))["hosts"]["localhost"]
    task = "Check that nothing is left to write and every kdamond runs"
    (failure,) = info.pop("failures")
    assert failure == {
        "stage": "verify",
        "phase": None,
        "task": task,
        "msg": failure["msg"],
        "unreachable": False,
        "at": "2026-11-30T23:57:06Z",
    }
    assert failure["msg"].startswith("localhost: DAMON differs from the inventory: pending writes")
    assert {k: v for k, v in info.items() if k not in ("verify", "perf")} == {
        "configure": None,
        "damon_wanted": True,
        "kernel_install_result": None,
        "reboot_required": None,
        "build": None,
        "last_task": {"stage": "verify", "phase": None, "task": task},
        "stage_seconds": {"verify": 0.7},
    }


def test_an_interrupted_run_keeps_the_last_task_of_interrupted_hosts_only() -> None:
    evs = events("localhost-unreachable-detect-interrupted.json")
    rep = report.build_report(
        run_info("detect", status="canceled"), evs, [], ["localhost", "gone1"]
    )
    localhost, gone = rep["hosts"]
    assert localhost["outcome"] == "interrupted"
    assert localhost["last_task"] == {"stage": "detect", "phase": None, "task": DETECT_TASK}
    assert gone["outcome"] == "unreachable" and gone["last_task"] is None
    # the same events of a run that ended on its own: the host was done
    ended = report.build_report(run_info("detect", status="failed"), evs, [], ["localhost"])
    assert [(r["host"], r["outcome"]) for r in ended["hosts"]] == [
        ("localhost", "done"),
        ("gone1", "unreachable"),
    ]
    assert report.render_table(rep).splitlines()[-2:] == [
        f"localhost: interrupted in detect, during task '{DETECT_TASK}'",
        f"gone1: unreachable in detect, task '{DETECT_TASK}': {REFUSED}",
    ]


def test_a_host_known_only_from_its_record() -> None:
    """The kernel and gate columns come from the record when the events have no result."""
    lab1 = [r for r in records() if r["host"] == "lab1"]
    rep = report.build_report(run_info("status"), events("localhost-detect.json"), lab1, ["lab1"])
    (row,) = rep["hosts"]
    assert row["outcome"] == "not_reached"
    assert row["kernel"] == {
        "before": BEFORE,
        "after": RELEASE,
        "release": RELEASE,
        "status": "done",
        "batch": 1,
        "already_done": None,
        "reboot_required": None,
    }
    assert row["gate"] == {"passed": True, "checks": checks_of("lab1")}
    assert row["phase_seconds"] == {"install": 78.1, "reboot": 37.2, "gate": 4.7, "default": 14.7}


def test_without_a_host_list_the_hosts_of_the_events_are_shown_sorted() -> None:
    rep = report.build_report(
        run_info("detect", status="failed"), events("localhost-unreachable-detect.json")
    )
    assert [r["host"] for r in rep["hosts"]] == ["gone1", "localhost"]
    twice = report.build_report(
        run_info("detect"), events("localhost-unreachable-detect.json"), [], ["gone1", "gone1"]
    )
    assert [r["host"] for r in twice["hosts"]] == ["gone1"]


# ---------------------------------------------------------------------------- renderings


def test_the_deploy_table() -> None:
    rep = deploy_report()
    kernel = f"{BEFORE} -> {RELEASE}"
    assert without_perf_effective(report.render_table(rep)) == [
        "run 20261126T100000Z: damon-fleet deploy on /inv.yml: failed; "
        "1 done, 1 failed, 1 not reached",
        f"build: {RELEASE} (up to date) on localhost",
        "time: build 8.8s",
        "batch 1: lab1 in 165s",
        "batch 2: lab2",
        "",
        "host  outcome      kernel before -> after" + " " * 42 + "gate                      "
        "perf (classification, events)  DAMON  time per phase",
        "----  -----------  " + "-" * 62 + "  ------------------------  "
        "-----------------------------  -----  " + "-" * 93,
        f"lab1  done         {kernel}  passed                    -                              "
        "-      install 78s, reboot 37s, gate 4.7s, default 15s, "
        "tool 49s = 42.8% over install + reboot 115s",
        f"lab2  FAILED       {BEFORE}" + " " * 43 + "FAILED (release, layout)  "
        "-                              -      install 71s, reboot 47s, gate 4.0s, fallback 13s, "
        "tool 42s = 35.8% over install + reboot 119s",
        "lab3  not_reached  -" + " " * 63 + "-                         "
        "-                              -      -",
        "",
        f"lab2: failed in rollout/fallback, task 'Fail the host (the rollout stops)': "
        f"{FALLBACK_REASON}",
        f"lab2: gate check release failed: running {BEFORE}, expected {RELEASE}",
        "lab2: gate check layout failed: DAMON sysfs layout mainline, expected rfc-v3",
        f"lab2: rollout record error: {GATE_ERROR}",
    ]


def test_the_deploy_markdown() -> None:
    rep = deploy_report()
    rep["run"]["rollout_state_dir"] = "/srv/state"
    rep["run"]["started"] = "2026-11-26T10:00:00Z"
    pe = [report.cells(r)["perf_effective"] for r in rep["hosts"]]
    assert report.render_markdown(rep) == "\n".join(
        [
            "# damon-fleet deploy run 20261126T100000Z",
            "",
            "- run 20261126T100000Z: damon-fleet deploy on /inv.yml: failed; "
            "1 done, 1 failed, 1 not reached",
            "- started 2026-11-26T10:00:00Z, finished 2026-11-26T10:40:00Z",
            "- rollout records: `/srv/state`",
            f"- build: {RELEASE} (up to date) on localhost",
            "- time: build 8.8s",
            "- batch 1: lab1 in 165s",
            "- batch 2: lab2",
            "",
            "| host | outcome | kernel before -> after | gate | perf (classification, events) "
            "| DAMON | perf_effective | time per phase |",
            "|---|---|---|---|---|---|---|---|",
            f"| lab1 | done | {BEFORE} -> {RELEASE} | passed | - | - | {pe[0]} "
            "| install 78s, reboot 37s, gate 4.7s, default 15s, "
            "tool 49s = 42.8% over install + reboot 115s |",
            f"| lab2 | FAILED | {BEFORE} | FAILED (release, layout) | - | - | {pe[1]} "
            "| install 71s, reboot 47s, gate 4.0s, fallback 13s, "
            "tool 42s = 35.8% over install + reboot 119s |",
            f"| lab3 | not_reached | - | - | - | - | {pe[2]} | - |",
            "",
            "## Details",
            "",
            f"- lab2: failed in rollout/fallback, task 'Fail the host (the rollout stops)': "
            f"{FALLBACK_REASON}",
            f"- lab2: gate check release failed: running {BEFORE}, expected {RELEASE}",
            "- lab2: gate check layout failed: DAMON sysfs layout mainline, expected rfc-v3",
            f"- lab2: rollout record error: {GATE_ERROR}",
            "",
        ]
    )
    rep["run"]["command"] = "detect"  # the records folder is shown for deploys only
    assert "rollout records" not in report.render_markdown(rep)


def test_markdown_escapes_pipes_and_newlines_and_has_no_details_without_any() -> None:
    rep = configure_check_report()
    rep["run"]["id"] = None
    rep["run"]["command"] = None
    rep["hosts"][0]["damon"]["state"] = "a|b\nc"
    del rep["hosts"][0]["perf_evidence"]  # its detail line is the only one
    text = report.render_markdown(rep)
    assert text.splitlines()[0] == "# damon-fleet  run"
    assert "| a\\|b c (1 kdamond) [check] |" in text
    assert "## Details" not in text and text.endswith(" |\n")


def test_the_unreachable_html_page() -> None:
    rep = unreachable_report()
    rep["hosts"][1]["failure"]["reason"] = "<refused> & 'gone'"
    pe = [report.cells(r)["perf_effective"] for r in rep["hosts"]]
    head = "".join(f"<th>{title}</th>" for _, title in report.TABLE_COLUMNS)
    assert report.render_html(rep) == (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<title>damon-fleet detect run 20261126T100000Z</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}"
        "th{background:#eee}tr.bad td{background:#fde2e2}tr.ok td:nth-child(2){color:#176b2c}"
        "</style></head><body><h1>damon-fleet detect run 20261126T100000Z</h1>"
        "<ul><li>run 20261126T100000Z: damon-fleet detect on /inv.yml: failed; "
        "1 done, 1 unreachable</li></ul>"
        f"<table><thead><tr>{head.replace('->', '-&gt;')}</tr></thead><tbody>"
        '<tr class="ok"><td>localhost</td><td>done</td><td>-</td><td>-</td><td>none</td>'
        f"<td>-</td><td>{pe[0]}</td><td>detect 0.8s</td></tr>"
        '<tr class="bad"><td>gone1</td><td>UNREACHABLE</td><td>-</td><td>-</td><td>-</td>'
        f"<td>-</td><td>{pe[1]}</td><td>detect 0.5s</td></tr>"
        "</tbody></table><h2>Details</h2><ul>"
        f"<li>localhost: no perf events: {NO_PERF.replace(chr(39), '&#x27;')}</li>"
        f"<li>gone1: unreachable in detect, task &#x27;{DETECT_TASK}&#x27;: "
        "&lt;refused&gt; &amp; &#x27;gone&#x27;</li></ul></body></html>\n"
    )


def test_a_page_without_details_or_hosts() -> None:
    rep = configure_check_report()
    del rep["hosts"][0]["perf_evidence"]  # its detail line is the only one
    page = report.render_html(rep)
    assert "<h2>Details</h2>" not in page
    assert page.endswith("</tbody></table></body></html>\n")
    rep["hosts"] = []
    rep["summary"] = {}
    assert report.render_table(rep) == (
        "run 20261126T100000Z: damon-fleet configure --check on /inv.yml: successful; "
        "no hosts\n\nno hosts\n"
    )
    assert "<tbody></tbody>" in report.render_html(rep)


# ---------------------------------------------------------------------------------- cells


def test_cells_of_every_kind_of_row() -> None:
    rep = deploy_report()
    lab1 = copy.deepcopy(rep["hosts"][0])
    lab1["kernel"].update(already_done=True, reboot_required=True, after=None)
    lab1["gate"] = {"passed": False, "checks": []}
    lab1["perf"] = {
        "classification": "supported",
        "source": "pinned",
        "events": [
            {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 3, "config2": 0},
            {"type": 11, "config": "0x1", "config1": None, "config2": 2},
        ],
    }
    lab1["damon"] = {"state": "off", "kdamonds": [{"state": "off"}, {"state": "off"}]}
    lab1["phase_seconds"] = {"install": 9.96, "reboot": 10, "gate": None}
    lab1["overhead"] = {"seconds": 2.04, "bare_seconds": 19.96, "percent": 10.2}
    cells = report.cells(lab1)
    assert {k: v for k, v in cells.items() if k != "perf_effective"} == {
        "host": "lab1",
        "outcome": "done",
        "kernel": f"{BEFORE} -> ? (already done) (reboot required)",
        "gate": "FAILED",
        "perf": "supported (pinned): cpu type=4 config=0x1cd config1=0x3 config2=0x0; "
        "? type=11 config=0x1 config1=None config2=0x2",
        "damon": "off (2 kdamonds)",
        "time": "install 10.0s, reboot 10s, gate -, tool 2.0s = 10.2% over install + reboot 20s",
    }
    lab1.update(kernel={"before": None, "after": None}, perf={"classification": None},
                damon={"state": None, "kdamonds": []}, phase_seconds={}, overhead=None,
                stage_seconds={"rollout": 3, "build": 12.25})  # fmt: skip
    cells = report.cells(lab1)
    assert (cells["kernel"], cells["perf"], cells["damon"], cells["time"]) == (
        "?",
        "?",
        "?",
        "rollout 3.0s, build 12s",
    )
    lab1["outcome"] = "unreachable"
    assert report.cells(lab1)["outcome"] == "UNREACHABLE"
    lab1["outcome"] = "interrupted"
    assert report.cells(lab1)["outcome"] == "interrupted"


def test_format_event_and_damon_state() -> None:
    assert report.format_event({"type": 8}) == "? type=8 config=None config1=None config2=None"
    assert report.damon_state([{"state": "off"}]) == "off"
    assert report.damon_state([{"state": "off"}, {}]) == "mixed"
    assert report.damon_state([{}]) == "None"


# -------------------------------------------------------------------------------- details


def test_details_of_a_changed_row() -> None:
    rep = deploy_report()
    row = copy.deepcopy(rep["hosts"][1])
    row["failure"] = {"stage": None, "phase": None, "task": "t", "reason": "r" * 500,
                      "unreachable": True}  # fmt: skip
    row["last_task"] = {"stage": None, "phase": "install", "task": "x"}
    row["perf"] = {"classification": "none", "reason": "no PMU"}
    row["damon"] = {"perf_failures": [{"errno": 19, "cpu": 1}]}
    lines = report.details(row)
    assert lines[0].startswith("lab2: unreachable in ?, task 't': " + "r" * 300)
    assert lines[1:] == [
        "lab2: interrupted in ?/install, during task 'x'",
        f"lab2: gate check release failed: running {BEFORE}, expected {RELEASE}",
        "lab2: gate check layout failed: DAMON sysfs layout mainline, expected rfc-v3",
        f"lab2: rollout record error: {GATE_ERROR}",
        "lab2: no perf events: no PMU",
        'lab2: perf event create failed: {"cpu": 1, "errno": 19}',
    ]
    row.update(outcome="done", failure=None, last_task=None, perf={"classification": "none"})
    row["gate"]["checks"] = []
    row["damon"] = None
    assert report.details(row) == []


# --------------------------------------------------------------------------- run facts


def test_headline_and_run_facts_of_a_changed_report() -> None:
    rep = deploy_report()
    rep["run"].update(check=True, limit="lab1,lab2", id=None, inventory=None, status=None)
    rep["build"]["built"] = True
    rep["timing"].update(total_seconds=301.0, rollout_seconds=250.44)
    rep["bad_records"] = [{"path": "/s/x.json", "problem": "format: 2 is not 1"}]
    lines = report.render_table(rep).splitlines()
    assert lines[:7] == [
        "run ?: damon-fleet deploy --check --limit lab1,lab2 on ?: ?; "
        "1 done, 1 failed, 1 not reached",
        f"build: {RELEASE} (built) on localhost",
        "time: build 8.8s, rollout and configuration 250s, total 301s",
        "batch 1: lab1 in 165s",
        "batch 2: lab2",
        "unusable rollout record /s/x.json: format: 2 is not 1",
        "",
    ]


def test_the_run_wide_events_the_playbooks_emit() -> None:
    run: dict[str, Any] = {}
    batches: dict[int, dict[str, Any]] = {}
    for found in (
        {"event": "batch_done", "batch": 2, "seconds": 12.5},
        {"event": "batch_start", "batch": "3", "hosts": ["lab3", "lab4", " "]},
        {"event": "batch_start", "batch": "three", "hosts": ["lab5"]},
        {"event": "build", "seconds": "8.8", "result": "up_to_date", "kernel_release": "6.1"},
        {"event": "build", "result": "built"},
        {"event": "timing", "total_seconds": 301.2, "rollout_seconds": "250.4"},
        {"event": "phase", "phase": "gate"},
    ):
        report._marker(found, run, batches)
    assert run == {
        "build_seconds": 8.8,
        "build_message": "build: 8.8 s (up to date, skipped 6.1)",
        "total_seconds": 301.2,
        "rollout_seconds": 250.4,
    }
    assert batches == {
        2: {"batch": 2, "hosts": [], "seconds": 12.5},
        3: {"batch": 3, "hosts": ["lab3", "lab4"], "seconds": None},
    }


# ------------------------------------------------------------------------------- outcome


@pytest.mark.parametrize(
    ("stats", "info", "canceled", "outcome"),
    [
        ({"dark": {"h": 1}, "failures": {"h": 1}, "processed": {"h": 1}}, {}, False,
         "unreachable"),
        ({"failures": {"h": 1}, "processed": {"h": 1}}, {}, False, "failed"),
        ({"processed": {"h": 1}}, {}, True, "done"),
        ({"processed": {"x": 1}}, {}, False, "not_reached"),
        ({}, None, False, "not_reached"),
        (None, None, True, "not_reached"),
        (None, {"failures": [{"unreachable": True}, {"unreachable": False}]}, False, "failed"),
        (None, {"failures": [{"unreachable": False}, {"unreachable": True}]}, True,
         "unreachable"),
        (None, {"failures": []}, True, "interrupted"),
        (None, {"failures": []}, False, "done"),
    ],
)  # fmt: skip
def test_outcome(stats: Any, info: Any, canceled: bool, outcome: str) -> None:
    assert report._outcome("h", info, stats, canceled) == outcome


# -------------------------------------------------------------------------- fleet status


def test_fleet_status_rows_and_renderings() -> None:
    deploy = deploy_report()
    verify = report.build_report(
        run_info("verify", status="failed", started="2026-11-26T09:00:00Z"),
        events("localhost-verify-failed.json"),
        [],
        [],
    )
    unreachable = unreachable_report()
    unreachable["run"]["finished"] = "2026-11-30T20:34:03Z"
    rows = report.fleet_status([unreachable, deploy, verify], records())
    assert rows == [
        {
            "host": "gone1",
            "kernel": None,
            "damon": None,
            "perf_effective": None,
            "classification": None,
            "rollout": None,
            "seen": "2026-11-30T20:34:03Z",
            "outcome": "unreachable (detect)",
        },
        {
            "host": "lab1",
            "kernel": RELEASE,
            "damon": None,
            "perf_effective": None,
            "classification": None,
            "rollout": f"done {RELEASE}",
            "seen": "2026-11-26T10:40:00Z",
            "outcome": "done (deploy)",
        },
        {
            "host": "lab2",
            "kernel": BEFORE,
            "damon": None,
            "perf_effective": None,
            "classification": None,
            "rollout": f"failed {RELEASE}",
            "seen": "2026-11-26T10:40:00Z",
            "outcome": "failed (deploy)",
        },
        {
            "host": "lab3",
            "kernel": None,
            "damon": None,
            "perf_effective": None,
            "classification": None,
            "rollout": None,
            "seen": None,
            "outcome": None,
        },
        {
            "host": "localhost",
            "kernel": "6.18.44-fc-v857",
            "damon": "on",
            "perf_effective": "no",
            "classification": "none",
            "rollout": None,
            "seen": "2026-11-30T20:34:03Z",
            "outcome": "done (detect)",
            "perf_evidence": NO_EVENT_EVIDENCE,
        },
    ]
    markdown = report.render_status(rows, "markdown").splitlines()
    # perf_effective's display is its own contract (test_report.py): here only that "no"
    # and None (localhost, gone1) show differently; every other cell exactly
    pe = [line.split(" | ")[3] for line in markdown[2:]]
    assert pe[4] != pe[0] and pe[0] == pe[1] == pe[2] == pe[3]
    assert markdown == [
        "| host | kernel | DAMON | perf_effective | perf | rollout | last seen | last outcome |",
        "|---|---|---|---|---|---|---|---|",
        f"| gone1 | - | - | {pe[0]} | - | - | 2026-11-30T20:34:03Z | unreachable (detect) |",
        f"| lab1 | {RELEASE} | - | {pe[1]} | - | done {RELEASE} | 2026-11-26T10:40:00Z "
        "| done (deploy) |",
        f"| lab2 | {BEFORE} | - | {pe[2]} | - | failed {RELEASE} | 2026-11-26T10:40:00Z "
        "| failed (deploy) |",
        f"| lab3 | - | - | {pe[3]} | - | - | - | - |",
        f"| localhost | 6.18.44-fc-v857 | on | {pe[4]} | none | - | 2026-11-30T20:34:03Z "
        "| done (detect) |",
    ]
    table = report.render_status(rows).splitlines()
    assert table[0].startswith("host       kernel ") and table[1].startswith("---------  ")
    assert [line.split()[0] for line in table[2:]] == [r["host"] for r in rows]
    assert report.render_status(rows, "json") == json.dumps(rows, indent=2, sort_keys=True) + "\n"
    assert report.render_status([]) == "no host seen yet\n"
    assert report.render_status([], "markdown") == (
        "| host | kernel | DAMON | perf_effective | perf | rollout | last seen | last outcome |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )


def test_fleet_status_of_two_runs_at_the_same_time_takes_the_later_one() -> None:
    first = configure_check_report()
    first["run"]["finished"] = "2026-11-26T16:00:00Z"
    first["hosts"][0]["damon"]["check_mode"] = False
    second = copy.deepcopy(first)
    second["hosts"][0]["damon"]["state"] = "off"
    assert report.fleet_status([first, second])[0]["damon"] == "off"
    assert report.fleet_status([second, first])[0]["damon"] == "on"


def test_fleet_status_from_a_report_alone() -> None:
    deploy = deploy_report()
    deploy["hosts"].insert(0, deploy["hosts"].pop())  # lab3 (not reached) first
    rows = {r["host"]: r for r in report.fleet_status([deploy])}
    assert [(h, r["kernel"], r["outcome"]) for h, r in rows.items()] == [
        ("lab1", RELEASE, "done (deploy)"),
        ("lab2", BEFORE, "failed (deploy)"),
        ("lab3", None, None),
    ]
    assert rows["lab1"]["rollout"] is None  # the rollout column comes from the records


def test_an_older_record_does_not_override_newer_values() -> None:
    deploy = deploy_report()  # finished 2026-11-26T10:40:00Z
    newer = {"host": "lab1", "updated_at": "2026-11-26T12:00:00Z", "status": "done",
             "kernel_after": "new", "kernel_release": "r2"}  # fmt: skip
    older = {**newer, "updated_at": "2026-11-26T09:00:00Z", "status": "failed",
             "kernel_after": "old", "kernel_release": None}  # fmt: skip
    rows = {r["host"]: r for r in report.fleet_status([deploy], [newer, older])}
    assert (rows["lab1"]["kernel"], rows["lab1"]["rollout"]) == ("new", "done r2")
    rows = {r["host"]: r for r in report.fleet_status([deploy], [older])}
    assert (rows["lab1"]["kernel"], rows["lab1"]["rollout"]) == (RELEASE, "failed")


def test_fleet_status_keeps_the_newest_value_and_ignores_check_runs() -> None:
    old = configure_check_report()
    old["run"]["finished"] = "2026-11-26T16:00:00Z"
    old["hosts"][0]["damon"]["check_mode"] = False
    new = copy.deepcopy(old)
    new["run"]["finished"] = "2026-11-27T16:00:00Z"
    new["hosts"][0]["damon"]["state"] = "off"
    new["hosts"][0]["perf_effective"] = True
    check = copy.deepcopy(new)
    check["run"]["finished"] = "2026-11-28T16:00:00Z"
    check["hosts"][0]["damon"].update(state="mixed", check_mode=True)
    for order in ([old, new, check], [check, new, old]):
        (row,) = report.fleet_status(order)
        assert (row["damon"], row["perf_effective"], row["seen"]) == (
            "off",
            True,
            "2026-11-28T16:00:00Z",
        )
    undated = copy.deepcopy(new)
    undated["run"]["finished"] = None
    assert report.fleet_status([undated])[0]["damon"] is None
    record = {"host": "localhost", "updated_at": "2026-11-29T00:00:00Z", "status": "done",
              "kernel_after": "7.0", "kernel_release": None}  # fmt: skip
    (row,) = report.fleet_status([new], [record])
    assert (row["kernel"], row["rollout"]) == ("7.0", "done")
    (row,) = report.fleet_status([], [{**record, "status": None}])
    assert row["rollout"] is None and row["kernel"] == "7.0"


# ------------------------------------------------------------------------ report_problem


def _bad(change: Any) -> str | None:
    rep = deploy_report()
    change(rep)
    return report.report_problem(rep)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.update(format=2), "format is 2, expected 1"),
        (lambda r: r.update(run=[]), "run is missing or not an object"),
        (lambda r: r["run"].update(status=1), "run.status is int, expected a string"),
        (lambda r: r["run"].update(started=1.5), "run.started is float, expected a string"),
        (lambda r: r["run"].update(id=7), "run.id is int, expected a string"),
        (lambda r: r["run"].update(command=["deploy"]), "run.command is list, expected a string"),
        (lambda r: r["run"].update(finished=False), "run.finished is bool, expected a string"),
        (lambda r: r.update(hosts={}), "hosts is missing or not a list"),
        (lambda r: r["hosts"].append(1), "hosts[3] is not an object"),
        (lambda r: r["hosts"][0].update(host=""), "hosts[0].host is not a host name"),
        (lambda r: r["hosts"][1].update(host=5), "hosts[1].host is not a host name"),
        (lambda r: r["hosts"][0].update(outcome="ok"),
         "hosts[0].outcome is 'ok', expected one of "
         "('done', 'failed', 'unreachable', 'not_reached', 'interrupted')"),
        (lambda r: r["hosts"][0].update(last_task=[]), "hosts[0].last_task is not an object"),
        (lambda r: r["hosts"][2].update(failure="x"), "hosts[2].failure is not an object"),
        (lambda r: r["hosts"][0].update(stage_seconds=[]),
         "hosts[0].stage_seconds is not an object"),
        (lambda r: r["hosts"][0].update(phase_seconds=1),
         "hosts[0].phase_seconds is not an object"),
        (lambda r: r["hosts"][0]["gate"].update(checks={"a": 1}),
         "hosts[0].gate.checks is not a list of objects"),
        (lambda r: r["hosts"][0]["gate"].update(checks=[{}, 1]),
         "hosts[0].gate.checks is not a list of objects"),
        (lambda r: r["hosts"][0].update(perf={"events": "x"}),
         "hosts[0].perf.events is not a list of objects"),
        (lambda r: r["hosts"][0].update(perf={"events": [{}, []]}),
         "hosts[0].perf.events is not a list of objects"),
        (lambda r: r["hosts"][0].update(damon={"kdamonds": {"a": 1}}),
         "hosts[0].damon.kdamonds is not a list"),
        (lambda r: r["hosts"][0].update(damon={"perf_failures": "x"}),
         "hosts[0].damon.perf_failures is not a list"),
        (lambda r: r.update(summary=[]), "summary is missing or not an object of lists"),
        (lambda r: r["summary"].update(done="lab1"),
         "summary is missing or not an object of lists"),
        (lambda r: r.update(batches="x"), "batches is not a list of objects"),
        (lambda r: r.update(batches=[1]), "batches is not a list of objects"),
        (lambda r: r["batches"][0].update(hosts="lab1"), "batches is not a list of objects"),
        (lambda r: r.update(build=[]), "build is not an object"),
        (lambda r: r.update(timing=1), "timing is not an object"),
        (lambda r: r.update(bad_records="x"), "bad_records is not a list of objects"),
        (lambda r: r.update(bad_records=[{}, 1]), "bad_records is not a list of objects"),
        (lambda r: r.update(bad_records=[{"path": "p"}], build=None, timing=None, batches=None),
         None),
    ],
)  # fmt: skip
def test_report_problem_names_the_first_bad_field(change: Any, problem: str | None) -> None:
    assert _bad(change) == problem


def test_report_problem_of_what_is_not_a_report() -> None:
    assert report.report_problem([]) == "not a JSON object but list"
    assert report.report_problem({"format": 1}) == "run is missing or not an object"
    assert report.report_problem({}) == "format is None, expected 1"
