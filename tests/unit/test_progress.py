"""Progress from REAL runner events (tests/fixtures/runner-events, see their ``_captured``):
localhost runs of detect/configure/verify, and a deploy on 3 lab VMs whose second batch
(lab2) failed its gate and fell back (captured before the playbooks emitted structured
events: tests/unit/event_markers.py adds them where today's playbooks emit them).
"""

from __future__ import annotations

import json

from conftest import FIXTURES
from event_markers import captured, marker_event

from damon_fleet.events import LAB_STAGES, STAGES
from damon_fleet.progress import Progress, event_time, format_elapsed

EVENTS = FIXTURES / "runner-events"


def events(name):
    """A captured stream (event_markers.captured)."""
    return captured(name)


def feed_all(progress, evs):
    lines = []
    for event in evs:
        lines += progress.feed(event)
    return lines


def test_real_detect_run_goes_to_100_percent():
    progress = Progress(stages=("detect",), stage_hosts={"detect": ["localhost"]})
    lines = feed_all(progress, events("localhost-detect.json"))
    assert lines == ["[00:00] detect", "[00:00] finished: 1 ok"]
    assert progress.finished and progress.fraction() == 1.0
    assert progress.done["detect"] == {"localhost"}
    assert progress.bar(80).startswith("[####################] 100% 00:00 detect")


def test_real_verify_failure_is_reported_with_its_task():
    progress = Progress(stages=("verify",), stage_hosts={"verify": ["localhost"]})
    lines = feed_all(progress, events("localhost-verify-failed.json"))
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1
    assert failed[0].startswith(
        "[00:00] localhost FAILED in verify: Check that nothing is left to write"
    )
    assert failed[0].endswith("...") and len(failed[0]) < 320  # long reasons are cut
    assert progress.failed_hosts == ["localhost"]
    assert lines[-1] == "[00:00] finished: 0 ok, 1 failed (localhost)"
    assert "(1 failed)" in progress.bar(120)


def test_real_interrupted_run_shows_the_host_still_at_work():
    progress = Progress(stages=("detect",), stage_hosts={"detect": ["localhost"]})
    feed_all(progress, events("localhost-detect-interrupted.json"))
    assert not progress.finished
    assert progress.fraction() == 0.0
    assert [name for name, _ in progress.active_hosts()] == ["localhost"]
    state = progress.hosts["localhost"]
    assert state.task == "Detect the perf event DAMON should use"
    assert progress.bar(200, now=progress.now + 65).endswith("| localhost 01:05")


def test_rollout_batches_phases_and_one_failure_line():
    progress = Progress(
        stages=("build", "rollout", "detect", "configure", "verify", "report"),
        stage_hosts={
            "rollout": ["lab1", "lab2", "lab3"],
            "detect": ["lab1", "lab2", "lab3"],
            "configure": ["lab1", "lab2", "lab3"],
            "verify": ["lab1", "lab2", "lab3"],
        },
    )
    seen = []
    bars = []
    for event in events("lab-deploy-rollout-fallback.json"):
        seen += progress.feed(event)
        if event["event"] == "runner_on_start" and event["event_data"]["host"] == "lab2":
            bars.append(progress.bar(200))
    text = "\n".join(seen)
    assert "build" in seen[0]
    assert "build: 8.8 s (up to date" in text
    assert "batch 1: lab1" in text and "batch 2: lab2" in text
    assert "batch 1 done in 164.6 s" in text
    # Each host walks through the phases of its rollout record, in order. The tasks it
    # skips (lab1's fallback, the checks after it) and the rescue that records lab2's
    # failure and re-raises it are no phases.
    lab1 = [line.split("lab1: ")[1] for line in seen if "] lab1: " in line]
    assert lab1 == ["check", "install", "reboot", "gate", "default"]
    lab2 = [line.split("lab2: ")[1] for line in seen if "] lab2: " in line]
    assert lab2 == ["check", "install", "reboot", "gate", "fallback"]
    failed = [line for line in seen if " FAILED " in line]
    assert len(failed) == 1
    assert "lab2 FAILED in rollout/fallback: Fail the host (the rollout stops)" in failed[0]
    # While lab2 rebooted, batch 2 was shown with lab2's phase, and lab1 counted as done.
    assert any("rollout batch 2" in bar and "lab2 reboot" in bar for bar in bars)
    assert progress.done["rollout"] >= {"lab1"}
    assert progress.failed_hosts == ["lab2"]
    assert seen[-1].endswith("finished: 2 ok, 1 failed (lab2)")


def test_units_count_hosts_per_host_stage_and_one_per_other_stage():
    progress = Progress(
        stages=("build", "rollout", "detect"),
        stage_hosts={"rollout": ["a", "b"], "detect": ["a", "b"]},
    )
    assert progress.units() == (0, 5)
    progress.stages_done.add("build")
    progress.done["rollout"] = {"a"}
    assert progress.units() == (2, 5)
    assert progress.fraction() == 0.4


def test_stages_and_phases_come_from_the_structured_events_only():
    progress = Progress(stages=("build", "rollout"), stage_hosts={"rollout": ["a"]})
    stamp = "2026-11-26T20:00:00+00:00"

    def task(host, name, action="ansible.builtin.command", path="/x/roles/kernel_install/x.yml"):
        data = {"host": host, "task": name, "task_action": action, "task_path": path}
        return [
            {"event": "runner_on_start", "created": stamp, "event_data": data},
            {"event": "runner_on_ok", "created": stamp, "event_data": {**data, "res": {}}},
        ]

    # Task names, files and roles that once meant a stage or phase mean nothing now.
    lines = []
    for event in task("a", "Gate the new kernel") + task(
        "a", "batch 1: a", "ansible.builtin.debug", "/x/playbooks/rollout.yml:3"
    ):
        lines += progress.feed(event)
    assert lines == [] and progress.stage is None and progress.batch is None
    lines += progress.feed(marker_event("localhost", stamp, {"event": "stage", "stage": "rollout"}))
    lines += progress.feed(
        marker_event("a", stamp, {"event": "batch_start", "batch": 1, "hosts": ["a"]})
    )
    lines += progress.feed(marker_event("a", stamp, {"event": "phase", "phase": "gate"}, True))
    lines += progress.feed(marker_event("a", stamp, {"event": "phase", "phase": "gate"}, True))
    for event in task("a", "anything"):
        lines += progress.feed(event)
    assert lines == ["[00:00] rollout", "[00:00] batch 1: a", "[00:00] a: gate"]
    assert progress.bar(200).endswith("rollout batch 1 | a gate 00:00")
    failed = {"host": "a", "task": "anything", "res": {"msg": "no"}}
    assert progress.feed({"event": "runner_on_failed", "created": stamp, "event_data": failed}) == [
        "[00:00] a FAILED in rollout/gate: anything: no"
    ]
    # an unknown stage or kind is no event
    assert progress.feed(marker_event("a", stamp, {"event": "stage", "stage": "x"})) == []
    assert progress.feed(marker_event("a", stamp, {"event": "nope"})) == []


def test_format_elapsed():
    assert format_elapsed(0) == "00:00"
    assert format_elapsed(75.9) == "01:15"
    assert format_elapsed(3723) == "1:02:03"


# --- the kernel build's objects ---------------------------------------------------------

# ~/.cache/damon-fleet/builds/a9b2c61ae1929d12/build.log, lines 58-60: 2 objects.
BUILD_LINES = """\
  CC      scripts/mod/empty.o
  HOSTCC  scripts/mod/mk_elfconfig
  CC      scripts/mod/devicetable-offsets.s
"""


def lab_marker_events(tmp_path):
    """The REAL events of lab up's marker tasks (localhost-lab-markers.json), the build
    log and config moved into *tmp_path* (a 2-option config: 5 objects expected)."""
    (tmp_path / "build.log").write_text("")
    (tmp_path / "config").write_text("CONFIG_DAMON=y\nCONFIG_DAMON_SYSFS=y\n")
    found = events("localhost-lab-markers.json")
    for event in found:
        stats = event["event_data"].get("res", {}).get("ansible_stats")
        data = stats["data"]["damon_fleet"] if stats else {}
        if data.get("event") == "build_log":
            data.update(log=str(tmp_path / "build.log"), config=str(tmp_path / "config"))
            data.pop("builds_dir")
    return found


def test_lab_up_stages_and_the_build_objects_with_an_eta(tmp_path):
    progress = Progress(stages=LAB_STAGES)
    found = lab_marker_events(tmp_path)
    at_build = next(i for i, e in enumerate(found) if "build_log" in json.dumps(e))
    assert feed_all(progress, found[: at_build + 1]) == ["[00:00] kernel"]
    start = event_time(found[at_build])
    assert progress.poll(start, plain=True) == [
        "[00:00] kernel build: 5 objects expected (estimate from .config)"
    ]
    (tmp_path / "build.log").write_text(BUILD_LINES)
    assert progress.poll(start + 10, plain=True) == []  # at most one line in 30 s
    assert progress.poll(start + 31, plain=True) == [
        "[00:31] kernel build: objects 2/5 (estimate from .config), ETA 00:46"
    ]
    assert progress.poll(start + 40, plain=False) == []  # a terminal has the bar
    assert progress.fraction() == (2 / 5) / len(LAB_STAGES)
    assert progress.bar(120, now=start + 40) == (
        "[##..................]  10% 00:40 kernel objects 2/5 (estimate from .config), "
        "ETA 01:00 | localhost 00:40"
    )
    lines = feed_all(progress, found[at_build + 1 :])
    assert lines[:3] == ["[00:03] image", "[00:03] disk", "[00:04] boot lab1, lab2"]
    assert progress.build is not None and progress.build.finished
    assert "objects" not in progress.bar(120)
    with (tmp_path / "build.log").open("a") as out:
        out.write(BUILD_LINES)
    assert progress.poll(start + 100, plain=True) == []  # a finished build is not read


def test_deploy_build_stage_shows_the_objects_until_the_build_event(tmp_path):
    (tmp_path / "build.log").write_text(BUILD_LINES)
    (tmp_path / "config").write_text("CONFIG_DAMON=y\nCONFIG_DAMON_SYSFS=y\n")
    progress = Progress(stages=STAGES)
    stamp = "2026-11-30T12:00:00+00:00"
    log = {"event": "build_log", "log": str(tmp_path / "build.log")}
    feed_all(
        progress,
        [
            marker_event("localhost", stamp, {"event": "stage", "stage": "build"}),
            marker_event("builder", "2026-11-30T12:00:05+00:00", log),
        ],
    )
    start = event_time({"created": "2026-11-30T12:00:05+00:00"})
    assert progress.poll(start) == [
        "[00:05] kernel build: 5 objects expected (estimate from .config)"
    ]
    progress.poll(start + 20)
    assert "build objects 2/5 (estimate from .config), ETA 00:30" in progress.bar(
        200, now=start + 20
    )
    build = {"event": "build", "seconds": 95.0, "result": "built"}
    lines = feed_all(progress, [marker_event("localhost", "2026-11-30T12:01:35+00:00", build)])
    assert lines == ["[01:35] build: 95.0 s (built)"]
    assert "objects" not in progress.bar(200, now=start + 95)
