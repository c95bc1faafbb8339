"""The per-host report of a run, from ansible-runner events and the rollout records.

Pure functions, no I/O:

* :func:`collect` reads what the playbooks return in the events: ``perf_mem_facts``
  (``ansible_facts.damon_perf``: classification, reason, damon_perf_events, summary),
  ``damon_sysfs`` (layout, kdamonds, perf_effective with its perf_evidence,
  perf_failures, writes) in the
  configure and verify stages, the ``kernel_install_result`` and ``kernel_build_result``
  facts, the structured events of :mod:`damon_fleet.events` (stages, rollout phases,
  batches, build and run times; never task names or messages), failures and the final
  ``playbook_on_stats``;
* :func:`build_report` joins them with the rollout records (``kernel.rollout_state``, format 1:
  kernel before/after, gate checks, seconds per phase, error) into one JSON document;
* :func:`render_table`, :func:`render_markdown`, :func:`render_html` print it;
  :func:`fleet_status` folds several reports and the records into "the fleet as last seen".
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.evidence import (
    describe as describe_perf,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import PHASES

from damon_fleet import bench as bench_mod
from damon_fleet import events as ev
from damon_fleet.progress import (
    RESULT_EVENTS,
    event_time,
    result_message,
    shorten,
)

FORMAT = 1
OUTCOMES = ("done", "failed", "unreachable", "not_reached", "interrupted")
BAD_OUTCOMES = ("failed", "unreachable", "not_reached", "interrupted")
TABLE_COLUMNS = (
    ("host", "host"),
    ("outcome", "outcome"),
    ("kernel", "kernel before -> after"),
    ("gate", "gate"),
    ("perf", "perf (classification, events)"),
    ("damon", "DAMON"),
    ("perf_effective", "perf_effective"),
    ("time", "time per phase"),
)
STATUS_COLUMNS = (
    ("host", "host"),
    ("kernel", "kernel"),
    ("damon", "DAMON"),
    ("perf_effective", "perf_effective"),
    ("classification", "perf"),
    ("rollout", "rollout"),
    ("seen", "last seen"),
    ("outcome", "last outcome"),
)

Event = Mapping[str, Any]


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _action(data: Mapping[str, Any]) -> str:
    """The module name of a task, without its collection (``ansible.builtin.debug`` ->
    ``debug``)."""
    action = data.get("resolved_action") or data.get("task_action") or ""
    return str(action).rsplit(".", 1)[-1]


def _damon_result(res: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a damon_sysfs result the report shows (see its RETURN docs)."""
    kdamonds = res.get("kdamonds")
    out = {
        "layout": res.get("layout"),
        "kdamonds": kdamonds if isinstance(kdamonds, list) else None,
        "perf_effective": res.get("perf_effective"),
        "perf_failures": res.get("perf_failures") or [],
        "writes": len(res.get("writes") or []),
        "warnings": res.get("warnings") or [],
        "failed": bool(res.get("failed")),
        "msg": result_message(res) if res.get("failed") else None,
    }
    return _with_evidence(out, res)


def _with_evidence(out: dict[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """``out`` with the ``perf_evidence`` of ``source`` when it has one (results recorded
    before perf_effective had evidence, a bool, have none)."""
    evidence = source.get("perf_evidence")
    if isinstance(evidence, Mapping):
        out["perf_evidence"] = dict(evidence)
    return out


def _yes_no(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"


def _perf_text(row: Mapping[str, Any], with_reason: bool) -> str:
    """perf_effective as damon.evidence describes it (a stand-in kernel is always named);
    a result recorded before it had evidence holds a bool (or nothing)."""
    value = row.get("perf_effective")
    if value is None or isinstance(value, bool):
        return _yes_no(value)
    text: str = describe_perf(
        {"perf_effective": row.get("perf_effective"), "perf_evidence": row.get("perf_evidence")},
        with_reason,
    )
    return text


def _perf_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``ansible_facts.damon_perf`` (perf_mem_facts RETURN) the report shows."""
    return {
        "classification": facts.get("classification"),
        "reason": facts.get("reason"),
        "source": facts.get("source"),
        "events": facts.get("damon_perf_events") or [],
        "summary": facts.get("summary"),
        "kernel_release": facts.get("kernel_release"),
        "pmu_name": facts.get("pmu_name"),
    }


def task_stages(events: Sequence[Event]) -> dict[str, str | None]:
    """The stage of each task (by ``task_uuid``): the stage the last ``stage`` event set
    when the task started; a task emitting a ``stage`` event is in the stage it names."""
    stages: dict[str, str | None] = {}
    current: str | None = None
    for event in events:
        data = event.get("event_data")
        if not isinstance(data, Mapping):
            continue
        uuid = data.get("task_uuid")
        found = ev.marker(event)
        if (
            found is not None
            and found["event"] == "stage"
            and found.get("stage") in ev.KNOWN_STAGES
        ):
            current = str(found["stage"])
            if isinstance(uuid, str):
                stages[uuid] = current
        elif isinstance(uuid, str) and uuid not in stages:
            stages[uuid] = current
    return stages


def collect(events: Iterable[Event]) -> dict[str, Any]:
    """What the events of one run say, per host and for the run as a whole."""
    events = list(events)
    stage_of_task = task_stages(events)
    hosts: dict[str, dict[str, Any]] = {}
    run: dict[str, Any] = {
        "build": None,
        "build_seconds": None,
        "batches": [],
        "total_seconds": None,
        "rollout_seconds": None,
        "stats": None,
        "tasks_started": 0,
        "first_event": None,
        "last_event": None,
    }
    batches: dict[int, dict[str, Any]] = {}
    stage: str | None = None
    first = last = None
    for event in events:
        stamp = event_time(event)
        if stamp is not None:
            first = stamp if first is None else min(first, stamp)
            last = stamp if last is None else max(last, stamp)
        kind = str(event.get("event") or "")
        data = event.get("event_data") or {}
        if not isinstance(data, Mapping):
            continue
        task_stage = stage_of_task.get(str(data.get("task_uuid")), stage)
        if kind == "playbook_on_task_start":
            run["tasks_started"] += 1
            stage = task_stage
            continue
        if kind == "playbook_on_stats":
            run["stats"] = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
            }
            run["stats"]["processed"] = dict(data.get("processed") or {})
            continue
        host = data.get("host")
        if not isinstance(host, str) or not kind.startswith("runner_"):
            continue
        info = hosts.setdefault(
            host,
            {
                "perf": None,
                "configure": None,
                "verify": None,
                "damon_wanted": None,
                "kernel_install_result": None,
                "reboot_required": None,
                "build": None,
                "stage_times": {},
                "failures": [],
                "last_task": None,
                "phase": None,
            },
        )
        if task_stage != "rollout":
            info["phase"] = None
        elif info["phase"] is None:
            info["phase"] = "batch"
        found = ev.marker(event)
        if found is not None and found["event"] == "phase" and task_stage == "rollout":
            info["phase"] = str(found.get("phase") or "") or None
        elif found is not None:
            _marker(found, run, batches)
        phase = info["phase"] if task_stage == "rollout" else None
        if kind == "runner_on_start":
            info["last_task"] = {"stage": task_stage, "phase": phase, "task": data.get("task")}
        if task_stage is not None and stamp is not None:
            span = info["stage_times"].setdefault(task_stage, [stamp, stamp])
            span[0], span[1] = min(span[0], stamp), max(span[1], stamp)
        if kind not in RESULT_EVENTS or kind.startswith("runner_item_"):
            continue
        res = data.get("res") or {}
        if not isinstance(res, Mapping):
            res = {}
        action = _action(data)
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            info["failures"].append(
                {
                    "stage": task_stage,
                    "phase": phase,
                    "task": data.get("task"),
                    "msg": result_message(res),
                    "unreachable": kind == "runner_on_unreachable",
                    "at": _iso(stamp),
                }
            )
        if kind == "runner_on_skipped":
            if task_stage in ("configure", "verify") and action in (
                "include_role",
                "damon_sysfs",
            ):
                info["damon_wanted"] = bool(info["damon_wanted"])
            continue
        if action == "perf_mem_facts":
            facts = (res.get("ansible_facts") or {}).get("damon_perf")
            if isinstance(facts, Mapping):
                info["perf"] = _perf_facts(facts)
        elif action == "damon_sysfs" and task_stage in ("configure", "verify"):
            info[task_stage] = _damon_result(res)
            info["damon_wanted"] = True
        elif action == "set_fact":
            facts = res.get("ansible_facts") or {}
            if isinstance(facts.get("kernel_install_result"), Mapping):
                info["kernel_install_result"] = dict(facts["kernel_install_result"])
            if "kernel_install_reboot_required" in facts:
                info["reboot_required"] = facts["kernel_install_reboot_required"] in (
                    True,
                    "True",
                    "true",
                )
            build = facts.get("kernel_build_result")
            if isinstance(build, Mapping):
                run["build"] = {
                    "host": host,
                    "kernel_release": build.get("kernel_release"),
                    "built": build.get("built"),
                    "current": build.get("current"),
                    "reason": build.get("reason"),
                    "inputs_hash": build.get("inputs_hash"),
                    "packages": [str(p).rsplit("/", 1)[-1] for p in build.get("packages") or []],
                }
    run["batches"] = [batches[n] for n in sorted(batches)]
    run["first_event"], run["last_event"] = _iso(first), _iso(last)
    for info in hosts.values():
        info.pop("phase")
        info["stage_seconds"] = {
            name: round(span[1] - span[0], 1) for name, span in info.pop("stage_times").items()
        }
    return {"hosts": hosts, "run": run}


def _marker(
    found: Mapping[str, Any], run: dict[str, Any], batches: dict[int, dict[str, Any]]
) -> None:
    """Take a run-wide structured event (batches, build and run times) into *run*."""
    kind = found["event"]
    if kind in ("batch_start", "batch_done"):
        number = ev.batch_number(found)
        if number is None:
            return
        entry = batches.setdefault(number, {"batch": number, "hosts": [], "seconds": None})
        if kind == "batch_start":
            entry["hosts"] = ev.batch_hosts(found)
        else:
            entry["seconds"] = ev.number(found.get("seconds"))
    elif kind == "build":
        line = ev.build_line(found)
        if line is not None:
            run["build_seconds"] = ev.number(found.get("seconds"))
            run["build_message"] = line
    elif kind == "timing":
        run["total_seconds"] = ev.number(found.get("total_seconds"))
        run["rollout_seconds"] = ev.number(found.get("rollout_seconds"))


def damon_state(kdamonds: Sequence[Mapping[str, Any]] | None) -> str | None:
    """``on`` when every kdamond is on, ``off`` when all are off, ``none`` without any,
    ``mixed`` otherwise; None when unknown."""
    if kdamonds is None:
        return None
    states = {str(k.get("state")) for k in kdamonds}
    if not states:
        return "none"
    if len(states) == 1:
        return states.pop()
    return "mixed"


def _outcome(
    host: str,
    info: Mapping[str, Any] | None,
    stats: Mapping[str, Any] | None,
    canceled: bool,
) -> str:
    failures = (info or {}).get("failures") or []
    if stats is not None:
        if (stats.get("dark") or {}).get(host):
            return "unreachable"
        if (stats.get("failures") or {}).get(host):
            return "failed"
        if host in (stats.get("processed") or {}):
            return "done"
        return "not_reached"
    if failures:
        return "unreachable" if failures[-1]["unreachable"] else "failed"
    if info is None:
        return "not_reached"
    return "interrupted" if canceled else "done"


def _rolled_out_in_run(
    phases: Mapping[str, Any], since: str | None, until: str | None = None
) -> bool:
    """Whether the record's install and reboot both started in this run (from its first
    event, *since*, to its last, *until*): only then do this run's rollout span and those
    phases describe the same rollout (a resumed run finishes what an earlier one started;
    the report of an interrupted run rebuilt later reads records a later run wrote)."""
    if since is None:
        return False
    for name in ("install", "reboot"):
        phase = phases.get(name)
        started = phase.get("started") if isinstance(phase, Mapping) else None
        if not isinstance(started, str) or started < since:
            return False
        if until is not None and started > until:
            return False
    return True


def _host_row(
    host: str,
    info: Mapping[str, Any] | None,
    record: Mapping[str, Any] | None,
    stats: Mapping[str, Any] | None,
    canceled: bool,
    check: bool,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    info = info or {}
    outcome = _outcome(host, info if info else None, stats, canceled)
    failures = list(info.get("failures") or [])
    failure = None
    if failures and outcome in ("failed", "unreachable"):
        # Where: the first failure (a rescue that records and re-raises fails again in
        # another task); what: the last message, which a rescue may have made fuller.
        last = failures[-1]
        failure = {**failures[0], "msg": last["msg"], "unreachable": last["unreachable"]}
    result = info.get("kernel_install_result") or {}
    phases = (record or {}).get("phases") or {}
    gate_phase = phases.get("gate") or {}
    gate: dict[str, Any] | None = None
    if gate_phase.get("checks") is not None or "passed" in gate_phase:
        gate = {"passed": gate_phase.get("passed"), "checks": gate_phase.get("checks") or []}
    elif isinstance(result.get("gate"), Mapping):
        gate = {
            "passed": result["gate"].get("passed"),
            "checks": result["gate"].get("checks") or [],
        }
    kernel: dict[str, Any] | None = None
    if record or result:
        kernel = {
            "before": result.get("kernel_before") or (record or {}).get("kernel_before"),
            "after": result.get("kernel_after") or (record or {}).get("kernel_after"),
            "release": result.get("release") or (record or {}).get("kernel_release"),
            "status": (record or {}).get("status") or result.get("status"),
            "batch": (record or {}).get("batch"),
            "already_done": bool(result.get("skipped")) if result else None,
            "reboot_required": info.get("reboot_required"),
        }
    verify = info.get("verify")
    configure = info.get("configure")
    damon: dict[str, Any] | None = None
    source = verify or configure
    if source is not None:
        damon = {
            "from": "verify" if verify is not None else "configure",
            "check_mode": check and verify is None,
            "state": damon_state(source.get("kdamonds")),
            "kdamonds": source.get("kdamonds"),
            "layout": source.get("layout"),
            "perf_effective": source.get("perf_effective"),
            "perf_failures": source.get("perf_failures"),
            "pending_writes": verify.get("writes") if verify is not None else None,
        }
        _with_evidence(damon, source)
    elif info.get("damon_wanted") is False:
        damon = {"from": None, "state": "not configured", "perf_effective": None}
    # verify's measurement, else configure's; a measured value before an unknown one
    measured = [c for c in (verify, configure) if c and c.get("perf_effective") is not None]
    chosen = next((c for c in measured if c["perf_effective"] != "unknown"), None)
    chosen = chosen or (measured[0] if measured else {})
    perf_effective = chosen.get("perf_effective")
    phase_seconds = {
        name: phases[name]["seconds"]
        for name in PHASES
        if isinstance(phases.get(name), Mapping) and phases[name].get("seconds") is not None
    }
    row = {
        "host": host,
        "outcome": outcome,
        "failure": (
            {
                "stage": failure["stage"],
                "phase": failure["phase"],
                "task": failure["task"],
                "reason": failure["msg"],
                "unreachable": failure["unreachable"],
            }
            if failure
            else None
        ),
        "kernel": kernel,
        "gate": gate,
        "perf": info.get("perf"),
        "damon": damon,
        "perf_effective": perf_effective,
        "phase_seconds": phase_seconds,
        "stage_seconds": dict(info.get("stage_seconds") or {}),
        "overhead": (
            tool_overhead(phase_seconds, info.get("stage_seconds") or {})
            if _rolled_out_in_run(phases, since, until)
            else None
        ),
        "error": (record or {}).get("error"),
        "last_task": info.get("last_task") if outcome == "interrupted" else None,
    }
    return _with_evidence(row, chosen)


def build_report(
    run: Mapping[str, Any],
    events: Iterable[Event],
    records: Sequence[Mapping[str, Any]] = (),
    hosts: Sequence[str] = (),
) -> dict[str, Any]:
    """The report of one run.

    *run* is the run's ``run.json`` (command, inventory, limit, check, status, ...);
    *records* the rollout records to show (the caller picks the hosts'); *hosts* the hosts
    the run targeted (a host absent from the events then shows as ``not_reached``).
    """
    events = list(events)
    facts = collect(events)
    per_host: dict[str, dict[str, Any]] = facts["hosts"]
    stats = facts["run"]["stats"]
    canceled = run.get("status") == "canceled"
    check = bool(run.get("check"))
    by_host = {str(r.get("host")): r for r in records}
    names = list(dict.fromkeys(hosts)) if hosts else sorted(per_host)
    # A host outside the targeted list (the implicit localhost building) shows when it failed.
    names += sorted(h for h, info in per_host.items() if h not in names and info.get("failures"))
    rows = [
        _host_row(
            name,
            per_host.get(name),
            by_host.get(name),
            stats,
            canceled,
            check,
            facts["run"]["first_event"],
            facts["run"]["last_event"],
        )
        for name in names
    ]
    summary: dict[str, Any] = {outcome: [] for outcome in OUTCOMES}
    for row in rows:
        summary[row["outcome"]].append(row["host"])
    return {
        "format": FORMAT,
        "run": {
            key: run.get(key)
            for key in (
                "id",
                "command",
                "playbook",
                "inventory",
                "limit",
                "check",
                "extravars",
                "rollout_state_dir",
                "resumed_from",
                "started",
                "finished",
                "status",
                "ansible_rc",
                "exit_code",
            )
        },
        "build": facts["run"]["build"],
        **bench_mod.report_entry(run.get("id"), events),
        "timing": {
            "build_seconds": facts["run"]["build_seconds"],
            "total_seconds": facts["run"]["total_seconds"],
            "rollout_seconds": facts["run"]["rollout_seconds"],
            "first_event": facts["run"]["first_event"],
            "last_event": facts["run"]["last_event"],
        },
        "batches": facts["run"]["batches"],
        "tasks_started": facts["run"]["tasks_started"],
        "hosts": rows,
        "summary": summary,
    }


# --- cells -------------------------------------------------------------------------------


def format_event(event: Mapping[str, Any]) -> str:
    """``cpu type=4 config=0x1cd config1=0x1f config2=0x0``."""
    parts = [str(event.get("pmu") or "?"), f"type={event.get('type')}"]
    for key in ("config", "config1", "config2"):
        value = event.get(key)
        parts.append(f"{key}={hex(value) if isinstance(value, int) else value}")
    return " ".join(parts)


def tool_overhead(
    phase_seconds: Mapping[str, Any], stage_seconds: Mapping[str, Any]
) -> dict[str, float] | None:
    """The tool's own time in a host's rollout, against the bare install + reboot.

    ``seconds`` is the host's rollout span (its first to its last event in the rollout
    stage) minus the install and reboot phases: the checks before anything changes, the
    gate, making the kernel the default, the records and everything else the tool does.
    ``percent`` is that over install + reboot. None when a figure is missing (no rollout
    in this run, or a host that did not reboot).
    """
    install, reboot = phase_seconds.get("install"), phase_seconds.get("reboot")
    span = stage_seconds.get("rollout")
    figures = (install, reboot, span)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in figures):
        return None
    bare = float(install) + float(reboot)  # type: ignore[arg-type]
    if bare <= 0:
        return None
    seconds = max(float(span) - bare, 0.0)  # type: ignore[arg-type]
    return {
        "seconds": round(seconds, 1),
        "bare_seconds": round(bare, 1),
        "percent": round(100.0 * seconds / bare, 1),
    }


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


def cells(row: Mapping[str, Any]) -> dict[str, str]:
    """The row as short text cells (the columns of :data:`TABLE_COLUMNS`)."""
    kernel = row.get("kernel") or {}
    if kernel:
        before, after = kernel.get("before") or "?", kernel.get("after") or "?"
        text = before if before == after else f"{before} -> {after}"
        if kernel.get("already_done"):
            text += " (already done)"
        if kernel.get("reboot_required"):
            text += " (reboot required)"
    else:
        text = "-"
    gate = row.get("gate")
    if gate is None:
        gate_text = "-"
    elif gate.get("passed"):
        gate_text = "passed"
    else:
        bad = [str(c.get("name")) for c in gate.get("checks") or [] if not c.get("ok")]
        gate_text = "FAILED" + (f" ({', '.join(bad)})" if bad else "")
    perf = row.get("perf")
    if perf:
        events = "; ".join(format_event(e) for e in perf.get("events") or [])
        perf_text = str(perf.get("classification") or "?")
        if perf.get("source") == "pinned":
            perf_text += " (pinned)"
        if events:
            perf_text += f": {events}"
    else:
        perf_text = "-"
    damon = row.get("damon")
    if damon:
        damon_text = str(damon.get("state") or "?")
        kdamonds = damon.get("kdamonds") or []
        if kdamonds:
            damon_text += f" ({len(kdamonds)} kdamond{'s' if len(kdamonds) != 1 else ''})"
        if damon.get("check_mode"):
            damon_text += " [check]"
    else:
        damon_text = "-"
    times = [f"{k} {_seconds(v)}" for k, v in (row.get("phase_seconds") or {}).items()]
    times += [
        f"{k} {_seconds(v)}"
        for k, v in (row.get("stage_seconds") or {}).items()
        if k != "rollout" or not row.get("phase_seconds")
    ]
    overhead = row.get("overhead")
    if isinstance(overhead, Mapping) and isinstance(overhead.get("percent"), int | float):
        times.append(
            f"tool {_seconds(overhead.get('seconds'))} = {overhead['percent']:g}% over "
            f"install + reboot {_seconds(overhead.get('bare_seconds'))}"
        )
    outcome = str(row.get("outcome"))
    return {
        "host": str(row.get("host")),
        "outcome": outcome.upper() if outcome in ("failed", "unreachable") else outcome,
        "kernel": text,
        "gate": gate_text,
        "perf": perf_text,
        "damon": damon_text,
        "perf_effective": _perf_text(row, with_reason=False),
        "time": ", ".join(times) or "-",
    }


def details(row: Mapping[str, Any]) -> list[str]:
    """Lines under the table for a host: failure reason, failed gate checks, record error,
    the reason a host has no perf events, perf event failures."""
    out = []
    host = row.get("host")
    failure = row.get("failure")
    if failure:
        where = failure.get("stage") or "?"
        if failure.get("phase"):
            where += f"/{failure['phase']}"
        what = "unreachable" if failure.get("unreachable") else "failed"
        reason = shorten(str(failure.get("reason")), 400)
        out.append(f"{host}: {what} in {where}, task {failure.get('task')!r}: {reason}")
    last = row.get("last_task")
    if last:
        where = str(last.get("stage") or "?") + (f"/{last['phase']}" if last.get("phase") else "")
        out.append(f"{host}: interrupted in {where}, during task {last.get('task')!r}")
    for check in (row.get("gate") or {}).get("checks") or []:
        if not check.get("ok"):
            out.append(f"{host}: gate check {check.get('name')} failed: {check.get('detail')}")
    if row.get("error") and row.get("outcome") != "done":
        out.append(f"{host}: rollout record error: {row['error']}")
    perf = row.get("perf") or {}
    if perf.get("classification") == "none" and perf.get("reason"):
        out.append(f"{host}: no perf events: {perf['reason']}")
    if isinstance(row.get("perf_evidence"), Mapping):
        out.append(f"{host}: perf_effective: {shorten(_perf_text(row, with_reason=True), 1000)}")
    else:  # reports from before perf_effective had evidence
        for failed in (row.get("damon") or {}).get("perf_failures") or []:
            out.append(f"{host}: perf event create failed: {json.dumps(failed, sort_keys=True)}")
    return out


def _align(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def _headline(report: Mapping[str, Any]) -> str:
    run = report.get("run") or {}
    summary = report.get("summary") or {}
    counts = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in summary.items() if v)
    mode = " --check" if run.get("check") else ""
    limit = f" --limit {run['limit']}" if run.get("limit") else ""
    return (
        f"run {run.get('id') or '?'}: damon-fleet {run.get('command') or '?'}{mode}{limit} "
        f"on {run.get('inventory') or '?'}: {run.get('status') or '?'}; {counts or 'no hosts'}"
    )


def _run_facts(report: Mapping[str, Any]) -> list[str]:
    out = []
    build = report.get("build")
    if build:
        state = "built" if build.get("built") else "up to date"
        out.append(f"build: {build.get('kernel_release')} ({state}) on {build.get('host')}")
    timing = report.get("timing") or {}
    spans = []
    for key, label in (
        ("build_seconds", "build"),
        ("rollout_seconds", "rollout and configuration"),
        ("total_seconds", "total"),
    ):
        if timing.get(key) is not None:
            spans.append(f"{label} {_seconds(timing[key])}")
    if spans:
        out.append("time: " + ", ".join(spans))
    for batch in report.get("batches") or []:
        took = f" in {_seconds(batch.get('seconds'))}" if batch.get("seconds") is not None else ""
        hosts = ", ".join(str(h) for h in batch.get("hosts") or [])
        out.append(f"batch {batch.get('batch')}: {hosts}{took}")
    for bad in report.get("bad_records") or []:
        out.append(f"unusable rollout record {bad.get('path')}: {bad.get('problem')}")
    return out


def render_table(report: Mapping[str, Any]) -> str:
    """The report for a terminal: a headline, an aligned table, then the details."""
    rows = [cells(r) for r in report.get("hosts") or []]
    lines = [_headline(report), *_run_facts(report), ""]
    if rows:
        lines += _align(
            [title for _, title in TABLE_COLUMNS], [[r[k] for k, _ in TABLE_COLUMNS] for r in rows]
        )
    else:
        lines.append("no hosts")
    extra = [line for r in report.get("hosts") or [] for line in details(r)]
    if extra:
        lines += ["", *extra]
    lines += bench_mod.report_lines(report.get("bench"))
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: a headline, the run's facts, a table, the details."""
    run = report.get("run") or {}
    lines = [f"# damon-fleet {run.get('command') or ''} run {run.get('id') or ''}".rstrip(), ""]
    lines.append(f"- {_md(_headline(report))}")
    lines.append(f"- started {run.get('started')}, finished {run.get('finished')}")
    if run.get("rollout_state_dir") and run.get("command") == "deploy":
        lines.append(f"- rollout records: `{run['rollout_state_dir']}`")
    lines += [f"- {_md(line)}" for line in _run_facts(report)]
    lines.append("")
    rows = [cells(r) for r in report.get("hosts") or []]
    lines.append("| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |")
    lines.append("|" + "---|" * len(TABLE_COLUMNS))
    for row in rows:
        lines.append("| " + " | ".join(_md(row[k]) for k, _ in TABLE_COLUMNS) + " |")
    extra = [line for r in report.get("hosts") or [] for line in details(r)]
    if extra:
        lines += ["", "## Details", ""]
        lines += [f"- {_md(line)}" for line in extra]
    lines += bench_mod.report_markdown(report.get("bench"))
    return "\n".join(lines) + "\n"


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    run = report.get("run") or {}
    esc = html.escape
    title = f"damon-fleet {run.get('command') or ''} run {run.get('id') or ''}"
    head_cells = "".join(f"<th>{esc(t)}</th>" for _, t in TABLE_COLUMNS)
    body = []
    for raw in report.get("hosts") or []:
        row = cells(raw)
        klass = "bad" if raw.get("outcome") in BAD_OUTCOMES else "ok"
        tds = "".join(f"<td>{esc(row[k])}</td>" for k, _ in TABLE_COLUMNS)
        body.append(f'<tr class="{klass}">{tds}</tr>')
    facts = "".join(f"<li>{esc(line)}</li>" for line in [_headline(report), *_run_facts(report)])
    extra = [line for r in report.get("hosts") or [] for line in details(r)]
    detail_html = (
        "<h2>Details</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in extra) + "</ul>"
        if extra
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}"
        "th{background:#eee}tr.bad td{background:#fde2e2}tr.ok td:nth-child(2){color:#176b2c}"
        f"</style></head><body><h1>{esc(title)}</h1><ul>{facts}</ul>"
        f"<table><thead><tr>{head_cells}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{detail_html}{bench_mod.report_html(report.get('bench'))}</body></html>\n"
    )


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


# --- fleet status ------------------------------------------------------------------------


def _newer(current: tuple[str, Any] | None, when: str | None, value: Any) -> tuple[str, Any] | None:
    if value is None or when is None:
        return current
    if current is None or when >= current[0]:
        return (when, value)
    return current


def fleet_status(
    reports: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The fleet as last seen, one row per host: for each field the newest value any
    report (by its run's finish time) or rollout record (by ``updated_at``) gives."""
    seen: dict[str, dict[str, tuple[str, Any] | None]] = {}

    def slot(host: str) -> dict[str, tuple[str, Any] | None]:
        return seen.setdefault(host, {})

    for report in reports:
        run = report.get("run") or {}
        when = run.get("finished") or run.get("started")
        for row in report.get("hosts") or []:
            host = str(row.get("host"))
            fields = slot(host)
            if row.get("outcome") in ("not_reached",):
                continue
            kernel = row.get("kernel") or {}
            perf = row.get("perf") or {}
            damon = row.get("damon") or {}
            fields["kernel"] = _newer(
                fields.get("kernel"), when, kernel.get("after") or perf.get("kernel_release")
            )
            if damon and not damon.get("check_mode"):
                fields["damon"] = _newer(fields.get("damon"), when, damon.get("state"))
                fields["perf_effective"] = _newer(
                    fields.get("perf_effective"),
                    when,
                    _with_evidence({"perf_effective": row["perf_effective"]}, row)
                    if row.get("perf_effective") is not None
                    else None,
                )
            fields["classification"] = _newer(
                fields.get("classification"), when, perf.get("classification")
            )
            fields["outcome"] = _newer(
                fields.get("outcome"), when, f"{row.get('outcome')} ({run.get('command')})"
            )
            fields["seen"] = _newer(fields.get("seen"), when, when)
    for record in records:
        host = str(record.get("host"))
        when = record.get("updated_at")
        fields = slot(host)
        fields["kernel"] = _newer(fields.get("kernel"), when, record.get("kernel_after"))
        status = record.get("status")
        if status is not None:
            release = record.get("kernel_release")
            fields["rollout"] = _newer(
                fields.get("rollout"), when, f"{status} {release}" if release else status
            )
    rows = []
    for host in sorted(seen):
        fields = seen[host]
        out: dict[str, Any] = {"host": host}
        for key, _ in STATUS_COLUMNS[1:]:
            value = fields.get(key)
            out[key] = value[1] if value is not None else None
        perf = out.get("perf_effective")
        out["perf_effective"] = perf.get("perf_effective") if isinstance(perf, Mapping) else None
        if isinstance(perf, Mapping):
            _with_evidence(out, perf)
        rows.append(out)
    return rows


def render_status(rows: Sequence[Mapping[str, Any]], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(list(rows), indent=2, sort_keys=True) + "\n"
    texts = [
        [
            (_perf_text(r, with_reason=False) if k == "perf_effective" else str(r.get(k) or "-"))
            for k, _ in STATUS_COLUMNS
        ]
        for r in rows
    ]
    header = [title for _, title in STATUS_COLUMNS]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in texts]
        return "\n".join(lines) + "\n"
    if not texts:
        return "no host seen yet\n"
    return "\n".join(_align(header, texts)) + "\n"


# --- validation of a stored report -------------------------------------------------------

_ROW_MAPPINGS = ("failure", "kernel", "gate", "perf", "damon", "last_task")


def report_problem(report: object) -> str | None:
    """What keeps *report* (a stored ``report.json``) from being shown, or None.

    Checks the shape the renderers and :func:`fleet_status` read: ``format``, ``run``,
    ``hosts`` (each with a host name and a known outcome), ``summary``, ``batches``.
    """
    if not isinstance(report, Mapping):
        return f"not a JSON object but {type(report).__name__}"
    if report.get("format") != FORMAT:
        return f"format is {report.get('format')!r}, expected {FORMAT}"
    if not isinstance(report.get("run"), Mapping):
        return "run is missing or not an object"
    for key in ("started", "finished", "id", "command", "status"):
        value = report["run"].get(key)
        if value is not None and not isinstance(value, str):
            return f"run.{key} is {type(value).__name__}, expected a string"
    hosts = report.get("hosts")
    if not isinstance(hosts, list):
        return "hosts is missing or not a list"
    for index, row in enumerate(hosts):
        where = f"hosts[{index}]"
        if not isinstance(row, Mapping):
            return f"{where} is not an object"
        if not isinstance(row.get("host"), str) or not row["host"]:
            return f"{where}.host is not a host name"
        if row.get("outcome") not in OUTCOMES:
            return f"{where}.outcome is {row.get('outcome')!r}, expected one of {OUTCOMES}"
        for key in _ROW_MAPPINGS:
            if row.get(key) is not None and not isinstance(row[key], Mapping):
                return f"{where}.{key} is not an object"
        for key in ("phase_seconds", "stage_seconds", "overhead"):
            if row.get(key) is not None and not isinstance(row[key], Mapping):
                return f"{where}.{key} is not an object"
        gate = row.get("gate") or {}
        if not isinstance(gate.get("checks") or [], list) or not all(
            isinstance(c, Mapping) for c in gate.get("checks") or []
        ):
            return f"{where}.gate.checks is not a list of objects"
        perf = row.get("perf") or {}
        if not isinstance(perf.get("events") or [], list) or not all(
            isinstance(e, Mapping) for e in perf.get("events") or []
        ):
            return f"{where}.perf.events is not a list of objects"
        damon = row.get("damon") or {}
        for key in ("kdamonds", "perf_failures"):
            if not isinstance(damon.get(key) or [], list):
                return f"{where}.damon.{key} is not a list"
    summary = report.get("summary")
    if not isinstance(summary, Mapping) or not all(isinstance(v, list) for v in summary.values()):
        return "summary is missing or not an object of lists"
    batches = report.get("batches") or []
    if not isinstance(batches, list) or not all(
        isinstance(b, Mapping) and isinstance(b.get("hosts") or [], list) for b in batches
    ):
        return "batches is not a list of objects"
    for key in ("build", "timing"):
        if report.get(key) is not None and not isinstance(report[key], Mapping):
            return f"{key} is not an object"
    bad = report.get("bad_records") or []
    if not isinstance(bad, list) or not all(isinstance(b, Mapping) for b in bad):
        return "bad_records is not a list of objects"
    if report.get("bench") is not None and bench_mod.problem(report["bench"]) is not None:
        return f"bench: {bench_mod.problem(report['bench'])}"
    return None
