"""Validation and normalisation of the ``damon_perf`` role inputs.

Pure code (no I/O): inventory data in, typed frozen dataclasses out.  Every error
names the input path (``damon_perf_kdamonds[0].intervals.sample_us``) and says what
is accepted.  Target resolution (pidfile, unit, process, paddr regions) happens on
the host through a :class:`Resolver`; see ``damon.adapters.HostResolver``.

Shared by the ``damon_sysfs`` module, the boot-time applier and the CLI.  Runs on
Python 3.8+ (managed hosts), standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import evidence
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.kernel_facts import (
    MAINLINE_DEFAULTS,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.shared.strict_yaml import (
    StrictLoadError,
    load_json,
    load_yaml,
)

OPERATIONS = ("vaddr", "fvaddr", "paddr")
POLICIES = ("fail", "accessed_bit", "skip")
STATES = ("on", "off")

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
ULONG_MAX = U64_MAX
INT_MAX = (1 << 31) - 1
PID_MAX = 1 << 22  # PID_MAX_LIMIT on 64-bit kernels

DEFAULT_SAMPLE_FREQ = 5000  # the RFC v3 cover letter example
# What a context reads right after it is created (the kernel's defaults, from
# damon.kernel_facts): sample 5 ms, aggregation 100 ms, regions update 60 s.
_ATTRS = "kdamonds/<K>/contexts/<C>/monitoring_attrs/"
DEFAULT_INTERVALS_US = tuple(
    int(MAINLINE_DEFAULTS[_ATTRS + "intervals/" + key])
    for key in ("sample_us", "aggr_us", "update_us")
)
DEFAULT_NR_REGIONS = tuple(
    int(MAINLINE_DEFAULTS[_ATTRS + "nr_regions/" + key]) for key in ("min", "max")
)
MIN_NR_REGIONS = 3

# Size limits of the inputs (documented in roles/damon_perf/defaults/main.yml).
MAX_KDAMONDS = 64
MAX_TARGETS = 64  # per kdamond
MAX_REGIONS = 256  # per target (paddr: in all)
MAX_PERF_EVENTS = 64  # per context, the RFC's limit
MAX_PATH = 4095  # PATH_MAX - 1
MAX_UNIT_NAME = 255  # systemd's UNIT_NAME_MAX - 1
MAX_QUOTE = 80  # characters of an input value an error message quotes

# The role inputs a rendered config or a ``damon-fleet damon plan`` spec file holds.
CONFIG_KEYS = (
    "damon_perf_kdamonds",
    "damon_perf_default_perf_events",
    "damon_perf_sample_freq",
    "damon_perf_no_event_policy",
    "damon_perf_layout",
    "damon_perf_settle_time",
    "damon_perf_fallback_policy",
    "damon_perf_evidence_window",
    "damon_perf_stand_in_kernels",
)
# Inputs of the boot-time unit and applier the role installs (checked, not planned).
BOOT_UNIT_KEYS = ("after_units", "config_dir", "lib_dir", "applier_path", "python")
UNIT_SUFFIXES = (
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
)

KDAMOND_KEYS = (
    "operations",
    "targets",
    "intervals",
    "nr_regions",
    "perf_events",
    "state",
    "contexts",
)
CONTEXT_KEYS = tuple(k for k in KDAMOND_KEYS if k not in ("state", "contexts"))
TARGET_SELECTORS = ("pid", "pidfile", "unit", "process")
TARGET_KEYS = (*TARGET_SELECTORS, "regions")
REGION_KEYS = ("start", "end")
INTERVAL_KEYS = ("sample_us", "aggr_us", "update_us")
NR_REGIONS_KEYS = ("min", "max")
PERF_EVENT_KEYS = ("type", "config", "config1", "config2", "sample_freq", "sample_phys_addr")
# Informational keys the perf_detect facts carry; accepted and ignored.
PERF_EVENT_INFO_KEYS = ("pmu", "name")

_DURATION_RE = re.compile(r"[ \t]*([0-9]+)(?:\.([0-9]+))?[ \t]*(us|ms|s|m|min|h)?[ \t]*", re.ASCII)
_MAX_DIGITS = 40  # far beyond 2^64; keeps int() of a hostile string cheap
_DURATION_UNITS = {
    None: 1,
    "us": 1,
    "ms": 1000,
    "s": 1000000,
    "m": 60000000,
    "min": 60000000,
    "h": 3600000000,
}
# systemd unit names: prefix[@instance].suffix; prefix chars [A-Za-z0-9:_.\\-],
# the instance may also hold '@' (unit_name_is_valid() in systemd's unit-name.c).
_UNIT_RE = re.compile(
    r"(?P<prefix>[A-Za-z0-9:_.\\-]+?)(?:@(?P<instance>[A-Za-z0-9:_.\\@-]*))?\.(?P<suffix>[a-z]+)",
    re.ASCII,
)
_PROCESS_RE = re.compile(r"[^/\x00-\x1f\x7f]{1,15}")
_INT_TEXT_RE = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0|[1-9][0-9]*", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class SpecError(ValueError):
    """One or more invalid inputs; ``problems`` lists ``path: message`` strings."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class PerfEvent:
    """One ``perf_events/<P>`` directory."""

    type: int
    config: int
    config1: int = 0
    config2: int = 0
    sample_freq: int | None = None  # None: the spec-wide default (5000)
    sample_phys_addr: bool | None = None  # None: 1 for paddr, else 0


@dataclass(frozen=True)
class Region:
    start: int
    end: int


@dataclass(frozen=True)
class Target:
    """A monitoring target.

    ``kind`` is ``pid``, ``pidfile``, ``unit``, ``process`` (``ref`` says which) or
    ``regions`` (a paddr target made of ``regions`` only).  ``pid`` is set once the
    target is resolved.
    """

    kind: str
    ref: str = ""
    pid: int | None = None
    regions: tuple[Region, ...] = ()

    @property
    def resolved(self) -> bool:
        return self.kind == "regions" or self.pid is not None


@dataclass(frozen=True)
class Intervals:
    sample_us: int = DEFAULT_INTERVALS_US[0]
    aggr_us: int = DEFAULT_INTERVALS_US[1]
    update_us: int = DEFAULT_INTERVALS_US[2]


@dataclass(frozen=True)
class KdamondSpec:
    """One kdamond with its single context.

    ``perf_events`` is ``None`` when the input did not list any: the spec-wide
    defaults (detected facts) apply.  An explicit empty list asks for the
    accessed-bit check on purpose.
    """

    operations: str
    targets: tuple[Target, ...]
    intervals: Intervals = Intervals()
    nr_regions_min: int = DEFAULT_NR_REGIONS[0]
    nr_regions_max: int = DEFAULT_NR_REGIONS[1]
    perf_events: tuple[PerfEvent, ...] | None = None
    state: str = "on"


@dataclass(frozen=True)
class DamonSpec:
    kdamonds: tuple[KdamondSpec, ...]
    no_event_policy: str = "fail"
    default_perf_events: tuple[PerfEvent, ...] = ()
    sample_freq: int = DEFAULT_SAMPLE_FREQ

    def events_for(self, index: int) -> tuple[PerfEvent, ...]:
        """The perf events kdamond ``index`` uses, every field filled in.

        Its own list if it gave one, else the defaults (detected facts);
        ``sample_freq`` falls back to the spec-wide value and
        ``sample_phys_addr`` to 1 for paddr, 0 otherwise.
        """
        kdamond = self.kdamonds[index]
        own = kdamond.perf_events
        events = self.default_perf_events if own is None else own
        return tuple(
            replace(
                event,
                sample_freq=self.sample_freq if event.sample_freq is None else event.sample_freq,
                sample_phys_addr=(
                    kdamond.operations == "paddr"
                    if event.sample_phys_addr is None
                    else event.sample_phys_addr
                ),
            )
            for event in events
        )


class Resolver(Protocol):
    """Host look-ups that turn symbolic targets into pids and regions."""

    def pid_of_pidfile(self, path: str) -> int: ...

    def pid_of_unit(self, unit: str) -> int: ...

    def pid_of_process(self, name: str) -> int: ...

    def system_ram(self) -> list[tuple[int, int]]: ...


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


# --------------------------------------------------------------------------- scalars


def quote(value: Any) -> str:
    """A short, bounded rendering of an input value for an error message.

    Strings are quoted (cut at :data:`MAX_QUOTE` characters), integers shown if
    short; any other value is named by its type only, so an error never renders
    an unbounded structure (a YAML alias bomb).
    """
    if isinstance(value, str):
        if len(value) <= MAX_QUOTE:
            return repr(value)
        return repr(value[:MAX_QUOTE]) + f"... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() <= 256:
            return str(value)
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    return f"a {type(value).__name__}"


def parse_int(value: Any, path: str, minimum: int = 0, maximum: int = U64_MAX) -> int:
    """An integer or a string in decimal or ``0x`` hex (``0o``/``0b`` also work).

    Strings with a leading zero (``010``) are refused: the kernel would read them as
    octal, which is rarely what an inventory means.  Only ASCII digits count.
    """
    accepted = f"an integer (decimal, or a hex string like '0x1cd') in [{minimum}, {maximum}]"
    if isinstance(value, bool):
        raise SpecError([f"{path}: got a boolean; expected {accepted}"])
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip(" \t").replace("_", "")
        if len(text) > _MAX_DIGITS + 2 or not _INT_TEXT_RE.fullmatch(text):
            raise SpecError([f"{path}: {quote(value)} is not {accepted}"])
        number = int(text, 0)
    else:
        raise SpecError([f"{path}: got {type(value).__name__}; expected {accepted}"])
    if number < minimum or number > maximum:
        raise SpecError([f"{path}: {quote(number)} is out of range; expected {accepted}"])
    return number


def parse_duration_us(value: Any, path: str) -> int:
    """Microseconds: an integer, or a string like ``5s``, ``100ms``, ``10us``, ``2m``, ``1h``.

    Exact integer arithmetic (no float): ``9007199254740993us`` stays exact, and a
    value above the kernel's unsigned long (2^64-1) is refused, naming the input.
    """
    accepted = (
        "microseconds as an integer, or a duration like '5s', '100ms', '10us', '2m', '1h', "
        f"from 1us to {ULONG_MAX}us"
    )
    if isinstance(value, bool):
        raise SpecError([f"{path}: got a boolean; expected {accepted}"])
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if not match:
            raise SpecError([f"{path}: {quote(value)} is not {accepted}"])
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        whole = whole.lstrip("0") or "0"
        fraction = fraction.rstrip("0")
        if len(whole) + len(fraction) > _MAX_DIGITS:
            raise SpecError([f"{path}: {quote(value)} is out of range; expected {accepted}"])
        scaled = int(whole + fraction) * _DURATION_UNITS[unit]
        number, remainder = divmod(scaled, 10 ** len(fraction))
        if remainder:
            raise SpecError(
                [
                    f"{path}: {quote(value)} is not a whole number of microseconds; "
                    f"expected {accepted}"
                ]
            )
    else:
        raise SpecError([f"{path}: got {type(value).__name__}; expected {accepted}"])
    if number < 1 or number > ULONG_MAX:
        raise SpecError([f"{path}: {quote(value)} is out of range; expected {accepted}"])
    return number


def parse_bool(value: Any, path: str) -> bool:
    """A boolean, 0/1, or y/n/yes/no/true/false/on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip(" \t").lower()
        if text in ("1", "y", "yes", "true", "on"):
            return True
        if text in ("0", "n", "no", "false", "off"):
            return False
    raise SpecError([f"{path}: {quote(value)} is not a boolean; expected true/false, 1/0 or y/n"])


def parse_state(value: Any, path: str) -> str:
    """``on`` or ``off``; YAML reads an unquoted ``on``/``off`` as a boolean, so
    ``True`` is ``on`` and ``False`` is ``off``."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    return _choice(value, path, STATES)


def _choice(value: Any, path: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(["{}: {} is not one of {}".format(path, quote(value), ", ".join(choices))])
    return value


def _mapping(value: Any, path: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(
            [
                "{}: expected a mapping with keys {}, got {}".format(
                    path, ", ".join(keys), type(value).__name__
                )
            ]
        )
    unknown = [k for k in value if k not in keys]
    if unknown:
        shown = sorted(_key_name(k) for k in unknown[:8])
        more = f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else ""
        raise SpecError(
            [
                "{}: unknown key(s) {}{}; accepted keys: {}".format(
                    path, ", ".join(shown), more, ", ".join(keys)
                )
            ]
        )
    return value


def _key_name(key: Any) -> str:
    if isinstance(key, str) and len(key) <= MAX_QUOTE and key.isprintable():
        return key
    return quote(key)


def _list(value: Any, path: str, limit: int | None = None, what: str = "items") -> Sequence[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise SpecError([f"{path}: expected a list, got {type(value).__name__}"])
    if limit is not None and len(value) > limit:
        raise SpecError([f"{path}: {len(value)} {what}; at most {limit} are accepted"])
    return value


def check_unit_name(value: Any, path: str, default_suffix: str | None = None) -> str:
    """A systemd unit name, checked as systemd does (``unit_name_is_valid``).

    ``prefix[@instance].suffix`` of ``[A-Za-z0-9:_.\\-]`` (the instance may hold ``@``),
    a known unit type suffix, at most 255 characters, no leading ``-``.  A template
    without an instance (``foo@.service``) is refused: it names no running unit.
    With ``default_suffix``, a name without ``.`` gets it (``memcached`` ->
    ``memcached.service``).
    """
    accepted = (
        "a systemd unit name such as 'memcached.service' or 'getty@tty1.service' "
        "(letters, digits, ':_.@-\\', a unit type suffix, at most 255 characters)"
    )
    if not isinstance(value, str):
        raise SpecError([f"{path}: got {type(value).__name__}; expected {accepted}"])
    name = value
    if default_suffix is not None and "." not in name:
        name = f"{name}.{default_suffix}"
    match = _UNIT_RE.fullmatch(name)
    if (
        len(name) > MAX_UNIT_NAME
        or match is None
        or name.startswith("-")
        or match.group("suffix") not in UNIT_SUFFIXES
    ):
        raise SpecError([f"{path}: {quote(value)} is not {accepted}"])
    if match.group("instance") == "":
        raise SpecError(
            [f"{path}: {quote(value)} is a template without an instance; expected {accepted}"]
        )
    return name


def check_host_path(value: Any, path: str) -> str:
    """An absolute path usable in a unit file, a script and a shebang line.

    No control characters (newline, NUL, ...), no whitespace-only parts, at most
    4095 characters.  Spaces, ``%`` and ``$`` are fine: the templates quote and
    escape them the systemd way.
    """
    accepted = "an absolute path without control characters (at most 4095 characters)"
    if not isinstance(value, str):
        raise SpecError([f"{path}: got {type(value).__name__}; expected {accepted}"])
    if (
        not value.startswith("/")
        or len(value) > MAX_PATH
        or _CONTROL_RE.search(value)
        or any(part in (".", "..") for part in value.split("/"))
    ):
        raise SpecError([f"{path}: {quote(value)} is not {accepted}"])
    return value


def check_boot_unit(value: Any, prefix: str = "damon_perf_") -> dict[str, Any]:
    """The inputs of the boot-time unit and applier: ``after_units`` (unit names),
    ``config_dir``, ``lib_dir``, ``applier_path`` (paths) and ``python`` (a path
    without spaces: it is the script's ``#!`` line).  Returns them checked."""
    raw = _mapping(value, prefix + "boot_unit", BOOT_UNIT_KEYS)
    problems = _Problems()
    out: dict[str, Any] = {}
    try:
        units = _list(raw.get("after_units") or [], prefix + "after_units", MAX_TARGETS, "units")
        checked = []
        for index, unit in enumerate(units):
            try:
                checked.append(check_unit_name(unit, f"{prefix}after_units[{index}]"))
            except SpecError as err:
                problems.items.extend(err.problems)
        out["after_units"] = checked
    except SpecError as err:
        problems.items.extend(err.problems)
    for key in ("config_dir", "lib_dir", "applier_path", "python"):
        if raw.get(key) is None:
            continue
        try:
            out[key] = check_host_path(raw[key], prefix + key)
            if key == "python" and " " in raw[key]:  # a tab is a control character: refused above
                problems.add(prefix + key, f"{quote(raw[key])}: a '#!' line cannot hold spaces")
        except SpecError as err:
            problems.items.extend(err.problems)
    if problems.items:
        raise SpecError(problems.items)
    return out


# --------------------------------------------------------------------------- structures


def parse_perf_event(value: Any, path: str) -> PerfEvent:
    """One perf event; ``sample_freq``/``sample_phys_addr`` may be left out."""
    raw = _mapping(value, path, PERF_EVENT_KEYS + PERF_EVENT_INFO_KEYS)
    problems = _Problems()
    fields: dict[str, Any] = {}
    for key, maximum in (("type", U32_MAX), ("config", U64_MAX)):
        if key not in raw:
            problems.add(f"{path}.{key}", "required (from 'perf mem record -vv' or facts)")
            continue
        _collect(problems, fields, key, parse_int, raw[key], f"{path}.{key}", 0, maximum)
    for key in ("config1", "config2"):
        if key in raw:
            _collect(problems, fields, key, parse_int, raw[key], f"{path}.{key}", 0, U64_MAX)
    if "sample_freq" in raw and raw["sample_freq"] is not None:
        _collect(
            problems,
            fields,
            "sample_freq",
            parse_int,
            raw["sample_freq"],
            f"{path}.sample_freq",
            1,
            U64_MAX,
        )
    if "sample_phys_addr" in raw and raw["sample_phys_addr"] is not None:
        try:
            fields["sample_phys_addr"] = parse_bool(
                raw["sample_phys_addr"], path + ".sample_phys_addr"
            )
        except SpecError as err:
            problems.items.extend(err.problems)
    if problems.items:
        raise SpecError(problems.items)
    return PerfEvent(**fields)


def _collect(problems: _Problems, out: dict[str, Any], key: str, fn: Any, *args: Any) -> None:
    try:
        out[key] = fn(*args)
    except SpecError as err:
        problems.items.extend(err.problems)


def parse_perf_events(value: Any, path: str) -> tuple[PerfEvent, ...]:
    items = _list(value, path, MAX_PERF_EVENTS, "perf events (the kernel's limit per context)")
    problems = _Problems()
    events: list[PerfEvent] = []
    for index, item in enumerate(items):
        try:
            events.append(parse_perf_event(item, f"{path}[{index}]"))
        except SpecError as err:
            problems.items.extend(err.problems)
    if problems.items:
        raise SpecError(problems.items)
    return tuple(events)


def _parse_region(value: Any, path: str) -> Region:
    raw = _mapping(value, path, REGION_KEYS)
    missing = [k for k in REGION_KEYS if k not in raw]
    if missing:
        raise SpecError(
            ["{}: missing {}; a region is {{start, end}}".format(path, ", ".join(missing))]
        )
    start = parse_int(raw["start"], path + ".start", 0, ULONG_MAX)
    end = parse_int(raw["end"], path + ".end", 0, ULONG_MAX)
    if start >= end:
        raise SpecError([f"{path}: start ({start:#x}) must be below end ({end:#x})"])
    return Region(start, end)


def _parse_target(value: Any, path: str, operations: str) -> Target:
    if isinstance(value, Mapping) and set(value) <= set(REGION_KEYS) and value:
        if operations != "paddr":
            raise SpecError(
                [
                    f"{path}: a bare {{start, end}} region target needs operations 'paddr'; "
                    "for fvaddr give {pid|pidfile|unit|process, regions}"
                ]
            )
        region = _parse_region(value, path)
        return Target("regions", regions=(region,))
    raw = _mapping(value, path, TARGET_KEYS + REGION_KEYS)
    selectors = [k for k in TARGET_SELECTORS if k in raw]
    if len(selectors) != 1:
        raise SpecError(
            [
                "{}: give exactly one of {} (or {{start, end}} for paddr)".format(
                    path, ", ".join(TARGET_SELECTORS)
                )
            ]
        )
    if operations == "paddr":
        raise SpecError(
            [
                f"{path}: paddr monitors physical memory; targets are {{start, end}} regions, "
                "or none to use System RAM from /proc/iomem"
            ]
        )
    if any(k in raw for k in REGION_KEYS):
        raise SpecError([f"{path}: put fvaddr address ranges under 'regions'"])
    kind = selectors[0]
    ref_path = f"{path}.{kind}"
    ref = raw[kind]
    if kind == "pid":
        target = Target("pid", pid=parse_int(ref, ref_path, 1, PID_MAX))
    elif kind == "pidfile":
        try:
            target = Target("pidfile", ref=check_host_path(ref, ref_path))
        except SpecError:
            raise SpecError(
                [f"{ref_path}: {quote(ref)} is not an absolute path to a pid file"]
            ) from None
    elif kind == "unit":
        target = Target("unit", ref=check_unit_name(ref, ref_path, "service"))
    else:
        if not isinstance(ref, str) or not _PROCESS_RE.fullmatch(ref):
            raise SpecError(
                [
                    f"{ref_path}: expected a process name as in /proc/<pid>/comm "
                    "(1-15 characters, no '/')"
                ]
            )
        target = Target("process", ref=ref)
    regions: tuple[Region, ...] = ()
    if "regions" in raw:
        if operations != "fvaddr":
            raise SpecError(
                [
                    f"{path}.regions: fixed regions need operations 'fvaddr' (vaddr follows the "
                    "process mappings)"
                ]
            )
        regions = tuple(
            _parse_region(item, f"{path}.regions[{i}]")
            for i, item in enumerate(
                _list(raw["regions"], path + ".regions", MAX_REGIONS, "regions")
            )
        )
    if operations == "fvaddr" and not regions:
        raise SpecError([f"{path}.regions: fvaddr needs at least one {{start, end}} region"])
    return replace(target, regions=regions)


def parse_kdamond(value: Any, path: str) -> KdamondSpec:
    raw = dict(_mapping(value, path, KDAMOND_KEYS))
    if "contexts" in raw:
        contexts = _list(raw.pop("contexts"), path + ".contexts")
        if len(contexts) > 1:
            raise SpecError(
                [
                    f"{path}.contexts: the kernel accepts at most one context per kdamond "
                    "(nr_contexts 0 or 1); use one kdamond per context"
                ]
            )
        if contexts:
            inner = _mapping(contexts[0], path + ".contexts[0]", CONTEXT_KEYS)
            clash = sorted(k for k in inner if k in raw)
            if clash:
                raise SpecError(
                    [
                        "{}: {} given both in the kdamond and in contexts[0]".format(
                            path, ", ".join(clash)
                        )
                    ]
                )
            raw.update(inner)
    problems = _Problems()
    operations = "vaddr"
    if "operations" not in raw:
        problems.add(path + ".operations", "required; one of {}".format(", ".join(OPERATIONS)))
    else:
        try:
            operations = _choice(raw["operations"], path + ".operations", OPERATIONS)
        except SpecError as err:
            problems.items.extend(err.problems)
    fields: dict[str, Any] = {"operations": operations}

    targets: list[Target] = []
    try:
        given = raw.get("targets")
        items = [] if given is None else _list(given, path + ".targets", MAX_TARGETS, "targets")
        for index, item in enumerate(items):
            try:
                targets.append(_parse_target(item, f"{path}.targets[{index}]", operations))
            except SpecError as err:
                problems.items.extend(err.problems)
        if not items and operations != "paddr":
            problems.add(path + ".targets", f"{operations} needs at least one process target")
    except SpecError as err:
        problems.items.extend(err.problems)
    # paddr: all {start, end} items form the regions of the one physical target
    if operations == "paddr" and targets:
        regions = tuple(r for t in targets for r in t.regions)
        if len(regions) > MAX_REGIONS:
            problems.add(
                path + ".targets", f"{len(regions)} regions; at most {MAX_REGIONS} are accepted"
            )
        targets = [Target("regions", regions=regions)]
    fields["targets"] = tuple(targets)

    if raw.get("intervals") is not None:
        try:
            ivals = _mapping(raw["intervals"], path + ".intervals", INTERVAL_KEYS)
            got: dict[str, int] = {}
            for key in INTERVAL_KEYS:
                if key in ivals:
                    _collect(
                        problems, got, key, parse_duration_us, ivals[key], f"{path}.intervals.{key}"
                    )
            merged = replace(Intervals(), **got)
            if merged.sample_us > merged.aggr_us:
                problems.add(
                    path + ".intervals",
                    f"sample_us ({merged.sample_us}) must not exceed aggr_us ({merged.aggr_us})",
                )
            fields["intervals"] = merged
        except SpecError as err:
            problems.items.extend(err.problems)

    if raw.get("nr_regions") is not None:
        try:
            nrr = _mapping(raw["nr_regions"], path + ".nr_regions", NR_REGIONS_KEYS)
            got = {}
            for key in NR_REGIONS_KEYS:
                if key in nrr:
                    _collect(
                        problems,
                        got,
                        key,
                        parse_int,
                        nrr[key],
                        f"{path}.nr_regions.{key}",
                        0,
                        ULONG_MAX,
                    )
            low = got.get("min", DEFAULT_NR_REGIONS[0])
            high = got.get("max", DEFAULT_NR_REGIONS[1])
            if "min" in got and low < MIN_NR_REGIONS:
                problems.add(path + ".nr_regions.min", f"{low} is below the kernel minimum of 3")
            if len(got) == len(NR_REGIONS_KEYS) and low > high:
                problems.add(path + ".nr_regions", f"min ({low}) must not exceed max ({high})")
            elif len(got) < len(NR_REGIONS_KEYS) and low > high:
                problems.add(
                    path + ".nr_regions",
                    f"min {low} exceeds max {high} (the default for the key not given); give both",
                )
            fields["nr_regions_min"] = low
            fields["nr_regions_max"] = high
        except SpecError as err:
            problems.items.extend(err.problems)

    if raw.get("perf_events") is not None:
        try:
            fields["perf_events"] = parse_perf_events(raw["perf_events"], path + ".perf_events")
        except SpecError as err:
            problems.items.extend(err.problems)
    if raw.get("state") is not None:
        try:
            fields["state"] = parse_state(raw["state"], path + ".state")
        except SpecError as err:
            problems.items.extend(err.problems)
    if problems.items:
        raise SpecError(problems.items)
    return KdamondSpec(**fields)


def parse_spec(
    kdamonds: Any,
    no_event_policy: Any = "fail",
    default_perf_events: Any = None,
    sample_freq: Any = None,
    prefix: str = "damon_perf_",
) -> DamonSpec:
    """Validate the role inputs and return a :class:`DamonSpec`.

    ``sample_freq`` (when given) fills events that lack their own ``sample_freq``;
    it defaults to 5000, as in the published example.
    """
    problems = _Problems()
    base = prefix + "kdamonds"
    parsed: list[KdamondSpec] = []
    try:
        items = _list(kdamonds if kdamonds is not None else [], base, MAX_KDAMONDS, "kdamonds")
        for index, item in enumerate(items):
            try:
                parsed.append(parse_kdamond(item, f"{base}[{index}]"))
            except SpecError as err:
                problems.items.extend(err.problems)
    except SpecError as err:
        problems.items.extend(err.problems)
    policy = "fail"
    try:
        policy = _choice(no_event_policy, prefix + "no_event_policy", POLICIES)
    except SpecError as err:
        problems.items.extend(err.problems)
    freq = DEFAULT_SAMPLE_FREQ
    if sample_freq is not None:
        try:
            freq = parse_int(sample_freq, prefix + "sample_freq", 1, U64_MAX)
        except SpecError as err:
            problems.items.extend(err.problems)
    defaults: tuple[PerfEvent, ...] = ()
    if default_perf_events is not None:
        try:
            defaults = parse_perf_events(default_perf_events, prefix + "default_perf_events")
        except SpecError as err:
            problems.items.extend(err.problems)
    if problems.items:
        raise SpecError(problems.items)
    return DamonSpec(tuple(parsed), policy, defaults, freq)


def resolve_targets(spec: DamonSpec, resolver: Resolver) -> DamonSpec:
    """Return ``spec`` with every target resolved to a pid (and paddr regions filled).

    pidfile, unit (its MainPID) and process targets go through ``resolver``; a
    paddr kdamond without regions gets the System RAM ranges of /proc/iomem.
    """
    problems = _Problems()
    kdamonds: list[KdamondSpec] = []
    for k_index, kd in enumerate(spec.kdamonds):
        targets: list[Target] = []
        for t_index, target in enumerate(kd.targets):
            path = f"damon_perf_kdamonds[{k_index}].targets[{t_index}]"
            try:
                targets.append(_resolve_target(target, resolver))
            except (OSError, ValueError, LookupError) as err:
                detail = " ".join(str(err).split())[:200]
                problems.add(path, f"cannot resolve {target.kind} {quote(target.ref)}: {detail}")
        if kd.operations == "paddr" and not any(t.regions for t in targets):
            try:
                ram = resolver.system_ram()
            except (OSError, ValueError) as err:
                problems.add(
                    f"damon_perf_kdamonds[{k_index}].targets",
                    f"no regions given and System RAM from /proc/iomem unavailable: {err}",
                )
                ram = []
            targets = [Target("regions", regions=tuple(Region(s, e) for s, e in ram))]
        kdamonds.append(replace(kd, targets=tuple(targets)))
    if problems.items:
        raise SpecError(problems.items)
    return replace(spec, kdamonds=tuple(kdamonds))


def _resolve_target(target: Target, resolver: Resolver) -> Target:
    if target.resolved:
        return target
    if target.kind == "pidfile":
        pid = resolver.pid_of_pidfile(target.ref)
    elif target.kind == "unit":
        pid = resolver.pid_of_unit(target.ref)
    elif target.kind == "process":
        pid = resolver.pid_of_process(target.ref)
    else:  # pragma: no cover - parse_spec only builds the kinds above
        raise ValueError(f"unknown target kind {target.kind}")
    if pid < 1 or pid > PID_MAX:
        raise ValueError(f"got pid {pid}")
    return replace(target, pid=pid)


# --------------------------------------------------------------------------- files

# The DAMON sysfs layouts (docs/damon-perf-abi.md), defined here once: damon.plan plans for
# each, damon_sysfs and the damon_perf role offer them (tests/unit/test_contracts.py).
LAYOUTS = ("rfc-v3", "rfc-v1", "successor", "mainline")
LAYOUT_CHOICES = ("auto", *LAYOUTS)
MAX_SETTLE_TIME = 600.0


@dataclass(frozen=True)
class DamonConfig:
    """A whole config: the rendered boot-time file or a ``damon plan`` spec file."""

    spec: DamonSpec
    layout: str = "auto"
    settle_time: float = 1.0
    fallback_policy: str = evidence.FALLBACK_ACCESSED_BITS
    evidence_window: float = evidence.DEFAULT_WINDOW
    stand_in_kernels: tuple[str, ...] = ()


def parse_settle_time(value: Any, path: str) -> float:
    accepted = f"seconds as a number from 0 to {MAX_SETTLE_TIME:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError([f"{path}: got {type(value).__name__}; expected {accepted}"])
    text = value.strip(" \t") if isinstance(value, str) else None
    if text is not None and not re.fullmatch(r"[0-9]{1,6}(?:\.[0-9]{1,6})?", text, re.ASCII):
        raise SpecError([f"{path}: {quote(value)} is not {accepted}"])
    number = float(text) if text is not None else float(value)
    if not 0 <= number <= MAX_SETTLE_TIME:  # also refuses nan
        raise SpecError([f"{path}: {quote(value)} is out of range; expected {accepted}"])
    return number


def parse_config(config: Any, source: str) -> DamonConfig:
    """Validate a mapping of ``damon_perf_*`` inputs read from ``source``.

    Unknown keys are refused (a misspelt ``damon_perf_kdamond`` would otherwise
    plan zero kdamonds and remove every running one), and so is a config without
    ``damon_perf_kdamonds`` (give ``[]`` to remove every kdamond on purpose).
    """
    if not isinstance(config, Mapping):
        raise SpecError(
            [
                f"{source}: expected a mapping of damon_perf_* inputs "
                f"({', '.join(CONFIG_KEYS)}), got {type(config).__name__}"
            ]
        )
    unknown = [k for k in config if k not in CONFIG_KEYS]
    if unknown:
        shown = ", ".join(sorted(_key_name(k) for k in unknown[:8]))
        more = f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else ""
        raise SpecError(
            [f"{source}: unknown key(s) {shown}{more}; accepted keys: {', '.join(CONFIG_KEYS)}"]
        )
    if "damon_perf_kdamonds" not in config:
        raise SpecError(
            [
                f"{source}: damon_perf_kdamonds is missing; give the kdamonds to run "
                "([] to remove every kdamond)"
            ]
        )
    problems = _Problems()
    spec = None
    try:
        spec = parse_spec(
            config["damon_perf_kdamonds"],
            config.get("damon_perf_no_event_policy", "fail"),
            config.get("damon_perf_default_perf_events"),
            config.get("damon_perf_sample_freq"),
        )
    except SpecError as err:
        problems.items.extend(err.problems)
    layout = "auto"
    if config.get("damon_perf_layout") is not None:
        try:
            layout = _choice(config["damon_perf_layout"], "damon_perf_layout", LAYOUT_CHOICES)
        except SpecError as err:
            problems.items.extend(err.problems)
    settle = 1.0
    if config.get("damon_perf_settle_time") is not None:
        try:
            settle = parse_settle_time(config["damon_perf_settle_time"], "damon_perf_settle_time")
        except SpecError as err:
            problems.items.extend(err.problems)
    fallback, window = evidence.FALLBACK_ACCESSED_BITS, evidence.DEFAULT_WINDOW
    kernels: tuple[str, ...] = ()
    try:
        if config.get("damon_perf_fallback_policy") is not None:
            fallback = evidence.parse_fallback_policy(
                config["damon_perf_fallback_policy"], "damon_perf_fallback_policy"
            )
    except evidence.EvidenceInputError as err:
        problems.items.append(str(err))
    try:
        if config.get("damon_perf_evidence_window") is not None:
            window = evidence.parse_window(
                config["damon_perf_evidence_window"], "damon_perf_evidence_window"
            )
    except evidence.EvidenceInputError as err:
        problems.items.append(str(err))
    try:
        kernels = evidence.parse_stand_in_kernels(
            config.get("damon_perf_stand_in_kernels"), "damon_perf_stand_in_kernels"
        )
    except evidence.EvidenceInputError as err:
        problems.items.append(str(err))
    if problems.items or spec is None:
        raise SpecError(problems.items)
    return DamonConfig(spec, layout, settle, fallback, window, kernels)


def load_config_text(text: str, source: str) -> DamonConfig:
    """Load (strictly: see ``shared.strict_yaml``) and validate the text of a config file.

    ``#`` comment lines are allowed before JSON.  Raises :class:`SpecError`.
    """
    try:
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        try:
            data = load_json(body, source)
        except StrictLoadError:
            raise
        except (ValueError, RecursionError):
            data = load_yaml(text, source)
    except StrictLoadError as err:
        raise SpecError([str(err)]) from None
    return parse_config(data, source)
