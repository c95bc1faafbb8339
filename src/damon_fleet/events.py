"""The structured events the playbooks and roles emit for the CLI, and how to read them.

Progress and the report never read task names, task files or messages (those are for
people, and renaming one changes no output of the CLI). What they need, the roles say on
purpose with an ``ansible.builtin.set_stats`` task whose data holds one mapping under
:data:`KEY`::

    - name: Mark the gate phase            # any name
      ansible.builtin.set_stats:
        data: {damon_fleet: {event: phase, phase: gate}}
        per_host: true
        aggregate: false

ansible-runner hands the task's result (``res.ansible_stats.data``) to the CLI in the
task's ``runner_on_ok`` event, as it happens. The events (:data:`KINDS`):

``stage``        ``stage``: one of :data:`KNOWN_STAGES`; the run is in that stage from here on
``phase``        ``phase``: one of :data:`PRE_PHASES` or ``kernel.rollout_state.PHASES``; the
                 event's host is in that phase of its rollout
``batch_start``  ``batch`` (number), ``hosts`` (the batch's hosts)
``batch_done``   ``batch``, ``seconds``
``build``        ``seconds``, ``result`` (one of :data:`BUILD_RESULTS`), ``kernel_release``
``timing``       ``total_seconds``, ``rollout_seconds``
``build_log``    ``log``, ``config``, ``builds_dir``: the kernel build writes its log there
                 from here on (:mod:`damon_fleet.build_progress` counts its objects)

``lab up`` has stages of its own (:data:`LAB_STAGES`); its ``boot`` stage names the VMs
it starts in ``vms`` (comma-separated).

Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEY = "damon_fleet"
STAGES = ("build", "rollout", "detect", "configure", "verify", "report")
# Stages of runs other than deploy's (playbooks/benchmark.yml).
OTHER_STAGES = ("bench",)
# The stages of `damon-fleet lab up` (playbooks/lab.yml, role lab_fleet).
LAB_STAGES = ("kernel", "image", "disk", "boot")
KNOWN_STAGES = STAGES + OTHER_STAGES + LAB_STAGES
# The rollout's phases before the rollout records' own (kernel.rollout_state.PHASES): "batch" for
# the rollout play's own tasks, "check" for the role's checks before anything changes.
PRE_PHASES = ("batch", "check")
BUILD_RESULTS = {
    "built": "built",
    "up_to_date": "up to date, skipped",
    "skipped": "skipped, no host to roll out to",
}
KINDS = ("stage", "phase", "batch_start", "batch_done", "build", "timing", "build_log")


def marker(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The damon-fleet event a runner event carries (a ``set_stats`` result with
    :data:`KEY` in its data, of a known kind), else None."""
    if event.get("event") != "runner_on_ok":
        return None
    data = event.get("event_data")
    res = data.get("res") if isinstance(data, Mapping) else None
    stats = res.get("ansible_stats") if isinstance(res, Mapping) else None
    values = stats.get("data") if isinstance(stats, Mapping) else None
    found = values.get(KEY) if isinstance(values, Mapping) else None
    if not isinstance(found, Mapping) or found.get("event") not in KINDS:
        return None
    return dict(found)


def number(value: Any) -> float | None:
    """A marker's number (Ansible may hand a templated one over as text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def batch_number(found: Mapping[str, Any]) -> int | None:
    value = number(found.get("batch"))
    return int(value) if value is not None else None


def batch_hosts(found: Mapping[str, Any]) -> list[str]:
    hosts = found.get("hosts")
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    if not isinstance(hosts, list):
        return []
    return [str(h).strip() for h in hosts if str(h).strip()]


def seconds_text(value: float) -> str:
    """Seconds as the playbooks print them (one decimal: ``8.8``, ``164.6``, ``12.0``)."""
    return str(round(value, 1))


def build_line(found: Mapping[str, Any]) -> str | None:
    """``build: 8.8 s (up to date, skipped 6.12.117-lab-...)`` of a ``build`` event."""
    seconds = number(found.get("seconds"))
    if seconds is None:
        return None
    what = BUILD_RESULTS.get(str(found.get("result")), str(found.get("result")))
    release = found.get("kernel_release")
    suffix = f" {release}" if isinstance(release, str) and release else ""
    return f"build: {seconds_text(seconds)} s ({what}{suffix})"
