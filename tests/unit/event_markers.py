"""The structured events a run emits today, added to a stream captured before they existed.

tests/fixtures/runner-events/lab-deploy-rollout-fallback.json is a REAL deploy on three
lab VMs, captured before the playbooks emitted damon-fleet's structured events
(src/damon_fleet/events.py). :func:`with_markers` inserts, into a copy of it, the
``set_stats`` results the current playbooks and roles emit, where they emit them:

* ``stage``: the first task of each stage's play (deploy.yml's last task before the build);
* ``build`` / ``batch_start`` / ``batch_done`` / ``timing``: beside the debug task that
  prints the same numbers for people (the numbers are read from that message);
* ``phase``: per host, the first task of each phase of roles/kernel_install (check: the
  rollout play's pre_tasks, after the batch is announced).

Only this test harness reads task files and messages, and only of that old stream; the
product reads the markers. Every other event stays as captured. Streams captured since
(the localhost ones) carry the real markers.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from conftest import FIXTURES

# (task file suffix of the task the phase marker precedes, phase)
PHASE_BEFORE = (
    ("roles/kernel_install/tasks/rollout.yml:21", "install"),
    ("roles/kernel_install/tasks/trial.yml:5", "reboot"),
    ("roles/kernel_install/tasks/trial.yml:49", "gate"),
    ("roles/kernel_install/tasks/promote.yml:2", "default"),
    ("roles/kernel_install/tasks/fallback.yml:5", "fallback"),
)
STAGE_PLAYS = {
    "Build the kernel with the DAMON series": "build",
    "Take the build to roll out": "rollout",
    "Detect each host's perf configuration for DAMON": "detect",
    "Configure DAMON's perf-event access check": "configure",
    "Verify DAMON on every configured host": "verify",
    "Report the rollout": "report",
}


def marker_event(
    host: str, created: str, data: Mapping[str, Any], per_host: bool = False
) -> dict[str, Any]:
    """A ``runner_on_ok`` of an ``ansible.builtin.set_stats`` task, as ansible-runner
    hands it over (compare the localhost fixtures)."""
    task_uuid = str(uuid.uuid4())
    return {
        "uuid": str(uuid.uuid4()),
        "event": "runner_on_ok",
        "created": created,
        "event_data": {
            "task": "Say what happens (inserted)",
            "task_uuid": task_uuid,
            "task_action": "ansible.builtin.set_stats",
            "resolved_action": "ansible.builtin.set_stats",
            "host": host,
            "res": {
                "changed": False,
                "ansible_stats": {
                    "data": {"damon_fleet": dict(data)},
                    "per_host": per_host,
                    "aggregate": False,
                },
            },
        },
    }


def _msg(event: Mapping[str, Any]) -> str:
    msg = event["event_data"]["res"]["msg"]
    first = msg[0] if isinstance(msg, list) else msg
    return " ".join(str(first).split())


def with_markers(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of *events* with the structured events of today's playbooks inserted."""
    out: list[dict[str, Any]] = []
    phase_seen: set[tuple[str, str]] = set()
    stages_seen: set[str] = set()
    for original in events:
        event = copy.deepcopy(dict(original))
        kind = event.get("event")
        data = event.get("event_data") or {}
        created = str(event.get("created"))
        path = str(data.get("task_path") or "")
        host = data.get("host")
        stage = STAGE_PLAYS.get(str(data.get("play"))) if kind == "playbook_on_play_start" else None
        if stage is not None and stage not in stages_seen:
            stages_seen.add(stage)
            mark = marker_event("localhost", created, {"event": "stage", "stage": stage})
            if stage == "build":  # deploy.yml's last task before the build play
                out.append(mark)
            else:  # the first task of the stage's play
                out += [event, mark]
                continue
        if kind == "runner_on_start" and isinstance(host, str):
            for suffix, phase in PHASE_BEFORE:
                if path.endswith(suffix) and (host, phase) not in phase_seen:
                    phase_seen.add((host, phase))
                    out.append(
                        marker_event(host, created, {"event": "phase", "phase": phase}, True)
                    )
        out.append(event)
        if kind != "runner_on_ok" or not str(data.get("task_action")).endswith("debug"):
            continue
        line = _msg(event)
        start = re.fullmatch(r"batch (\d+): (.*)", line)
        done = re.fullmatch(r"batch (\d+) done in ([0-9.]+) s", line)
        build = re.fullmatch(r"build: ([0-9.]+) s \((.*?)(?: (\S+))?\)", line)
        total = re.fullmatch(r"total ([0-9.]+) s; rollout and configuration ([0-9.]+) s", line)
        if start:
            hosts = [h.strip() for h in start.group(2).split(",")]
            number = int(start.group(1))
            out.append(
                marker_event(
                    str(host), created, {"event": "batch_start", "batch": number, "hosts": hosts}
                )
            )
            for name in hosts:
                phase_seen.difference_update({(name, p) for _, p in PHASE_BEFORE})
                out.append(marker_event(name, created, {"event": "phase", "phase": "check"}, True))
        elif done:
            out.append(
                marker_event(
                    str(host),
                    created,
                    {
                        "event": "batch_done",
                        "batch": int(done.group(1)),
                        "seconds": float(done.group(2)),
                    },
                )
            )
        elif build:
            what = {
                "up to date, skipped": "up_to_date",
                "built": "built",
                "skipped, no host to roll out to": "skipped",
            }[build.group(2)]
            out.append(
                marker_event(
                    str(host),
                    created,
                    {
                        "event": "build",
                        "seconds": float(build.group(1)),
                        "result": what,
                        "kernel_release": build.group(3),
                    },
                )
            )
        elif total:
            out.append(
                marker_event(
                    str(host),
                    created,
                    {
                        "event": "timing",
                        "total_seconds": float(total.group(1)),
                        "rollout_seconds": float(total.group(2)),
                    },
                )
            )
    return out


#: The lab deploy captured before the playbooks emitted the structured events.
OLD_LAB_STREAM = "lab-deploy-rollout-fallback.json"


def captured(name: str) -> list[dict[str, Any]]:
    """The events of tests/fixtures/runner-events/*name*: as captured, and for
    :data:`OLD_LAB_STREAM` with the structured events added (:func:`with_markers`)."""
    path = FIXTURES / "runner-events" / name
    found: list[dict[str, Any]] = json.loads(path.read_text())["events"]
    return with_markers(found) if name == OLD_LAB_STREAM else found
