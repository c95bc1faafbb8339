"""Live progress of a playbook run, built from ansible-runner events.

Pure: :class:`Progress` takes the event dicts ansible-runner hands its ``event_handler``
(``{"event": ..., "created": ..., "event_data": {...}}``) one by one and returns the plain
lines worth printing; :meth:`Progress.bar` renders the one-line status (progress bar,
elapsed time, stage, batch, the hosts at work and their phase) for a terminal. No I/O,
but for :meth:`Progress.poll`, which reads the log of a running kernel build
(:mod:`damon_fleet.build_progress`) and says how far it is.

Stages, rollout phases, batches and the build's time come from the structured events the
playbooks and roles emit on purpose (:mod:`damon_fleet.events`), never from task names,
task files or messages: renaming a task changes no line printed here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from damon_fleet import events as ev
from damon_fleet.build_progress import BuildWatch, eta_seconds
from damon_fleet.events import LAB_STAGES, STAGES

COMMAND_STAGES: dict[str, tuple[str, ...]] = {
    "deploy": STAGES,
    "detect": ("detect",),
    "configure": ("configure",),
    "verify": ("verify",),
    "bench": ("bench",),
    "lab up": LAB_STAGES,
}
# Without a terminal, a line on the kernel build's progress at most this often (seconds).
PLAIN_EVERY = 30.0
RESULT_EVENTS = (
    "runner_on_ok",
    "runner_on_failed",
    "runner_on_skipped",
    "runner_on_unreachable",
    "runner_item_on_ok",
    "runner_item_on_failed",
    "runner_item_on_skipped",
)

Event = Mapping[str, Any]


def event_time(event: Event) -> float | None:
    """The event's ``created`` stamp as a POSIX timestamp (None when missing or bad)."""
    created = event.get("created")
    if not isinstance(created, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(created)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def result_message(res: Any) -> str:
    """A one-line reason from a module result (``msg``, else stderr)."""
    if not isinstance(res, Mapping):
        return ""
    msg = res.get("msg")
    if isinstance(msg, list):
        msg = "; ".join(str(m) for m in msg)
    if not msg:
        msg = res.get("stderr") or res.get("reason") or ""
    return " ".join(str(msg).split())


def shorten(text: str, limit: int = 240) -> str:
    """*text* cut to *limit* characters (``...`` marks the cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


@dataclass
class HostProgress:
    """Where one host is: stage, phase, current task, since when; whether it failed."""

    stage: str | None = None
    phase: str | None = None
    task: str | None = None
    since: float | None = None
    failed: bool = False
    unreachable: bool = False
    reason: str | None = None
    message: str | None = None


@dataclass
class Progress:
    """The progress state machine. ``stage_hosts`` maps a host stage (rollout, detect,
    configure, verify) to the hosts the run targets in it; other stages count as one unit.
    """

    stages: Sequence[str]
    stage_hosts: Mapping[str, Sequence[str]] = field(default_factory=dict)
    started: float | None = None
    now: float | None = None
    stage: str | None = None
    play: str | None = None
    play_uuid: str | None = None
    batch: int | None = None
    batch_hosts: list[str] = field(default_factory=list)
    hosts: dict[str, HostProgress] = field(default_factory=dict)
    done: dict[str, set[str]] = field(default_factory=dict)
    stages_done: set[str] = field(default_factory=set)
    # The hosts at work in the current play, each with the stage of its last task.
    play_hosts: dict[str, str | None] = field(default_factory=dict)
    finished: bool = False
    failed_hosts: list[str] = field(default_factory=list)
    # The kernel build's log (a build_log event), read by poll(); when poll() last said
    # how far the build is.
    build_event: dict[str, Any] | None = None
    build: BuildWatch | None = None
    build_said: float | None = None

    # --- feeding -------------------------------------------------------------------------

    def _stamp(self) -> str:
        return f"[{format_elapsed(self.elapsed())}]"

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return max(0.0, (now if now is not None else (self.now or self.started)) - self.started)

    def _enter_stage(self, stage: str) -> list[str]:
        if stage == self.stage:
            return []
        lines = []
        if self.stage is not None:
            self._finish_stage(self.stage)
        self._end_build()
        self.stage = stage
        self.batch = None
        self.batch_hosts = []
        lines.append(f"{self._stamp()} {stage}")
        return lines

    def _end_build(self) -> None:
        self.build_event = None
        if self.build is not None:
            self.build.finished = True

    def _finish_stage(self, stage: str) -> None:
        if stage in self.stages and self.stages.index(stage) >= 0:
            self.stages_done.add(stage)
            self.done.setdefault(stage, set()).update(self.stage_hosts.get(stage, ()))

    def _host_done(self, stage: str | None, hosts: Sequence[str] | set[str]) -> None:
        if stage is not None:
            self.done.setdefault(stage, set()).update(hosts)

    def feed(self, event: Event) -> list[str]:
        """Take one runner event; return the lines to print for it (often none)."""
        stamp = event_time(event)
        if stamp is not None:
            if self.started is None:
                self.started = stamp
            self.now = stamp
        kind = str(event.get("event") or "")
        data = event.get("event_data") or {}
        if not isinstance(data, Mapping):
            data = {}
        if kind == "playbook_on_play_start":
            return self._play_start(data)
        if kind == "playbook_on_stats":
            return self._stats(data)
        host = data.get("host")
        if not isinstance(host, str) or not kind.startswith("runner_"):
            return []
        found = ev.marker(event)
        if found is not None:
            return self._marker(host, found)
        self.play_hosts[host] = self.stage
        stage = self.stage
        state = self.hosts.setdefault(host, HostProgress())
        if kind == "runner_on_start":
            if state.stage != stage:
                # A host entering the rollout is at its batch's own tasks until its role
                # says which phase it is in.
                state.stage, state.since = stage, self.now
                state.phase = "batch" if stage == "rollout" else stage
            state.task = str(data.get("task") or "")
            return []
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            return self._failure(host, state, kind, data)
        return []

    def _failure(
        self, host: str, state: HostProgress, kind: str, data: Mapping[str, Any]
    ) -> list[str]:
        stage = self.stage
        reason = result_message(data.get("res"))
        if state.failed and state.stage == stage and reason == state.message:
            # A rescue re-raising the failure it caught: said already.
            return []
        state.failed = True
        state.message = reason
        state.unreachable = kind == "runner_on_unreachable"
        state.reason = f"{data.get('task')}: {reason}" if reason else str(data.get("task"))
        if host not in self.failed_hosts:
            self.failed_hosts.append(host)
        what = "UNREACHABLE" if state.unreachable else "FAILED"
        where = f"{stage}/{state.phase}" if stage == "rollout" else str(stage)
        return [f"{self._stamp()} {host} {what} in {where}: {shorten(state.reason)}"]

    def _marker(self, host: str, found: Mapping[str, Any]) -> list[str]:
        """The lines of one structured event (:mod:`damon_fleet.events`)."""
        kind = found["event"]
        if kind == "stage":
            stage = found.get("stage")
            if stage not in ev.KNOWN_STAGES:
                return []
            lines = self._enter_stage(stage)
            vms = ev.batch_hosts({"hosts": found.get("vms")})
            return [f"{line} {', '.join(vms)}" for line in lines] if vms else lines
        if kind == "phase":
            phase = str(found.get("phase") or "")
            state = self.hosts.setdefault(host, HostProgress())
            if (state.stage, state.phase) == (self.stage, phase):
                return []
            state.stage, state.phase, state.since = self.stage, phase, self.now
            # After a failure only the rescue runs (recording, re-raising): no phase.
            if self.stage == "rollout" and phase != "batch" and not state.failed:
                return [f"{self._stamp()} {host}: {phase}"]
            return []
        if kind == "batch_start":
            self.batch = ev.batch_number(found)
            self.batch_hosts = ev.batch_hosts(found)
            return [f"{self._stamp()} batch {self.batch}: {', '.join(self.batch_hosts)}"]
        if kind == "batch_done":
            self._host_done("rollout", self.batch_hosts)
            seconds = ev.number(found.get("seconds"))
            took = ev.seconds_text(seconds) if seconds is not None else "?"
            return [f"{self._stamp()} batch {ev.batch_number(found)} done in {took} s"]
        if kind == "build_log":
            self._end_build()
            self.build_event = dict(found)
            self.build = None
            return []
        if kind == "build":
            self._end_build()
            line = ev.build_line(found)
            return [f"{self._stamp()} {line}"] if line else []
        return []

    def _play_start(self, data: Mapping[str, Any]) -> list[str]:
        lines: list[str] = []
        uuid = data.get("play_uuid") or data.get("uuid")
        # A new play, or the same play again (the next batch of a serial play): the hosts of
        # the last one are done with the stage they worked in.
        for host, stage in self.play_hosts.items():
            self._host_done(stage, [host])
        self.play_hosts = {}
        self.play_uuid = str(uuid) if uuid is not None else None
        self.play = str(data.get("play") or data.get("name") or "")
        return lines

    def _stats(self, data: Mapping[str, Any]) -> list[str]:
        if self.stage is not None:
            self._finish_stage(self.stage)
        self._end_build()
        self.finished = True
        failures = data.get("failures") or {}
        dark = data.get("dark") or {}
        processed = data.get("processed") or {}
        bad = sorted(set(failures) | set(dark))
        ok = sorted(h for h in processed if h not in bad)
        text = f"{self._stamp()} finished: {len(ok)} ok"
        if bad:
            text += f", {len(bad)} failed ({', '.join(bad)})"
        return [text]

    # --- the kernel build -----------------------------------------------------------------

    def poll(self, now: float, plain: bool = False) -> list[str]:
        """Read what the running kernel build's log gained (I/O). Returns the line saying
        what the build is expected to make, when it starts, and with *plain* (no terminal,
        no bar) a line on its progress at most every :data:`PLAIN_EVERY` seconds."""
        if self.build is None and self.build_event is not None:
            self.build = BuildWatch.from_event(self.build_event, started=now)
            self.build_event = None
            if self.build is not None:
                self.build_said = now
                expected = self.build.expected
                what = (
                    f"{expected.count} objects expected ({expected.source})"
                    if expected is not None
                    else "no object count to expect"
                )
                return [f"[{format_elapsed(self.elapsed(now))}] kernel build: {what}"]
        build = self.build
        if build is None or build.finished:
            return []
        build.poll()
        if not plain or (self.build_said is not None and now - self.build_said < PLAIN_EVERY):
            return []
        self.build_said = now
        return [f"[{format_elapsed(self.elapsed(now))}] kernel build: {build_text(build, now)}"]

    # --- rendering -----------------------------------------------------------------------

    def units(self) -> tuple[int, int]:
        """(done, total) units: one per targeted host of a host stage, one per other stage."""
        total = done = 0
        for stage in self.stages:
            hosts = list(self.stage_hosts.get(stage, ()))
            if hosts:
                total += len(hosts)
                done += len(self.done.get(stage, set()) & set(hosts))
            else:
                total += 1
                done += 1 if stage in self.stages_done else 0
        return done, total

    def fraction(self) -> float:
        if self.finished:
            return 1.0
        done, total = self.units()
        if self.build is not None and not self.build.finished:
            return min(total, done + self.build.fraction()) / total if total else 0.0
        return done / total if total else 0.0

    def active_hosts(self) -> list[tuple[str, HostProgress]]:
        """Hosts working in the current stage, not failed, not yet done with it."""
        stage_done = self.done.get(self.stage or "", set())
        return [
            (name, state)
            for name, state in sorted(self.hosts.items())
            if state.stage == self.stage and not state.failed and name not in stage_done
        ]

    def bar(self, width: int = 80, now: float | None = None) -> str:
        """One status line: ``[####....]  40% 01:02 rollout batch 1 | lab1 gate 00:12``."""
        fraction = self.fraction()
        cells = 20
        filled = round(fraction * cells)
        head = (
            f"[{'#' * filled}{'.' * (cells - filled)}] {int(fraction * 100):3d}% "
            f"{format_elapsed(self.elapsed(now))} {self.stage or 'starting'}"
        )
        if self.batch is not None and self.stage == "rollout":
            head += f" batch {self.batch}"
        if self.failed_hosts:
            head += f" ({len(self.failed_hosts)} failed)"
        if self.build is not None and not self.build.finished:
            head += f" {build_text(self.build, now if now is not None else (self.now or 0.0))}"
        parts = []
        reference = now if now is not None else self.now
        for name, state in self.active_hosts():
            since = state.since if state.since is not None else reference
            took = format_elapsed((reference or 0.0) - (since or 0.0))
            label = state.phase if state.stage == "rollout" else ""
            parts.append(" ".join(p for p in (name, label, took) if p))
        line = head + (" | " + ", ".join(parts) if parts else "")
        if len(line) > width:
            line = line[: max(0, width - 3)] + "..."
        return line


def build_text(build: BuildWatch, now: float) -> str:
    """``objects 812/1932 (previous build 00e15a08831efd42), ETA 03:10``."""
    expected = build.expected
    if expected is None:
        return f"objects {build.built} (no count to expect)"
    head = f"objects {build.built}/{expected.count} ({expected.source})"
    eta = eta_seconds(build.built, expected.count, now - build.started)
    return head + (f", ETA {format_elapsed(eta)}" if eta is not None else ", ETA ?")
