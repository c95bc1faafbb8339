"""Events, not prose: renaming every task, play, task file, role and debug message of a
REAL captured stream changes no line of the CLI's progress and no part of its report.

The streams are tests/fixtures/runner-events: two lab deploys the CLI ran with today's
playbooks (interrupted by SIGINT, then resumed), the older lab deploy with the structured
events added where today's playbooks emit them (event_markers.py), and the localhost
runs. Task names are shown in
failure lines and reports (they are for people): the renamed ones are mapped back before
comparing, so everything else must be equal, character for character.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from conftest import FIXTURES
from event_markers import OLD_LAB_STREAM, captured, marker_event

from damon_fleet import events as ev
from damon_fleet import report
from damon_fleet.progress import COMMAND_STAGES, Progress

EVENTS = FIXTURES / "runner-events"
STREAMS = {
    OLD_LAB_STREAM: "deploy",
    "lab-deploy-interrupted.json": "deploy",
    "lab-deploy-resumed.json": "deploy",
    "localhost-configure-check.json": "configure",
    "localhost-detect.json": "detect",
    "localhost-detect-interrupted.json": "detect",
    "localhost-unreachable-detect.json": "detect",
    "localhost-unreachable-detect-interrupted.json": "detect",
    "localhost-verify-failed.json": "verify",
}


def stream(name: str) -> list[dict[str, Any]]:
    return captured(name)


def records(name: str = OLD_LAB_STREAM) -> list[dict[str, Any]]:
    """The rollout records of a lab deploy's stream (the two CLI runs share theirs, read
    after the resumed run)."""
    old = name == OLD_LAB_STREAM
    source = "lab-rollout-records.json" if old else "lab-deploy-resumed-records.json"
    found: list[dict[str, Any]] = json.loads((EVENTS / source).read_text())["records"]
    return found


def renamed(events: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """*events* with every task, play, task file, role and debug message renamed, and the
    new task names mapped to the old ones."""
    out = copy.deepcopy(list(events))
    names: dict[str, str] = {}
    back: dict[str, str] = {}
    for event in out:
        data = event.get("event_data")
        if not isinstance(data, dict):
            continue
        for key in ("task", "name"):
            if isinstance(data.get(key), str):
                old = data[key]
                # as long as the old name: long lines are cut at the same place
                new = names.setdefault(old, f"T{len(names):04d}".ljust(len(old), "~"))
                back[new] = old
                data[key] = new
        if isinstance(data.get("play"), str):
            data["play"] = f"Renamed play {abs(hash(data['play'])) % 10_000}"
        if isinstance(data.get("task_path"), str):
            data["task_path"] = f"/elsewhere/renamed/{abs(hash(data['task_path'])) % 997}.yml:1"
        if data.get("role"):
            data["role"] = "renamed_role"
        res = data.get("res")
        if str(data.get("task_action")).endswith("debug") and isinstance(res, dict):
            res["msg"] = "a renamed message for people"
    return out, back


def outputs(
    command: str, events: Sequence[Mapping[str, Any]], name: str
) -> tuple[list[str], list[str], str, str]:
    """(progress lines, status bars, report table, report JSON) of a stream."""
    hosts = sorted(
        {
            e["event_data"]["host"]
            for e in events
            if isinstance(e.get("event_data"), dict) and e["event_data"].get("host")
        }
    )
    stages = COMMAND_STAGES[command]
    progress = Progress(
        stages=stages,
        stage_hosts={s: hosts for s in ("rollout", "detect", "configure", "verify") if s in stages},
    )
    lines: list[str] = []
    bars: list[str] = []
    for event in events:
        lines += progress.feed(event)
        bars.append(progress.bar(300))
    run = {"id": "R", "command": command, "inventory": "/inv.yml", "status": "failed"}
    deploy = command == "deploy"
    rep = report.build_report(run, events, records(name) if deploy else [], hosts)
    return lines, bars, report.render_table(rep), report.render_json(rep)


def map_back(text: str, back: Mapping[str, str]) -> str:
    for new, old in back.items():
        text = text.replace(new, old)
    return text


@pytest.mark.parametrize(("name", "command"), sorted(STREAMS.items()))
def test_renaming_every_task_and_message_changes_no_output(name: str, command: str) -> None:
    events = stream(name)
    before = outputs(command, events, name)
    changed, back = renamed(events)
    assert len(back) > 3 and all(len(new) >= 5 for new in back)
    after = outputs(command, changed, name)
    assert [map_back(line, back) for line in after[0]] == before[0]
    assert [map_back(bar, back) for bar in after[1]] == before[1]
    assert map_back(after[2], back) == before[2]
    assert map_back(after[3], back) == before[3]
    # and the renaming did reach what is shown: failure lines name the new tasks
    if any("FAILED" in line or "UNREACHABLE" in line for line in before[0]):
        assert after[0] != before[0]


def test_the_lab_deploy_progress_is_what_it_was_before_the_events() -> None:
    """The lines the CLI printed for this deploy when progress still read task files and
    debug messages (its output then, kept here): the events give the same lines."""
    lines, _, table, _ = outputs("deploy", stream(OLD_LAB_STREAM), OLD_LAB_STREAM)
    fail = (
        "[05:34] lab2 FAILED in rollout/fallback: Fail the host (the rollout stops): "
        "kernel_install: lab2 failed the gate of 6.12.117-lab-perf-events-abi-0c853a0d "
        "(release: running 6.12.117-lab-1b9cc979, expected 6.12.117-lab-perf-events-abi-0c853a0d;"
        " layout: DAMON sysfs layout mainline..."
    )
    assert lines == [
        "[00:00] build",
        "[00:08] build: 8.8 s (up to date, skipped 6.12.117-lab-perf-events-abi-0c853a0d)",
        "[00:08] rollout",
        "[00:09] batch 1: lab1",
        "[00:09] lab1: check",
        "[00:25] lab1: install",
        "[01:53] lab1: reboot",
        "[02:33] lab1: gate",
        "[02:38] lab1: default",
        "[02:53] batch 1 done in 164.6 s",
        "[02:53] batch 2: lab2",
        "[02:53] lab2: check",
        "[03:07] lab2: install",
        "[04:27] lab2: reboot",
        "[05:17] lab2: gate",
        "[05:21] lab2: fallback",
        fail,
        "[05:34] finished: 2 ok, 1 failed (lab2)",
    ]
    assert "batch 1: lab1 in 165s" in table and "time: build 8.8s" in table


def test_a_lab_deploy_the_cli_ran_shows_its_batches_and_phases_from_its_own_events() -> None:
    """The two real lab deploys (today's playbooks emit every marker; none is added): the
    interrupted run shows the canary's batch to its end and the second batch's check, the
    resumed run finds the canary done and rolls out the second host, then configures."""
    lines, _, table, _ = outputs(
        "deploy", stream("lab-deploy-interrupted.json"), "lab-deploy-interrupted.json"
    )
    shown = [line.split("] ", 1)[1] for line in lines]
    assert shown == [
        "build",
        "build: 6.2 s (up to date, skipped 6.12.117-lab-perf-events-abi-00e15a08)",
        "rollout",
        "batch 1: lab1",
        "lab1: check",
        "lab1: install",
        "lab1: reboot",
        "lab1: gate",
        "lab1: default",
        "batch 1 done in 168.8 s",
        "batch 2: lab2",
        "lab2: check",
    ]
    # lab1's install and reboot began in this run: its overhead is this run's; lab2's
    # records come from the resumed run, after this one ended: none for it here
    row = {line.split()[0]: line for line in table.splitlines() if line.startswith("lab")}
    assert "tool 18s = 12.3% over install + reboot 150s" in row["lab1"]
    assert "tool" not in row["lab2"]

    lines, _, table, _ = outputs(
        "deploy", stream("lab-deploy-resumed.json"), "lab-deploy-resumed.json"
    )
    shown = [line.split("] ", 1)[1] for line in lines]
    assert shown[3:] == [
        "batch 1: lab1",
        "lab1: check",
        "batch 1 done in 8.2 s",
        "batch 2: lab2",
        "lab2: check",
        "lab2: install",
        "lab2: reboot",
        "lab2: gate",
        "lab2: default",
        "batch 2 done in 169.2 s",
        "detect",
        "configure",
        "verify",
        "report",
        "finished: 3 ok",
    ]
    row = {line.split()[0]: line for line in table.splitlines() if line.startswith("lab")}
    assert "(already done)" in row["lab1"] and "tool" not in row["lab1"]
    assert "tool 18s = 12% over install + reboot 151s" in row["lab2"]
    assert "batch 1: lab1 in 8.2s" in table and "batch 2: lab2 in 169s" in table


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_without_the_structured_events_no_stage_is_known(name: str) -> None:
    """Strip the set_stats results: no stage, phase or batch line is left (nothing else in
    the stream is read for them)."""
    events = [e for e in stream(name) if ev.marker(e) is None]
    lines, _, _, _ = outputs(STREAMS[name], events, name)
    assert not [line for line in lines if line.split("] ", 1)[1] in ev.STAGES]
    assert not [line for line in lines if "batch" in line or ": check" in line]
    facts = report.collect(events)
    assert facts["run"]["batches"] == [] and facts["run"]["build_seconds"] is None
    assert all(not info["stage_seconds"] for info in facts["hosts"].values())


@pytest.mark.parametrize(
    ("found", "kind"),
    [
        ({"event": "stage", "stage": "verify"}, "stage"),
        ({"event": "phase", "phase": "gate"}, "phase"),
        ({"event": "other"}, None),
        ("stage", None),
    ],
)
def test_marker_reads_only_damon_fleet_set_stats_data(found: Any, kind: str | None) -> None:
    event = marker_event("h", "2026-11-26T20:00:00+00:00", {})
    event["event_data"]["res"]["ansible_stats"]["data"]["damon_fleet"] = found
    assert (ev.marker(event) or {}).get("event") == kind
    event["event"] = "runner_on_start"
    assert ev.marker(event) is None
    assert ev.marker({"event": "runner_on_ok", "event_data": {"res": {"msg": found}}}) is None


def test_numbers_and_build_lines() -> None:
    assert ev.number("8.8") == 8.8 and ev.number(3) == 3.0
    assert ev.number(True) is None and ev.number("x") is None and ev.number(None) is None
    assert ev.batch_hosts({"hosts": "a, b,"}) == ["a", "b"]
    assert ev.batch_hosts({"hosts": 3}) == []
    assert ev.build_line({"seconds": 12, "result": "built", "kernel_release": "6.1"}) == (
        "build: 12.0 s (built 6.1)"
    )
    assert ev.build_line({"seconds": 0.04, "result": "skipped", "kernel_release": None}) == (
        "build: 0.0 s (skipped, no host to roll out to)"
    )
    assert ev.build_line({"result": "built"}) is None
