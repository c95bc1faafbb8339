"""Per-host records of a kernel rollout, kept on the control node.

Pure functions only (the ``rollout_state`` module reads and writes the files). One JSON
file per host, ``<state_dir>/<host>.json`` (format 1)::

    {
      "format": 1,
      "host": "lab1",
      "inputs_hash": "<kernel_build inputs hash>",
      "kernel_release": "<the release being rolled out>",
      "series": "lab-perf-events-abi",
      "layout": "rfc-v3",
      "status": "installing|installed|rebooting|gate_passed|done|failed|reboot_required",
      "kernel_before": "<uname -r before the rollout touched the host>",
      "kernel_after": "<uname -r when the host's rollout ended>",
      "batch": 1,
      "error": null,
      "phases": {
        "install": {"started": "...Z", "finished": "...Z", "seconds": 12.5, ...},
        "reboot":  {..., "boot_id_before": "...", "boot_id_after": "..."},
        "gate":    {..., "passed": true, "checks": [{"name", "ok", "detail"}]},
        "default": {..., "entry": "gnulinux-<release>-advanced-<uuid>"},
        "fallback": {...}
      },
      "updated_at": "...Z"
    }

A record for another ``inputs_hash`` is started afresh (the old one is kept under
``previous`` without its own ``previous``), so a resumed run skips exactly the hosts that
finished this build.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

FORMAT = 1
PHASES = ("install", "reboot", "gate", "default", "fallback")
EVENTS = ("start", "finish")
STATUSES = (
    "pending",
    "installing",
    "installed",
    "rebooting",
    "gate_passed",
    "done",
    "failed",
    "reboot_required",
)
TOP_KEYS = (
    "inputs_hash",
    "kernel_release",
    "series",
    "layout",
    "status",
    "kernel_before",
    "kernel_after",
    "batch",
    "error",
)
HOST_NAME = re.compile(r"[A-Za-z0-9_.:@-]+")


class StateError(ValueError):
    """A record or request that cannot be used; the message says why."""


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def parse_iso(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def file_name(host: str) -> str:
    """The record's file name; refuses names that would leave the state directory."""
    if not HOST_NAME.fullmatch(host) or host in (".", ".."):
        raise StateError(f"host name {host!r} cannot name a state file")
    return f"{host}.json"


def new_record(host: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "host": host,
        "inputs_hash": None,
        "kernel_release": None,
        "series": None,
        "layout": None,
        "status": "pending",
        "kernel_before": None,
        "kernel_after": None,
        "batch": None,
        "error": None,
        "phases": {},
        "updated_at": None,
    }


def parse(text: str, host: str) -> dict[str, Any]:
    """A record from its JSON text; a bad or foreign file is an error naming the problem."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"state file of {host} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StateError(f"state file of {host} is not a JSON object")
    if data.get("format") != FORMAT:
        raise StateError(f"state file of {host} has format {data.get('format')!r}, not {FORMAT}")
    if data.get("host") != host:
        raise StateError(f"state file of {host} belongs to {data.get('host')!r}")
    record = new_record(host)
    record.update(data)
    if not isinstance(record["phases"], dict):
        raise StateError(f"state file of {host}: phases is not an object")
    return record


def render(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def _comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out.pop("updated_at", None)
    return out


def update(
    record: Mapping[str, Any] | None,
    host: str,
    now: float,
    values: Mapping[str, Any] | None = None,
    phase: str | None = None,
    event: str | None = None,
    result: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """``record`` with ``values`` and a phase event applied; (new record, changed).

    ``values`` sets top-level keys (:data:`TOP_KEYS`). A different ``inputs_hash`` starts a
    new record. ``phase`` + ``event=start`` stamps ``started`` (and clears an earlier
    finish); ``event=finish`` stamps ``finished`` and ``seconds``; ``result`` is merged
    into the phase either way. Nothing but ``updated_at`` changing counts as no change.
    """
    values = dict(values or {})
    unknown = sorted(set(values) - set(TOP_KEYS))
    if unknown:
        raise StateError(f"unknown record keys {unknown}; known: {', '.join(TOP_KEYS)}")
    if "status" in values and values["status"] not in STATUSES:
        raise StateError(f"unknown status {values['status']!r}; known: {', '.join(STATUSES)}")
    if phase is not None and phase not in PHASES:
        raise StateError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
    if event is not None and event not in EVENTS:
        raise StateError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    if (event is not None or result) and phase is None:
        raise StateError("an event or a result needs a phase")

    old = copy.deepcopy(dict(record)) if record is not None else None
    new = copy.deepcopy(old) if old is not None else new_record(host)
    hash_value = values.get("inputs_hash")
    if old is not None and hash_value and old.get("inputs_hash") not in (None, hash_value):
        previous = {k: v for k, v in old.items() if k != "previous"}
        new = new_record(host)
        new["previous"] = previous
    new.update(values)
    if phase is not None:
        phases = new.setdefault("phases", {})
        entry = dict(phases.get(phase) or {})
        stamp = iso(now)
        if event == "start":
            entry = {"started": stamp}
        elif event == "finish":
            entry["finished"] = stamp
            if entry.get("started"):
                entry["seconds"] = round(now - parse_iso(entry["started"]), 1)
        if result:
            entry.update(copy.deepcopy(dict(result)))
        phases[phase] = entry
    changed = old is None or _comparable(old) != _comparable(new)
    if changed:
        new["updated_at"] = iso(now)
    return new, changed


def is_done(record: Mapping[str, Any] | None, inputs_hash: str, release: str) -> bool:
    """Whether the record says the host finished the rollout of this build."""
    return (
        record is not None
        and record.get("status") == "done"
        and record.get("inputs_hash") == inputs_hash
        and record.get("kernel_release") == release
    )


def summary_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per host for the report: kernels, status, gate, seconds per phase."""
    rows = []
    for record in sorted(records, key=lambda r: str(r.get("host"))):
        phases = record.get("phases") or {}
        gate = phases.get("gate") or {}
        checks = gate.get("checks") or []
        rows.append(
            {
                "host": record.get("host"),
                "batch": record.get("batch"),
                "status": record.get("status"),
                "kernel_before": record.get("kernel_before"),
                "kernel_after": record.get("kernel_after"),
                "kernel_release": record.get("kernel_release"),
                "gate": (
                    None
                    if not checks
                    else ", ".join(
                        f"{c.get('name')} {'ok' if c.get('ok') else 'FAILED'}" for c in checks
                    )
                ),
                "gate_failures": [
                    f"{c.get('name')}: {c.get('detail')}" for c in checks if not c.get("ok")
                ],
                "seconds": {
                    name: (phases.get(name) or {}).get("seconds")
                    for name in PHASES
                    if (phases.get(name) or {}).get("seconds") is not None
                },
                "error": record.get("error"),
            }
        )
        rows[-1]["line"] = row_line(rows[-1])
    return rows


def row_line(row: Mapping[str, Any]) -> str:
    """One line for a host: status, batch, kernels, gate, seconds per phase."""
    seconds = " ".join(f"{k}={v}s" for k, v in row["seconds"].items()) or "-"
    return (
        f"{row['host']}: {row['status']} (batch {row['batch']}), kernel "
        f"{row['kernel_before']} -> {row['kernel_after']}; gate: {row['gate'] or '-'}; "
        f"{seconds}"
    )


def format_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The report as text lines (one per host, then failed checks indented)."""
    lines = []
    for row in rows:
        lines.append(row_line(row))
        lines.extend(f"  {failure}" for failure in row["gate_failures"])
        if row.get("error"):
            lines.append(f"  error: {row['error']}")
    return lines
