"""Per-host records of a kernel rollout, kept on the control node.

Pure functions on records (:func:`parse`, :func:`update`, :func:`is_done`,
:func:`summary_rows`), then the file adapters the ``rollout_state`` module and the CLI
share (:func:`read_record`, :func:`scan`, :func:`apply`). One JSON file per host,
``<state_dir>/<host>.json`` (format 1)::

    {
      "format": 1,
      "host": "lab1",
      "inputs_hash": "<kernel_build inputs hash>",
      "kernel_release": "<the release being rolled out>",
      "series": "lab-perf-events-abi",
      "layout": "rfc-v3",
      "status": "installing|installed|rebooting|gate_passed|done|failed|reboot_required
                 |rolling_back|rolled_back",
      "kernel_before": "<uname -r before the rollout touched the host>",
      "kernel_after": "<uname -r when the host's rollout ended>",
      "batch": 1,
      "error": null,
      "phases": {
        "install": {"started": "...Z", "finished": "...Z", "seconds": 12.5, ...},
        "reboot":  {..., "boot_id_before": "...", "boot_id_after": "..."},
        "gate":    {..., "passed": true, "checks": [{"name", "ok", "detail"}]},
        "default": {..., "entry": "gnulinux-<release>-advanced-<uuid>"},
        "fallback": {...},
        "rollback": {..., "kernel_from": "...", "kernel_to": "...", "damon": "removed|kept",
                     "packages_removed": [...]},
        "rollback_reboot": {..., "method": "firmware", "boot_id_before": "...", ...},
        "rollback_gate": {..., "passed": true, "checks": [...]}
      },
      "boot_method": "firmware|kexec",
      "boot_method_reason": "<why a kexec trial boot fell back to firmware, or null>",
      "updated_at": "...Z"
    }

``boot_method`` and ``boot_method_reason`` are written by the trial boot; records made
before they existed have neither (read as null). ``phases.reboot.method`` is the method
the trial reboot used. A rollback keeps the record (the build it undid stays named) and
moves the status through ``rolling_back`` to ``rolled_back``.

A record for another ``inputs_hash`` is started afresh (the old one is kept under
``previous`` without its own ``previous``), so a resumed run skips exactly the hosts that
finished this build.

A record is checked whole whenever it is read: a bad one is a :class:`StateError` naming
the file and the field (``phases.gate.checks[0].ok``), never a crash and never skipped in
silence. The module fails that host (or, listing, names every bad file); the CLI lists
bad records apart from the good ones. The fix is always the same: move the file aside or
delete it (:data:`FIX`). Updates hold an ``fcntl`` lock per record (``.<host>.lock``) and
replace the file atomically; records are 0600, a state directory created here 0700.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

FORMAT = 1
PHASES = (
    "install",
    "reboot",
    "gate",
    "default",
    "fallback",
    "rollback",
    "rollback_reboot",
    "rollback_gate",
)
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
    "rolling_back",
    "rolled_back",
)
#: How the trial boot started the new kernel: through the firmware and GRUB, or kexec.
BOOT_METHODS = ("firmware", "kexec")
#: Top-level keys a record may lack (records written before they existed).
OPTIONAL_KEYS = ("boot_method", "boot_method_reason")
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
    *OPTIONAL_KEYS,
)
TEXT_KEYS = (
    "inputs_hash",
    "kernel_release",
    "series",
    "layout",
    "kernel_before",
    "kernel_after",
    "error",
    "boot_method_reason",
)
HOST_NAME = re.compile(r"[A-Za-z0-9_.:@-]+")
ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
#: A record is a few kilobytes; anything much larger is not one.
MAX_RECORD_BYTES = 1 << 20
#: What to do about a record that cannot be used (said with every such error).
FIX = "move the file aside or delete it (the host's next rollout then starts a new record)"


class StateError(ValueError):
    """A record or request that cannot be used; the message says why.

    ``path`` is the record's file when the problem is in one, ``problem`` the message
    without the file.
    """

    def __init__(self, problem: str, path: str | None = None) -> None:
        super().__init__(f"rollout record {path}: {problem}" if path else problem)
        self.problem = problem
        self.path = path


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def parse_iso(text: object) -> float:
    """Seconds since the epoch of an :func:`iso` time; ValueError for anything else."""
    import calendar

    if not isinstance(text, str) or not ISO_TIME.fullmatch(text):
        raise ValueError(f"{_short(text)} is not a UTC time like 2026-01-31T12:00:00Z")
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError as exc:
        raise ValueError(f"{_short(text)} is not a UTC time like 2026-01-31T12:00:00Z") from exc


def file_name(host: str) -> str:
    """The record's file name; refuses names that would leave the state directory."""
    if not isinstance(host, str) or not HOST_NAME.fullmatch(host) or host in (".", ".."):
        raise StateError(
            f"host name {_short(host)} cannot name a state file "
            "(letters, digits and _ . : @ - only)"
        )
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


# --------------------------------------------------------------------------- validation


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: object, limit: int = 60) -> str:
    """``repr`` of *value*, cut to *limit* characters (an error never quotes a whole file)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return _cut(repr(value), limit)


def _check_top(key: str, value: object) -> str | None:
    """What is wrong with the top-level *key* = *value*, or None."""
    if key in TEXT_KEYS:
        if value is not None and not isinstance(value, str):
            return f"{_short(value)} is not a string or null"
    elif key == "boot_method":
        if value is not None and value not in BOOT_METHODS:
            return f"{_short(value)} is not one of {', '.join(BOOT_METHODS)} or null"
    elif key == "status":
        if value not in STATUSES:
            return f"{_short(value)} is not one of {', '.join(STATUSES)}"
    elif key == "batch":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"{_short(value)} is not an integer or null"
    elif key == "updated_at" and value is not None:
        try:
            parse_iso(value)
        except ValueError as exc:
            return str(exc)
    return None


def _check_phase(name: str, entry: object) -> tuple[str, str] | None:
    """(field, problem) of the first thing wrong with phase *name*, or None."""
    field = f"phases.{name}"
    if name not in PHASES:
        return field, f"unknown phase; known: {', '.join(PHASES)}"
    if not isinstance(entry, dict):
        return field, f"{_short(entry)} is not an object"
    for stamp in ("started", "finished"):
        if stamp in entry:
            try:
                parse_iso(entry[stamp])
            except ValueError as exc:
                return f"{field}.{stamp}", str(exc)
    seconds = entry.get("seconds")
    if seconds is not None and (
        not isinstance(seconds, (int, float))
        or isinstance(seconds, bool)
        or not math.isfinite(seconds)
    ):
        return f"{field}.seconds", f"{_short(seconds)} is not a number of seconds"
    if "passed" in entry and entry["passed"] is not None and not isinstance(entry["passed"], bool):
        return f"{field}.passed", f"{_short(entry['passed'])} is not true, false or null"
    if "checks" in entry:
        checks = entry["checks"]
        if checks is None:
            return None
        if not isinstance(checks, list):
            return f"{field}.checks", f"{_short(checks)} is not a list"
        for index, check in enumerate(checks):
            where = f"{field}.checks[{index}]"
            if not isinstance(check, dict):
                return where, f"{_short(check)} is not an object"
            if not isinstance(check.get("name"), str):
                return f"{where}.name", f"{_short(check.get('name'))} is not a string"
            if not isinstance(check.get("ok"), bool):
                return f"{where}.ok", f"{_short(check.get('ok'))} is not true or false"
    return None


def _problem(data: object, host: str, nested: bool = False) -> tuple[str, str] | None:
    """(field, problem) of the first thing wrong with record *data* of *host*, or None."""
    if not isinstance(data, dict):
        return "", f"{_short(data)} is not a JSON object"
    if data.get("format") != FORMAT:
        return "format", f"{_short(data.get('format'))} is not {FORMAT}"
    if data.get("host") != host:
        return "host", f"the record belongs to {_short(data.get('host'))}, not {host}"
    known = set(new_record(host)) | set(OPTIONAL_KEYS) | (set() if nested else {"previous"})
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        return unknown[0], f"unknown key; known: {', '.join(sorted(known))}"
    for key in (*TOP_KEYS, "updated_at"):
        if key in data:
            problem = _check_top(key, data[key])
            if problem:
                return key, problem
    phases = data.get("phases", {})
    if not isinstance(phases, dict):
        return "phases", f"{_short(phases)} is not an object"
    for name, entry in phases.items():
        found = _check_phase(str(name), entry)
        if found:
            return found
    if "previous" in data:
        found = _problem(data["previous"], host, nested=True)
        if found:
            field, problem = found
            return ("previous." + field if field else "previous"), problem
    return None


def validate(data: object, host: str, source: str | None = None) -> dict[str, Any]:
    """*data* (a decoded record of *host*) checked whole, with the defaults filled in.

    StateError names *source* (the file) and the field: ``phases.gate.checks[0].ok``.
    """
    found = _problem(data, host)
    if found:
        field, problem = found
        raise StateError(f"{field}: {problem}" if field else problem, source or f"of {host}")
    assert isinstance(data, dict)
    record = new_record(host)
    record.update(data)
    return record


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {_short(key)}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse(text: str | bytes, host: str, source: str | None = None) -> dict[str, Any]:
    """A record from its JSON text (or bytes); never raises anything but StateError.

    A bad or foreign file is an error naming *source* (the file; ``of <host>`` when not
    given), the field and the problem. Every key is checked, so a record that parses is
    safe for :func:`update`, :func:`is_done` and :func:`summary_rows`.
    """
    where = source or f"of {host}"
    if len(text) > MAX_RECORD_BYTES:
        raise StateError(f"larger than {MAX_RECORD_BYTES} bytes: not a record", where)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"not UTF-8 text (bad byte at offset {exc.start})", where) from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise StateError("not JSON: nested too deeply", where) from None
    except ValueError as exc:
        raise StateError(f"not JSON: {_cut(str(exc), 120)}", where) from None
    return validate(data, host, where)


def render(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


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

    Every value is checked as :func:`parse` checks a file, so what this returns parses
    again; a bad request or record is a StateError.

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
        raise StateError(f"unknown status {_short(values['status'])}; known: {', '.join(STATUSES)}")
    for key, value in values.items():
        problem = _check_top(key, value)
        if problem:
            raise StateError(f"values.{key}: {problem}")
    if phase is not None and phase not in PHASES:
        raise StateError(f"unknown phase {_short(phase)}; known: {', '.join(PHASES)}")
    if event is not None and event not in EVENTS:
        raise StateError(f"unknown event {_short(event)}; known: {', '.join(EVENTS)}")
    if (event is not None or result) and phase is None:
        raise StateError("an event or a result needs a phase")
    if record is not None:
        validate(dict(record), host)

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
        found = _check_phase(phase, entry)
        if found:
            raise StateError(f"result: {found[0]}: {found[1]}")
        phases[phase] = entry
    # new starts as a copy of old (or afresh); updated_at is only set below.
    changed = old is None or old != new
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
        if record.get("boot_method"):
            # Only records of a trial boot that chose a method name one.
            rows[-1]["boot_method"] = record.get("boot_method")
            rows[-1]["boot_method_reason"] = record.get("boot_method_reason")
        rows[-1]["line"] = row_line(rows[-1])
    return rows


def row_line(row: Mapping[str, Any]) -> str:
    """One line for a host: status, batch, kernels, gate, seconds per phase."""
    seconds = " ".join(f"{k}={v}s" for k, v in row["seconds"].items()) or "-"
    method = ""
    if row.get("boot_method"):
        method = f"; boot {row['boot_method']}"
        if row.get("boot_method_reason"):
            method += f" ({row['boot_method_reason']})"
    return (
        f"{row['host']}: {row['status']} (batch {row['batch']}), kernel "
        f"{row['kernel_before']} -> {row['kernel_after']}; gate: {row['gate'] or '-'}; "
        f"{seconds}{method}"
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


# --------------------------------------------------------------------- files on the controller
# The I/O adapters the module and the CLI share: read one record, scan a directory, and a
# locked, atomic read-modify-write. Records are 0600 files in a 0700 directory.


def record_path(state_dir: Path, host: str) -> Path:
    return Path(state_dir) / file_name(host)


def read_record(path: Path, host: str) -> tuple[dict[str, Any] | None, str]:
    """(record, its text) of *path*; (None, "") when there is no file.

    Anything wrong with the file, including that it cannot be read, is a StateError naming
    it.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    except NotADirectoryError:
        raise StateError(f"state_dir {Path(path).parent} is not a directory") from None
    except OSError as exc:
        raise StateError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    record = parse(data, host, str(path))
    return record, data.decode("utf-8")


def scan(
    state_dir: Path, hosts: Sequence[str] | None
) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """The records of *state_dir* (of *hosts* when given, else all), sorted by host, and
    (file, problem) for each file that is not a usable record.

    Never raises for what is on disk: a missing directory has no records; a directory that
    cannot be listed is one bad entry naming it. Hidden files (locks, temporary files) are
    not records.
    """
    state_dir = Path(state_dir)
    wanted = None if hosts is None else {str(h) for h in hosts}
    try:
        names = sorted(os.listdir(state_dir))
    except FileNotFoundError:
        return [], []
    except NotADirectoryError:
        return [], [(state_dir, "not a directory")]
    except OSError as exc:
        return [], [(state_dir, f"cannot list: {exc.strerror or exc}")]
    records: list[dict[str, Any]] = []
    bad: list[tuple[Path, str]] = []
    for name in names:
        if name.startswith(".") or not name.endswith(".json"):
            continue
        host = name[: -len(".json")]
        if wanted is not None and host not in wanted:
            continue
        path = state_dir / name
        try:
            file_name(host)
            record, _ = read_record(path, host)
        except StateError as exc:
            problem = exc.problem if exc.path else f"not a record file name: {exc}"
            bad.append((path, problem))
            continue
        if record is not None:
            records.append(record)
    return records, bad


def ensure_dir(state_dir: Path) -> None:
    """Create *state_dir* 0700 when missing (an existing directory is left as it is)."""
    state_dir = Path(state_dir)
    if state_dir.is_dir():
        return
    try:
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(mode=0o700)
    except (FileExistsError, NotADirectoryError):
        if not state_dir.is_dir():  # it, or a folder above it, is a file
            raise StateError(f"state_dir {state_dir} is not a directory") from None
        return
    os.chmod(state_dir, 0o700)


#: How long an update waits for another one of the same host's record.
LOCK_WAIT = 120.0


@contextlib.contextmanager
def locked(state_dir: Path, host: str, wait: float = LOCK_WAIT) -> Iterator[Path]:
    """Hold the lock of *host*'s record (``.<host>.lock``, ``fcntl.flock``) for a
    read-modify-write; a StateError when another holder keeps it for *wait* seconds."""
    lock = Path(state_dir) / f".{file_name(host)[: -len('.json')]}.lock"
    ensure_dir(Path(state_dir))
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + wait
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise StateError(f"another update held {lock} for {wait:g} s; is one stuck?")
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        yield lock
    finally:
        os.close(fd)


def write_record(path: Path, text: str) -> None:
    """Replace *path* with *text* atomically: a 0600 temporary file, fsync, rename.

    A reader sees the old record or the new one, never a part; after a crash the file
    holds one of the two (the rename itself is not synced: a lost last update is a
    record one step behind, which the next run brings up to date).
    """
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".rollout.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def apply(
    state_dir: Path,
    host: str,
    now: float | None = None,
    values: Mapping[str, Any] | None = None,
    phase: str | None = None,
    event: str | None = None,
    result: Mapping[str, Any] | None = None,
    write: bool = True,
) -> tuple[dict[str, Any] | None, str, dict[str, Any], bool]:
    """:func:`update` of *host*'s record on disk: (old, old text, new, changed).

    With *write*, the read, the update and the write happen under :func:`locked`, so
    concurrent updates of one record are never lost; without it (check mode) nothing is
    written, not even the lock file.
    """
    path = record_path(state_dir, host)
    guard: contextlib.AbstractContextManager[object] = (
        locked(state_dir, host) if write else contextlib.nullcontext()
    )
    with guard:
        old, old_text = read_record(path, host)
        new, changed = update(
            old,
            host,
            time.time() if now is None else now,
            values=values,
            phase=phase,
            event=event,
            result=result,
        )
        if changed and write:
            write_record(path, render(new))
    return old, old_text, new, changed
