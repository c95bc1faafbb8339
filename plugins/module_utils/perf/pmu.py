"""Read the kernel's PMU descriptions from sysfs and resolve perf-style event strings.

Each PMU the kernel registers appears as ``<sysfs>/bus/event_source/devices/<name>``
(usually a symlink into ``<sysfs>/devices``) with:

* ``type``: the number that goes into ``perf_event_attr.type`` (1 software, 2 tracepoint,
  4 the core PMU ``cpu``/``cpu_core``, 5 breakpoint; the others are given out at boot);
* ``format/<term>``: where a term's value goes, e.g. ``event`` -> ``config:0-7``,
  ``ldlat`` -> ``config1:0-15``, AMD ``event`` -> ``config:0-7,32-35``;
* ``events/<alias>``: named events as terms, e.g. ``mem-loads`` ->
  ``event=0xcd,umask=0x1,ldlat=3`` (``<alias>.scale``/``.unit``/``.per-pkg``/``.snapshot``
  are descriptions of the alias, not aliases);
* ``caps/<name>``: e.g. ``pmu_name`` (``icelake``) and ``max_precise`` (``3``).

:func:`resolve_event` turns ``pmu/terms/modifiers`` into the numbers perf puts into
``perf_event_attr``, following tools/perf (util/parse-events.c, util/pmu.c):

1. An alias term (a term with no value that is not a format term, or ``event=<alias>``)
   is replaced, in place, by the alias's own terms; alias names match case-insensitively.
2. ``config=``/``config1=``/``config2=``/``config3=`` terms are hard-coded: each one
   *assigns* the whole word, and they are applied before any format term.
3. Format terms are then applied in order, scattering the value over the format's bits
   (lowest value bit into the lowest listed bit).  On most PMUs perf ORs the bits in and
   never clears any, so a term given both by an alias and by the user gets the OR of both
   values: ``cpu/mem-loads,ldlat=30/`` with the alias's ``ldlat=3`` gives
   ``config1 = 3 | 30 = 0x1f``, the value real ``perf mem record -vv`` logs show.
   PMUs for which perf has a default attr (``intel_pt``, ``cs_etm``, ``arm_spe*``) are
   configured with "zero" set: a later term replaces the bits of an earlier one instead.
   perf's own default bits for those PMUs are not added here.
4. A term with no value means 1 and is accepted for a one-bit format only (perf refuses
   ``no value assigned for term`` otherwise).  A value wider than the format is refused.
5. An alias term with the value ``?`` takes its value from a user term of the same name.
6. A no-value term ``r<hex>`` that is neither a format term nor an alias is a raw config.

perf's JSON event tables (names like ``mem_trans_retired.load_latency_gt_1024``) are not
in sysfs and are not known here; use their terms or ``config=`` instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEVICES_SUBDIR = os.path.join("bus", "event_source", "devices")
MEM_EVENT_NAMES = ("mem-loads", "mem-stores", "mem-loads-aux")
CONFIG_WORDS = ("config", "config1", "config2", "config3")
ALIAS_INFO_SUFFIXES = (".scale", ".unit", ".per-pkg", ".snapshot")
# PMUs for which perf sets perf_event_attr_init_default and so configures with zero=true.
ZEROING_PMU_NAMES = ("intel_pt", "cs_etm")
ZEROING_PMU_PREFIXES = ("arm_spe",)
# perf event terms that are not format terms and do not change the config words.
NON_CONFIG_TERMS = frozenset(
    {
        "name",
        "period",
        "freq",
        "branch_type",
        "time",
        "call-graph",
        "stack-size",
        "max-stack",
        "nr",
        "inherit",
        "no-inherit",
        "overwrite",
        "no-overwrite",
        "percore",
        "aux-output",
        "aux-action",
        "aux-sample-size",
        "metric-id",
        "cpu",
        "ratio-to-prev",
        "driver-config",
    }
)
PERF_FORMAT_BITS = 64
_U64_MAX = (1 << 64) - 1
_MAX_FILE_BYTES = 4096
_MAX_LISTED = 20

_FORMAT_RE = re.compile(r"^(config[0-9]*)\s*:\s*([0-9][0-9,\s-]*)$")
_BIT_RANGE_RE = re.compile(r"^([0-9]+)(?:\s*-\s*([0-9]+))?$")
_TERM_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_RAW_TERM_RE = re.compile(r"^r([0-9a-fA-F]+)$")
_MODIFIERS_RE = re.compile(r"^:?([A-Za-z]*)$")


class PmuError(ValueError):
    """A bad event string or format: the message names the input and what is accepted."""


# --------------------------------------------------------------------------- formats


@dataclass
class FormatTerm:
    """One ``format/<name>`` file: which ``perf_event_attr`` word and which bits."""

    name: str
    field: str
    bits: list[tuple[int, int]]

    @property
    def positions(self) -> list[int]:
        """Bit positions in ascending order (the order perf fills them in)."""
        return sorted({b for lo, hi in self.bits for b in range(lo, hi + 1)})

    @property
    def width(self) -> int:
        return len(self.positions)

    @property
    def mask(self) -> int:
        mask = 0
        for bit in self.positions:
            mask |= 1 << bit
        return mask

    @property
    def max_value(self) -> int:
        return (1 << self.width) - 1

    def encode(self, value: int) -> int:
        """Scatter ``value`` over this format's bits (value bit 0 -> lowest position)."""
        if value < 0 or value > self.max_value:
            raise PmuError(
                f"value {value:#x} too big for format term '{self.name}' ({self}); "
                f"accepted: 0..{self.max_value:#x}"
            )
        out = 0
        for vbit, fbit in enumerate(self.positions):
            if value >> vbit & 1:
                out |= 1 << fbit
        return out

    def __str__(self) -> str:
        ranges = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.bits)
        return f"{self.field}:{ranges}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "field": self.field,
            "bits": [[lo, hi] for lo, hi in self.bits],
            "spec": str(self),
        }


def parse_format(name: str, text: str) -> FormatTerm:
    """Parse a sysfs format value such as ``config:0-7,32-35``, ``config1:0-15``, ``config:21``."""
    spec = text.strip()
    match = _FORMAT_RE.match(spec)
    if match is None:
        raise PmuError(
            f"format '{name}': cannot parse {spec!r}; accepted: "
            "'config[N]:<bit>[-<bit>][,...]' such as 'config:0-7' or 'config1:0-15'"
        )
    word, ranges_text = match.group(1), match.group(2)
    if word not in CONFIG_WORDS:
        raise PmuError(
            f"format '{name}': {word!r} in {spec!r} is not a perf_event_attr word this code "
            f"knows; accepted: {', '.join(CONFIG_WORDS)}"
        )
    bits: list[tuple[int, int]] = []
    for part in ranges_text.split(","):
        range_match = _BIT_RANGE_RE.match(part.strip())
        if range_match is None:
            raise PmuError(
                f"format '{name}': bad bit range {part.strip()!r} in {spec!r}; "
                "accepted: '<bit>' or '<low>-<high>'"
            )
        lo = int(range_match.group(1))
        hi = int(range_match.group(2)) if range_match.group(2) is not None else lo
        if lo > hi or hi >= PERF_FORMAT_BITS:
            raise PmuError(
                f"format '{name}': bit range {part.strip()!r} in {spec!r} is out of order or "
                f"beyond bit {PERF_FORMAT_BITS - 1}; accepted: 0 <= low <= high <= 63"
            )
        bits.append((lo, hi))
    return FormatTerm(name=name, field=word, bits=bits)


# --------------------------------------------------------------------------- PMUs


@dataclass
class Pmu:
    """One PMU from ``<sysfs>/bus/event_source/devices/<name>``."""

    name: str
    type: int
    pmu_name: str | None = None
    max_precise: int | None = None
    events: dict[str, str] = field(default_factory=dict)
    formats: dict[str, FormatTerm] = field(default_factory=dict)
    caps: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Set when only the memory events were read; other aliases are loaded on demand.
    events_dir: str | None = field(default=None, repr=False, compare=False)

    @property
    def mem_events(self) -> dict[str, str]:
        """The ``mem-loads``/``mem-stores``/``mem-loads-aux`` aliases this PMU has."""
        return {name: self.events[name] for name in MEM_EVENT_NAMES if name in self.events}

    @property
    def zeroes_terms(self) -> bool:
        """True where perf lets a later term replace an earlier one's bits (no OR)."""
        return self.name in ZEROING_PMU_NAMES or self.name.startswith(ZEROING_PMU_PREFIXES)

    def load_all_events(self) -> None:
        """Read every alias if only some were read (``read_pmus(all_events=False)``)."""
        if self.events_dir is None:
            return
        events_dir, self.events_dir = self.events_dir, None
        for name, value in _read_events(events_dir, None, self.notes).items():
            self.events.setdefault(name, value)

    def find_alias(self, name: str) -> tuple[str, str] | None:
        """``(alias name, terms)`` for ``name`` matched case-insensitively, as perf does."""
        for candidate in (name, name.lower()):
            if candidate in self.events:
                return candidate, self.events[candidate]
        lowered = name.lower()
        for alias, value in self.events.items():
            if alias.lower() == lowered:
                return alias, value
        if self.events_dir is not None:
            self.load_all_events()
            return self.find_alias(name)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "pmu_name": self.pmu_name,
            "max_precise": self.max_precise,
            "mem_events": self.mem_events,
            "events": dict(self.events),
            "formats": {name: str(term) for name, term in self.formats.items()},
            "caps": dict(self.caps),
            "notes": list(self.notes),
        }


def _read_small(path: str) -> str | None:
    """A sysfs attribute's text, or None if it is missing, unreadable or not text."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES)
    except OSError:
        return None
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None


def _list_dir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _parse_uint(text: str | None) -> int | None:
    if text is None or not text.isdigit():
        return None
    return int(text)


def _read_events(events_dir: str, only: Iterable[str] | None, notes: list[str]) -> dict[str, str]:
    names = list(only) if only is not None else _list_dir(events_dir)
    events: dict[str, str] = {}
    for name in names:
        if name.startswith(".") or name.endswith(ALIAS_INFO_SUFFIXES):
            continue
        path = os.path.join(events_dir, name)
        if only is not None and not os.path.isfile(path):
            continue
        value = _read_small(path)
        if not value:
            notes.append(f"events/{name}: unreadable or empty, skipped")
            continue
        events[name] = value
    return events


def _read_pmu(path: str, name: str, all_events: bool) -> Pmu | None:
    pmu_type = _parse_uint(_read_small(os.path.join(path, "type")))
    if pmu_type is None or pmu_type > 0xFFFFFFFF:
        return None
    pmu = Pmu(name=name, type=pmu_type)

    caps_dir = os.path.join(path, "caps")
    for cap in _list_dir(caps_dir):
        value = _read_small(os.path.join(caps_dir, cap))
        if value is not None:
            pmu.caps[cap] = value
    pmu.pmu_name = pmu.caps.get("pmu_name") or None
    pmu.max_precise = _parse_uint(pmu.caps.get("max_precise"))

    format_dir = os.path.join(path, "format")
    for term in _list_dir(format_dir):
        text = _read_small(os.path.join(format_dir, term))
        if text is None:
            pmu.notes.append(f"format/{term}: unreadable, skipped")
            continue
        try:
            pmu.formats[term] = parse_format(term, text)
        except PmuError as exc:
            pmu.notes.append(f"{exc}; skipped")

    events_dir = os.path.join(path, "events")
    if os.path.isdir(events_dir):
        if all_events:
            pmu.events = _read_events(events_dir, None, pmu.notes)
        else:
            pmu.events = _read_events(events_dir, MEM_EVENT_NAMES, pmu.notes)
            pmu.events_dir = events_dir
    return pmu


def read_pmus(sysfs_root: str = "/sys", *, all_events: bool = True) -> list[Pmu]:
    """Every PMU under ``<sysfs_root>/bus/event_source/devices``, sorted by name.

    A missing directory gives ``[]``.  A PMU without a readable numeric ``type`` is left
    out (perf does the same); unreadable or unparsable format/event files are skipped and
    recorded in ``Pmu.notes``.  With ``all_events=False`` only the memory event aliases
    are read up front and the others on first use by :func:`resolve_event`.
    """
    devices = os.path.join(sysfs_root, DEVICES_SUBDIR)
    pmus: list[Pmu] = []
    for name in _list_dir(devices):
        path = os.path.join(devices, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        pmu = _read_pmu(path, name, all_events)
        if pmu is not None:
            pmus.append(pmu)
    return pmus


def find_pmu(pmus: Sequence[Pmu], name: str) -> Pmu | None:
    for pmu in pmus:
        if pmu.name == name:
            return pmu
    return None


def pmu_by_type(pmus: Sequence[Pmu], pmu_type: int) -> Pmu | None:
    for pmu in pmus:
        if pmu.type == pmu_type:
            return pmu
    return None


def pmu_sysfs_summary(pmus: Sequence[Pmu]) -> list[dict[str, Any]]:
    """JSON-ready facts: name, type, pmu_name, max_precise and mem_events of each PMU."""
    return [
        {
            "name": pmu.name,
            "type": pmu.type,
            "pmu_name": pmu.pmu_name,
            "max_precise": pmu.max_precise,
            "mem_events": pmu.mem_events,
        }
        for pmu in pmus
    ]


# --------------------------------------------------------------------------- events


@dataclass
class ResolvedEvent:
    """The ``perf_event_attr`` numbers an event string stands for."""

    pmu: str
    type: int
    config: int = 0
    config1: int = 0
    config2: int = 0
    config3: int = 0
    modifiers: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "pmu": self.pmu,
            "type": self.type,
            "config": self.config,
            "config1": self.config1,
            "config2": self.config2,
        }


@dataclass
class _Term:
    name: str
    value: int | str
    no_value: bool
    source: str
    used: bool = False


def _split_terms(body: str) -> list[str]:
    """Split on commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in body:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_number(text: str) -> int | None:
    try:
        if text[:2].lower() == "0x" and len(text) > 2:
            return int(text[2:], 16)
        if text.isdigit():
            return int(text, 10)
    except ValueError:
        return None
    return None


def _parse_terms(body: str, source: str) -> list[_Term]:
    """Parse ``a=1,b=0x2,c,d=?`` as perf's term grammar does (numbers: decimal or 0x hex)."""
    if not body.strip():
        return []
    terms: list[_Term] = []
    for raw in _split_terms(body):
        text = raw.strip()
        if not text:
            raise PmuError(
                f"empty term in {source}; accepted: 'term' or 'term=value' separated by commas"
            )
        name, sep, value_text = text.partition("=")
        name, value_text = name.strip(), value_text.strip()
        if not _TERM_NAME_RE.match(name):
            raise PmuError(
                f"bad term name {name!r} in {source}; accepted: letters, digits, '_', '.', '-'"
            )
        if not sep:
            terms.append(_Term(name=name, value=1, no_value=True, source=source))
            continue
        if not value_text:
            raise PmuError(
                f"term '{name}=' has no value in {source}; accepted: '{name}=<number>' "
                f"(decimal or 0x hex) or '{name}' alone for a one-bit term"
            )
        number = _parse_number(value_text)
        value: int | str
        if number is not None:
            if number > _U64_MAX:
                raise PmuError(
                    f"value {value_text} of term '{name}' in {source} does not fit in 64 bits"
                )
            value = number
        else:
            if len(value_text) >= 2 and value_text[0] == value_text[-1] and value_text[0] in "'\"":
                value_text = value_text[1:-1]
            value = value_text
        terms.append(_Term(name=name, value=value, no_value=False, source=source))
    return terms


def _split_spec(spec: str) -> tuple[str | None, str, str]:
    """``(pmu or None, terms body, modifiers)`` for ``pmu/body/mods`` or ``name[:mods]``."""
    if any(char in spec for char in "{}"):
        raise PmuError(
            f"event {spec!r} is a group; accepted: one event such as 'cpu/mem-loads,ldlat=30/P' "
            "(resolve each group member on its own)"
        )
    if "/" not in spec:
        name, _, mods = spec.partition(":")
        if "," in name:
            raise PmuError(
                f"event {spec!r} is a list; accepted: one event such as 'cpu/mem-loads/P'"
            )
        return None, name.strip(), mods
    pmu_name, _, rest = spec.partition("/")
    quote = ""
    for index, char in enumerate(rest):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "/":
            return pmu_name.strip(), rest[:index], rest[index + 1 :]
    raise PmuError(
        f"event {spec!r} has no closing '/'; accepted: 'pmu/terms/' optionally followed by "
        "modifiers, e.g. 'cpu/mem-loads,ldlat=30/P' or 'ibs_op//'"
    )


def _check_modifiers(spec: str, mods: str) -> str:
    match = _MODIFIERS_RE.match(mods.strip())
    if match is None:
        raise PmuError(
            f"bad modifiers {mods!r} in event {spec!r}; accepted: letters after the closing '/' "
            "or after ':', e.g. '/P', '/pp', '/S', ':P', ':u'"
        )
    return match.group(1)


def _names(items: Iterable[str]) -> str:
    listed = sorted(items)
    if not listed:
        return "(none)"
    if len(listed) > _MAX_LISTED:
        return ", ".join(listed[:_MAX_LISTED]) + f", ... ({len(listed)} in all)"
    return ", ".join(listed)


def _pmu_names(pmus: Sequence[Pmu]) -> str:
    return _names(pmu.name for pmu in pmus) if pmus else "(none: no PMU found in sysfs)"


def _alias_for(pmu: Pmu, term: _Term) -> tuple[str, str] | None:
    """The alias a term names, as perf's pmu_find_alias decides."""
    if term.name in CONFIG_WORDS or term.name in NON_CONFIG_TERMS:
        return None
    if isinstance(term.value, int):
        if not term.no_value or term.name in pmu.formats:
            return None
        return pmu.find_alias(term.name)
    if term.name.lower() == "event" and term.value != "?":
        return pmu.find_alias(term.value)
    return None


def _expand_aliases(pmu: Pmu, terms: list[_Term], spec: str) -> list[_Term]:
    expanded: list[_Term] = []
    for term in terms:
        alias = _alias_for(pmu, term)
        if alias is None:
            raw = _RAW_TERM_RE.match(term.name)
            if term.no_value and raw and term.name not in pmu.formats:
                term = _Term("config", int(raw.group(1), 16), False, term.source)
            expanded.append(term)
            continue
        alias_name, alias_terms = alias
        source = f"alias {pmu.name}/events/{alias_name} ({alias_terms!r}) of event {spec!r}"
        expanded.extend(_parse_terms(alias_terms, source))
    return expanded


def _unknown_term(pmu: Pmu, term: _Term) -> PmuError:
    formats = _names(pmu.formats) if pmu.formats else "(none: this PMU takes no terms)"
    return PmuError(
        f"unknown term '{term.name}' for PMU {pmu.name} in {term.source}; "
        f"format terms: {formats}; event aliases: {_names(pmu.events)}; "
        f"also config, config1, config2, config3"
    )


def _term_value(pmu: Pmu, term: _Term, fmt: FormatTerm, terms: list[_Term]) -> int:
    if isinstance(term.value, int):
        if term.no_value and fmt.width > 1:
            raise PmuError(
                f"no value assigned for term '{term.name}' in {term.source}: format "
                f"{fmt} is {fmt.width} bits wide; accepted: '{term.name}=<0..{fmt.max_value:#x}>'"
            )
        return term.value
    if term.value == "?":
        for other in terms:
            if other is not term and other.name == term.name and isinstance(other.value, int):
                other.used = True
                return other.value
        raise PmuError(
            f"required parameter '{term.name}' not specified for {term.source}; "
            f"accepted: add '{term.name}=<number>' to the event's terms"
        )
    raise PmuError(
        f"term '{term.name}={term.value}' in {term.source} needs a number for PMU {pmu.name}; "
        f"accepted: decimal or 0x hex, 0..{fmt.max_value:#x}"
    )


def _configure(pmu: Pmu, terms: list[_Term], modifiers: str) -> ResolvedEvent:
    words = dict.fromkeys(CONFIG_WORDS, 0)
    for term in terms:
        if term.name in CONFIG_WORDS:
            if not isinstance(term.value, int):
                raise PmuError(
                    f"term '{term.name}={term.value}' in {term.source} needs a number; "
                    "accepted: decimal or 0x hex up to 64 bits"
                )
            words[term.name] = term.value
    zero = pmu.zeroes_terms
    for term in terms:
        if term.used or term.name in CONFIG_WORDS or term.name in NON_CONFIG_TERMS:
            continue
        fmt = pmu.formats.get(term.name)
        if fmt is None:
            raise _unknown_term(pmu, term)
        value = _term_value(pmu, term, fmt, terms)
        if value > fmt.max_value:
            raise PmuError(
                f"value {value:#x} too big for term '{term.name}' ({fmt}) in {term.source}; "
                f"accepted: 0..{fmt.max_value:#x}"
            )
        bits = fmt.encode(value)
        if zero:
            words[fmt.field] &= ~fmt.mask
        words[fmt.field] |= bits
    return ResolvedEvent(
        pmu=pmu.name,
        type=pmu.type,
        config=words["config"],
        config1=words["config1"],
        config2=words["config2"],
        config3=words["config3"],
        modifiers=modifiers,
    )


def resolve_event(spec: str, pmus: Sequence[Pmu]) -> ResolvedEvent:
    """The ``perf_event_attr`` type/config words for a perf event string.

    ``spec`` is ``pmu/terms/`` with optional modifiers (``/P``, ``/pp``, ``/S``, ``:P``),
    which are kept in ``modifiers`` and do not change the numbers.  A bare alias name
    (``mem-loads`` or ``mem-loads:P``) is resolved on the one PMU that has that alias;
    if several have it (hybrids) or none, :class:`PmuError` asks for the ``pmu/alias/``
    form and lists the candidates.
    """
    text = spec.strip()
    if not text:
        raise PmuError("empty event; accepted: 'pmu/terms/' such as 'cpu/mem-loads,ldlat=30/P'")
    pmu_name, body, mods = _split_spec(text)
    modifiers = _check_modifiers(text, mods)
    if pmu_name is None:
        return _resolve_bare(text, body, modifiers, pmus)
    if not pmu_name:
        raise PmuError(
            f"event {text!r} names no PMU before '/'; accepted: 'pmu/terms/' with a PMU from: "
            f"{_pmu_names(pmus)}"
        )
    pmu = find_pmu(pmus, pmu_name)
    if pmu is None:
        raise PmuError(f"unknown PMU '{pmu_name}' in event {text!r}; PMUs here: {_pmu_names(pmus)}")
    terms = _parse_terms(body, f"event {text!r}")
    return _configure(pmu, _expand_aliases(pmu, terms, text), modifiers)


def _resolve_bare(text: str, name: str, modifiers: str, pmus: Sequence[Pmu]) -> ResolvedEvent:
    if not _TERM_NAME_RE.match(name):
        raise PmuError(
            f"bad event {text!r}; accepted: 'pmu/terms/' such as 'cpu/mem-loads,ldlat=30/P'"
        )
    owners = [pmu for pmu in pmus if pmu.find_alias(name) is not None]
    if len(owners) == 1:
        pmu = owners[0]
        term = _Term(name=name, value=1, no_value=True, source=f"event {text!r}")
        return _configure(pmu, _expand_aliases(pmu, [term], text), modifiers)
    if owners:
        choices = ", ".join(f"'{pmu.name}/{name}/'" for pmu in owners)
        raise PmuError(f"event {text!r} is an alias of several PMUs; accepted: one of {choices}")
    with_mem = [pmu.name for pmu in pmus if pmu.mem_events]
    hint = f"; PMUs with memory events: {_names(with_mem)}" if with_mem else ""
    raise PmuError(
        f"event {text!r} is not a sysfs event alias of any PMU here; accepted: the "
        f"'pmu/alias/' or 'pmu/term=value,.../' form with a PMU from: {_pmu_names(pmus)}{hint}"
    )
