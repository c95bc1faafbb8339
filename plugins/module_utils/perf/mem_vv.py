"""Read the debug output of ``perf mem record -vv`` (or any ``perf record -vv``).

The input is the text perf writes to stderr at ``-vv``/``-vvv``: one
``perf_event_attr:`` block per attempt to open an event, followed by one
``sys_perf_event_open:`` line per CPU or thread, plus fallback and error lines.
Logs copied from mail are accepted too: leading whitespace (and ``>`` quote marks)
is stripped, column padding may be collapsed to single spaces, and every line that
is not understood is skipped.  :func:`parse` never raises on any ``str``, and its time
is linear in the length of the text, however many lines, fields per line or distinct error
lines it holds (tests/bench/bench_parse.py measures it: 50 ms per 10,000 lines).

Field names (keys of :attr:`AttrBlock.fields`) are perf's own names from
``tools/perf/util/perf_event_attr_fprintf.c``, except for the union names, which
are normalised to the member that is meaningful for the block:

* ``{ sample_period, sample_freq }`` -> ``sample_freq`` when ``freq`` is set,
  otherwise ``sample_period``;
* ``{ wakeup_events, wakeup_watermark }`` -> ``wakeup_watermark`` when ``watermark``
  is set, otherwise ``wakeup_events``;
* ``{ bp_addr, config1 }`` -> ``config1`` and ``{ bp_len, config2 }`` -> ``config2``
  (also for breakpoint events: the numbers are the same).

Numbers are trusted, annotations in parentheses are only hints (perf derives the
``config`` alias from the number alone and can get it wrong).  Flag fields
(``sample_type``, ``read_format``, ``branch_sample_type``) are lists of names; when
perf printed a number instead, the number is decoded into the same names.  A field
perf did not print is 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

FieldValue: TypeAlias = int | list[str]
Kind: TypeAlias = Literal["loads", "stores", "all"]

# --------------------------------------------------------------------------- names

#: Plain field names perf prints (perf_event_attr_fprintf.c, all versions seen), plus
#: the members of the union names, which some printers show on their own.
ATTR_FIELD_NAMES: tuple[str, ...] = (
    "type",
    "size",
    "config",
    "sample_type",
    "read_format",
    "disabled",
    "inherit",
    "pinned",
    "exclusive",
    "exclude_user",
    "exclude_kernel",
    "exclude_hv",
    "exclude_idle",
    "mmap",
    "comm",
    "freq",
    "inherit_stat",
    "enable_on_exec",
    "task",
    "watermark",
    "precise_ip",
    "mmap_data",
    "sample_id_all",
    "exclude_host",
    "exclude_guest",
    "exclude_callchain_kernel",
    "exclude_callchain_user",
    "mmap2",
    "comm_exec",
    "use_clockid",
    "context_switch",
    "write_backward",
    "namespaces",
    "ksymbol",
    "bpf_event",
    "aux_output",
    "cgroup",
    "text_poke",
    "build_id",
    "inherit_thread",
    "remove_on_exec",
    "sigtrap",
    "defer_callchain",
    "defer_output",
    "bp_type",
    "branch_sample_type",
    "sample_regs_user",
    "sample_stack_user",
    "clockid",
    "sample_regs_intr",
    "aux_watermark",
    "sample_max_stack",
    "aux_sample_size",
    "sig_data",
    "aux_start_paused",
    "aux_pause",
    "aux_resume",
    "aux_action",
    "config1",
    "config2",
    "config3",
    "bp_addr",
    "bp_len",
    "sample_period",
    "sample_freq",
    "wakeup_events",
    "wakeup_watermark",
)

#: The names perf prints with spaces and commas, keyed by their whitespace-free form.
BRACE_FIELD_NAMES: dict[str, str] = {
    "{sample_period,sample_freq}": "sample_period|sample_freq",
    "{wakeup_events,wakeup_watermark}": "wakeup_events|wakeup_watermark",
    "{bp_addr,config1}": "config1",
    "{bp_len,config2}": "config2",
}

_RENAMED = {"bp_addr": "config1", "bp_len": "config2"}
_KNOWN = frozenset(ATTR_FIELD_NAMES)
_FLAG_FIELDS = frozenset(("sample_type", "read_format", "branch_sample_type"))
_SIMPLE_NAMES = _KNOWN - _FLAG_FIELDS

SAMPLE_TYPE_BITS: tuple[str, ...] = (
    "IP",
    "TID",
    "TIME",
    "ADDR",
    "READ",
    "CALLCHAIN",
    "ID",
    "CPU",
    "PERIOD",
    "STREAM_ID",
    "RAW",
    "BRANCH_STACK",
    "REGS_USER",
    "STACK_USER",
    "WEIGHT",
    "DATA_SRC",
    "IDENTIFIER",
    "TRANSACTION",
    "REGS_INTR",
    "PHYS_ADDR",
    "AUX",
    "CGROUP",
    "DATA_PAGE_SIZE",
    "CODE_PAGE_SIZE",
    "WEIGHT_STRUCT",
)
READ_FORMAT_BITS: tuple[str, ...] = (
    "TOTAL_TIME_ENABLED",
    "TOTAL_TIME_RUNNING",
    "ID",
    "GROUP",
    "LOST",
)
BRANCH_SAMPLE_TYPE_BITS: tuple[str, ...] = (
    "USER",
    "KERNEL",
    "HV",
    "ANY",
    "ANY_CALL",
    "ANY_RETURN",
    "IND_CALL",
    "ABORT_TX",
    "IN_TX",
    "NO_TX",
    "COND",
    "CALL_STACK",
    "IND_JUMP",
    "CALL",
    "NO_FLAGS",
    "NO_CYCLES",
    "TYPE_SAVE",
    "HW_INDEX",
    "PRIV_SAVE",
    "COUNTERS",
)
_BITS = {
    "sample_type": SAMPLE_TYPE_BITS,
    "read_format": READ_FORMAT_BITS,
    "branch_sample_type": BRANCH_SAMPLE_TYPE_BITS,
}

# perf_type_id values that are not PMUs sampling data addresses.
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_TYPE_HW_CACHE = 3
PERF_TYPE_RAW = 4
PERF_TYPE_BREAKPOINT = 5
_GENERIC_TYPES = frozenset(
    (
        PERF_TYPE_HARDWARE,
        PERF_TYPE_SOFTWARE,
        PERF_TYPE_TRACEPOINT,
        PERF_TYPE_HW_CACHE,
        PERF_TYPE_BREAKPOINT,
    )
)
_NON_SAMPLING_PMUS = frozenset(("software", "tracepoint", "breakpoint", "kprobe", "uprobe"))

# Intel memory events (event | umask << 8) as perf mem opens them.
INTEL_LOAD_CONFIGS = frozenset((0x1CD, 0x100B, 0x5D0))
INTEL_STORE_CONFIGS = frozenset((0x82D0, 0x2CD, 0x6D0))
INTEL_AUX_CONFIG = 0x8203
_LOAD_ALIASES = frozenset(("mem-loads", "ldlat-loads"))
_STORE_ALIASES = frozenset(("mem-stores", "ldlat-stores"))
_AUX_ALIASES = frozenset(("mem-loads-aux",))
_DATA_PMU_PREFIXES = ("ibs_op", "ibs_fetch", "arm_spe")

ESRCH = 3
ERRNO_NAMES: dict[int, str] = {
    1: "EPERM",
    2: "ENOENT",
    3: "ESRCH",
    4: "EINTR",
    5: "EIO",
    7: "E2BIG",
    9: "EBADF",
    12: "ENOMEM",
    13: "EACCES",
    14: "EFAULT",
    16: "EBUSY",
    19: "ENODEV",
    22: "EINVAL",
    24: "EMFILE",
    95: "EOPNOTSUPP",
}

HINT_PMU_NAMES = "pmu-name annotations (perf >= 6.10)"
HINT_PERF_TYPE = "PERF_TYPE annotations (perf 6.5-6.9)"
HINT_PERF_TYPE_AMBIGUOUS = "PERF_TYPE annotations (perf >= 6.5)"
HINT_BARE = "bare numbers (perf <= 6.4 or unannotated)"
HINT_OMITTED = "type/config 0 omitted (perf < 6.5)"

REASON_NOT_VV = "no perf_event_attr block: not a perf -vv log"
REASON_MEM_UNSUPPORTED = "memory events not supported by this CPU/PMU (no PEBS/IBS/SPE; e.g. a VM)"
REASON_NEVER_OPENED = "an event was prepared but never shown opening"
REASON_NO_ADDR = "events opened, but none samples data addresses (ADDR/PHYS_ADDR)"

# --------------------------------------------------------------------------- regexes

_INT_RE = re.compile(r"(-?)(?:0[xX]([0-9a-fA-F]{1,32})|([0-9]{1,40}))(?![0-9A-Za-z_])")
_SIMPLE_FIELD_RE = re.compile(r"([a-z_][a-z0-9_]*)[ \t]+(0x[0-9a-fA-F]{1,32}|[0-9]{1,40})$")
_SPACE_RE = re.compile(r"\s*")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAGS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\s*\|\s*[A-Za-z][A-Za-z0-9_]*)*")
_OPEN_RE = re.compile(
    r"sys_perf_event_open:\s*pid\s+(-?[0-9]{1,20})\s+cpu\s+(-?[0-9]{1,20})"
    r"\s+group_fd\s+(-?[0-9]{1,20})\s+flags\s+(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})"
    r"(?:\s*=\s*(-?[0-9]{1,20}))?"
)
_OPEN_FAILED_RE = re.compile(r"sys_perf_event_open failed,?\s*error\s*(-?[0-9]{1,20})")
_PRECISE_RE = re.compile(r"decreasing precise_ip by one \((-?[0-9]{1,3})\)")
_QUOTE_RE = re.compile(r"(?:>(?=[\s>]|$)\s*)+")
_FAILURE_TO_OPEN_RE = re.compile(r"Failure to open event '([^']*)'(?: on PMU '([^']*)')?")
_NOT_SUPPORTED_RE = re.compile(r"event '([^']*)' not supported")
_FALLBACK_PREFIXES = (
    "decreasing precise_ip",
    "switching off ",
    "Using PERF_SAMPLE_READ",
)
_FALLBACK_PHRASES = ("falling back to", "fall back to", "trying to fall back")
_ERROR_PARAGRAPH_PREFIXES = ("Error:", "event syntax error:")
_ERROR_LINE_PREFIXES = (
    "The sys_perf_event_open() syscall returned",
    "Workload failed:",
    "Failure to open event",
)
_MAX_PARAGRAPH_LINES = 25

# --------------------------------------------------------------------------- data


@dataclass
class OpenAttempt:
    """One ``sys_perf_event_open:`` line and its outcome."""

    pid: int
    cpu: int
    group_fd: int
    flags: int
    fd: int | None = None
    errno: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.fd is not None and self.fd >= 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "cpu": self.cpu,
            "group_fd": self.group_fd,
            "flags": self.flags,
            "fd": self.fd,
            "errno": self.errno,
        }


@dataclass
class AttrBlock:
    """One ``perf_event_attr:`` block, the opens that followed it, and derived values."""

    index: int
    fields: dict[str, FieldValue] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    type: int = 0
    config: int = 0
    config1: int = 0
    config2: int = 0
    sample_type: list[str] = field(default_factory=list)
    read_format: list[str] = field(default_factory=list)
    precise_ip: int = 0
    freq: bool = False
    sample_freq_or_period: int = 0
    pmu_hint: str | None = None
    alias_hint: str | None = None
    opens: list[OpenAttempt] = field(default_factory=list)
    opened: bool = False
    messages_before: list[str] = field(default_factory=list)
    name: str | None = None  # from a preceding ``Opening: <event>`` line (-vvv)
    removed: bool = False  # ``Failure to open event ... which will be removed``
    group_leader: bool = False  # a later open used one of this block's fds as group_fd
    leader_index: int | None = None  # index of the group leader's block, for members
    has_type_line: bool = False
    has_config_line: bool = False

    @property
    def samples_data_address(self) -> bool:
        return "ADDR" in self.sample_type or "PHYS_ADDR" in self.sample_type

    @property
    def last_errno(self) -> int | None:
        for attempt in reversed(self.opens):
            if attempt.errno is not None:
                return attempt.errno
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "fields": {k: (list(v) if isinstance(v, list) else v) for k, v in self.fields.items()},
            "annotations": dict(self.annotations),
            "type": self.type,
            "config": self.config,
            "config1": self.config1,
            "config2": self.config2,
            "sample_type": list(self.sample_type),
            "read_format": list(self.read_format),
            "precise_ip": self.precise_ip,
            "freq": self.freq,
            "sample_freq_or_period": self.sample_freq_or_period,
            "pmu_hint": self.pmu_hint,
            "alias_hint": self.alias_hint,
            "opens": [o.to_dict() for o in self.opens],
            "opened": self.opened,
            "removed": self.removed,
            "group_leader": self.group_leader,
            "leader_index": self.leader_index,
            "messages_before": list(self.messages_before),
        }


@dataclass
class ParseResult:
    blocks: list[AttrBlock] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    error: str | None = None  # all fatal texts, joined with "; "
    errors: list[str] = field(default_factory=list)
    version_hints: list[str] = field(default_factory=list)
    opened_events: list[AttrBlock] = field(default_factory=list)
    is_vv_log: bool = False
    unattached_opens: list[OpenAttempt] = field(default_factory=list)  # before any block

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": [b.to_dict() for b in self.blocks],
            "fallbacks": list(self.fallbacks),
            "error": self.error,
            "errors": list(self.errors),
            "version_hints": list(self.version_hints),
            "opened_events": [b.to_dict() for b in self.opened_events],
            "is_vv_log": self.is_vv_log,
            "unattached_opens": [o.to_dict() for o in self.unattached_opens],
        }


@dataclass
class DamonEvent:
    """The perf event values DAMON needs (role is informative, not part of to_dict)."""

    pmu: str | None
    type: int
    config: int
    config1: int
    config2: int
    role: str  # 'load' | 'store' | 'data'

    def to_dict(self) -> dict[str, Any]:
        return {
            "pmu": self.pmu,
            "type": self.type,
            "config": self.config,
            "config1": self.config1,
            "config2": self.config2,
        }


# --------------------------------------------------------------------------- values


def _parse_int(text: str, pos: int) -> tuple[int, int] | None:
    """Integer (decimal or 0x hex) at ``text[pos:]`` and the position after it."""
    m = _INT_RE.match(text, pos)
    if m is None:
        return None
    sign, hex_digits, dec_digits = m.groups()
    value = int(hex_digits, 16) if hex_digits is not None else int(dec_digits)
    return (-value if sign else value), m.end()


def _skip_space(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not whitespace."""
    m = _SPACE_RE.match(text, pos)
    return pos if m is None else m.end()


def _split_annotation(text: str, pos: int = 0) -> tuple[str | None, int]:
    """``(annotation) tail`` at ``text[pos:]`` -> (annotation, position of the tail).

    The annotation runs to the last ``)`` of the line (an unclosed parenthesis runs to the
    end), so a line is scanned once however many fields it holds.
    """
    pos = _skip_space(text, pos)
    if not text.startswith("(", pos):
        return None, pos
    close = text.rfind(")", pos)
    if close < 0:
        return text[pos + 1 :].strip() or None, len(text)
    return text[pos + 1 : close].strip() or None, _skip_space(text, close + 1)


def _decode_bits(value: int, names: tuple[str, ...]) -> list[str]:
    out = []
    bit = 0
    while value and bit < 64:
        if value & 1:
            out.append(names[bit] if bit < len(names) else f"0x{1 << bit:x}")
        value >>= 1
        bit += 1
    return out


def _parse_fields(text: str, out: list[tuple[str, FieldValue, str | None]]) -> bool:
    """Parse ``name value [(annotation)]`` (possibly several on one line, as very old perf
    printed them) into ``out``.  Returns False when the line does not start with a field.

    One pass over the line, without recursion: a line of any number of fields takes time
    linear in its length."""
    pos = _parse_field(text, 0, out)
    if pos is None:
        return False
    end = len(text)
    while pos is not None and pos < end:
        pos = _skip_space(text, pos)
        while pos < end and text[pos] == ",":
            pos += 1
        pos = _parse_field(text, _skip_space(text, pos), out)
    return True


def _parse_field(text: str, pos: int, out: list[tuple[str, FieldValue, str | None]]) -> int | None:
    """One field at ``text[pos:]`` appended to ``out``; the position after it, or None (and
    nothing appended) when no field starts there."""
    end = len(text)
    if pos >= end:
        return None
    simple = _SIMPLE_FIELD_RE.match(text, pos)
    if simple is not None and simple.group(1) in _SIMPLE_NAMES:
        # fast path: "name   123" / "name   0x1f", the bulk of every block
        name, number = simple.groups()
        plain = int(number[2:], 16) if number[:2] == "0x" else int(number)
        out.append((_RENAMED.get(name, name), plain, None))
        return end
    if text.startswith("{", pos):
        close = text.find("}", pos)
        if close < 0:
            return None
        brace = BRACE_FIELD_NAMES.get("".join(text[pos : close + 1].split()))
        if brace is None:
            return None
        name = brace
        rest = close + 1
        known = True
        gap = 1
    else:
        m = _IDENT_RE.match(text, pos)
        if m is None:
            return None
        name = m.group(0)
        rest = m.end()
        gap = _skip_space(text, rest) - rest
        known = name in _KNOWN
        if known:
            name = _RENAMED.get(name, name)
        elif not (name.islower() and len(name) + gap >= 33):
            # An unknown name is only taken from perf's "%-32s %s" layout.
            return None
    while rest < end and text[rest] in " \t:=":
        rest += 1
    if rest >= end:
        return None
    value: FieldValue
    annotation: str | None = None
    if name in _FLAG_FIELDS:
        parsed = _parse_int(text, rest)
        if parsed is not None:
            value = _decode_bits(parsed[0] & ((1 << 64) - 1), _BITS[name])
            tail = parsed[1]
        else:
            fm = _FLAGS_RE.match(text, rest)
            if fm is None:
                return None
            value = [p.strip() for p in fm.group(0).split("|")]
            tail = fm.end()
    else:
        parsed = _parse_int(text, rest)
        if parsed is None:
            return None
        annotation, tail = _split_annotation(text, parsed[1])
        if not known and (tail < end or gap < 1):
            return None
        value = parsed[0]
    out.append((name, value, annotation))
    return tail


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self) -> None:
        self.result = ParseResult()
        self.block: AttrBlock | None = None  # the block receiving opens
        self.in_block = False  # between ``perf_event_attr:`` and the closing dashes
        self.pending_messages: list[str] = []
        self.pending_name: str | None = None
        self.pending_precise: tuple[int, int] | None = None  # (precise_ip, block index)
        self.paragraph: list[str] | None = None  # error text being collected
        self.fd_owner: dict[int, AttrBlock] = {}
        self.saw_failure_line = False
        self.last_field: str | None = None
        # indexes kept so that every line costs the same however long the log is
        self.error_set: set[str] = set()  # the texts in result.errors
        self.saw_paranoid = False  # an error naming perf_event_paranoid was collected
        self.block_by_name: dict[str, AttrBlock] = {}  # last block of each Opening: name
        self.failed_by_pmu: dict[str, AttrBlock] = {}  # last block of a PMU with an errno

    # -- block handling
    def start_block(self) -> None:
        self.finish_block()
        block = AttrBlock(index=len(self.result.blocks))
        block.messages_before = self.pending_messages
        block.name = self.pending_name
        if block.name is not None:
            self.block_by_name[block.name] = block
        self.pending_messages = []
        self.pending_name = None
        self.pending_precise = None
        self.result.blocks.append(block)
        self.block = block
        self.in_block = True
        self.last_field = None

    def finish_block(self) -> None:
        if not self.in_block or self.block is None:
            self.in_block = False
            return
        self.in_block = False
        _derive(self.block)

    def add_fields(self, items: list[tuple[str, FieldValue, str | None]]) -> None:
        block = self.block
        assert block is not None
        for name, value, annotation in items:
            block.fields[name] = value
            if annotation:
                block.annotations[name] = annotation
            if name == "type":
                block.has_type_line = True
            elif name == "config":
                block.has_config_line = True
            self.last_field = name

    # -- paragraphs of error text
    def add_error(self, text: str) -> None:
        if text and text not in self.error_set:
            self.error_set.add(text)
            self.result.errors.append(text)
            if "perf_event_paranoid" in text:
                self.saw_paranoid = True

    def end_paragraph(self) -> None:
        if self.paragraph is not None:
            self.add_error(" ".join(self.paragraph).strip())
            self.paragraph = None

    def error_line(self, text: str) -> None:
        self.end_paragraph()
        self.add_error(text)

    # -- lines
    def line(self, raw: str) -> None:
        s = raw.strip()
        if s and s[0] == ">":
            s = _QUOTE_RE.sub("", s, count=1).strip()
        if not s:
            self.end_paragraph()
            return
        if self.in_block:
            if s[0] == "-" and s.count("-") == len(s) and len(s) >= 20:
                self.finish_block()
                return
            items: list[tuple[str, FieldValue, str | None]] = []
            if _parse_fields(s, items):
                self.add_fields(items)
                return
            if s[0] == "(" and self.last_field is not None:
                # an annotation wrapped onto its own line by a mail client
                annotation, _ = _split_annotation(s)
                block = self.block
                if annotation and block is not None and self.last_field not in block.annotations:
                    block.annotations[self.last_field] = annotation
                self.last_field = None
                return
        if s.startswith("sys_perf_event_open"):
            self.end_paragraph()
            self.open_line(s)
            return
        if s.startswith("perf_event_attr:"):
            self.end_paragraph()
            self.start_block()
            rest = s[len("perf_event_attr:") :].strip()
            items = []
            if rest and _parse_fields(rest, items):
                self.add_fields(items)
            return
        if s[0] == "-" and s.count("-") == len(s):
            return
        if s.startswith("Opening:"):
            self.end_paragraph()
            self.finish_block()
            self.pending_name = s[len("Opening:") :].strip() or None
            return
        if s[0] == "#":
            return  # shell prompt of root, comments, perf report headers
        if self.paragraph is not None and not s.startswith(_ERROR_PARAGRAPH_PREFIXES):
            if len(self.paragraph) < _MAX_PARAGRAPH_LINES:
                self.paragraph.append(s)
            return
        if self.fallback_line(s):
            return
        self.error_start(s)

    def fallback_line(self, s: str) -> bool:
        if not s.startswith(_FALLBACK_PREFIXES):
            low = s.lower()
            if not any(p in low for p in _FALLBACK_PHRASES):
                return False
        self.end_paragraph()
        self.finish_block()
        self.result.fallbacks.append(s)
        self.pending_messages.append(s)
        m = _PRECISE_RE.search(s)
        if m is not None and self.block is not None:
            self.pending_precise = (int(m.group(1)), self.block.index)
        return True

    def error_start(self, s: str) -> bool:
        for prefix in _ERROR_PARAGRAPH_PREFIXES:
            if s.startswith(prefix):
                self.end_paragraph()
                self.finish_block()
                self.saw_failure_line = True
                first = s[len(prefix) :].strip() if prefix == "Error:" else s
                self.paragraph = [first] if first else []
                return True
        if s.startswith(_ERROR_LINE_PREFIXES):
            self.finish_block()
            self.saw_failure_line = True
            self.error_line(s)
            m = _FAILURE_TO_OPEN_RE.search(s)
            if m is not None:
                self.mark_removed(m.group(1), m.group(2))
            return True
        idx = s.find("failed: ")
        if idx == 0 or (idx > 1 and s[idx - 2 : idx] == ": "):
            self.finish_block()
            self.saw_failure_line = True
            self.error_line(s[idx:])
            return True
        if "perf_event_paranoid" in s and self.paragraph is None:
            if not self.saw_paranoid:
                self.finish_block()
                self.saw_failure_line = True
                self.paragraph = [s]
            return True
        return False

    def mark_removed(self, event: str, pmu: str | None) -> None:
        blocks = self.result.blocks
        target = self.block_by_name.get(event)
        if target is None and pmu:
            target = self.failed_by_pmu.get(pmu)
        if target is None and blocks and blocks[-1].opens and not blocks[-1].opens[-1].succeeded:
            target = blocks[-1]
        if target is not None:
            target.removed = True

    def open_line(self, s: str) -> None:
        m = _OPEN_RE.match(s)
        if m is not None:
            pid, cpu, group_fd, flags, fd = m.groups()
            attempt = OpenAttempt(
                pid=int(pid),
                cpu=int(cpu),
                group_fd=int(group_fd),
                flags=int(flags, 16) if flags[:2] in ("0x", "0X") else int(flags),
                fd=int(fd) if fd is not None else None,
            )
            self.finish_block()
            block = self.block
            if block is None:
                self.result.unattached_opens.append(attempt)
            else:
                if self.pending_precise is not None and self.pending_precise[1] == block.index:
                    # retried without printing the attr again: the new precise_ip applies
                    block.precise_ip = max(self.pending_precise[0], 0)
                    if block.precise_ip:
                        block.fields["precise_ip"] = block.precise_ip
                    else:
                        block.fields.pop("precise_ip", None)
                    self.pending_precise = None
                block.opens.append(attempt)
                if attempt.group_fd >= 0:
                    leader = self.fd_owner.get(attempt.group_fd)
                    if leader is not None and leader is not block:
                        leader.group_leader = True
                        block.leader_index = leader.index
                if attempt.fd is not None and attempt.fd >= 0:
                    self.fd_owner[attempt.fd] = block
        rest = s if m is None else s[m.end() :]
        fm = _OPEN_FAILED_RE.search(rest)
        if fm is not None:
            errno = abs(int(fm.group(1)))
            self.finish_block()
            block = self.block
            opens = block.opens if block is not None else self.result.unattached_opens
            if opens and opens[-1].fd is None and opens[-1].errno is None:
                opens[-1].errno = errno
            elif block is not None:
                # the open line itself is missing (cut from the log): keep the outcome
                opens.append(OpenAttempt(pid=-1, cpu=-1, group_fd=-1, flags=0, errno=errno))
            if block is not None and block.pmu_hint is not None:  # its last open has errno
                self.failed_by_pmu[block.pmu_hint] = block

    def finish(self) -> ParseResult:
        self.finish_block()
        self.end_paragraph()
        result = self.result
        for block in result.blocks:
            block.opened = _really_opened(block)
        result.opened_events = [b for b in result.blocks if b.opened]
        result.error = "; ".join(result.errors) if result.errors else None
        result.version_hints = _version_hints(result.blocks)
        result.is_vv_log = bool(result.blocks or result.unattached_opens or self.saw_failure_line)
        return result


def _really_opened(block: AttrBlock) -> bool:
    """Some open returned an fd, the block's last attempt did not fail (a failure there
    means a retry with a new block, or the end of that event), and perf did not drop it."""
    if block.removed or not any(o.succeeded for o in block.opens):
        return False
    last = block.opens[-1]
    return last.succeeded or last.errno in (None, ESRCH)


def _derive(block: AttrBlock) -> None:
    """Fill the typed attributes of a finished block from its fields."""
    f = block.fields

    def num(key: str) -> int:
        v = f.get(key, 0)
        return v if isinstance(v, int) else 0

    def flags(key: str) -> list[str]:
        v = f.get(key)
        return list(v) if isinstance(v, list) else []

    block.type = num("type")
    block.config = num("config")
    block.config1 = num("config1")
    block.config2 = num("config2")
    block.sample_type = flags("sample_type")
    block.read_format = flags("read_format")
    block.precise_ip = num("precise_ip")
    block.freq = num("freq") != 0
    union = f.pop("sample_period|sample_freq", None)
    if isinstance(union, int):
        f["sample_freq" if block.freq else "sample_period"] = union
    block.sample_freq_or_period = num("sample_freq") if block.freq else num("sample_period")
    union = f.pop("wakeup_events|wakeup_watermark", None)
    if isinstance(union, int):
        f["wakeup_watermark" if num("watermark") else "wakeup_events"] = union

    type_ann = block.annotations.get("type")
    config_ann = block.annotations.get("config")
    pmu: str | None = None
    if type_ann and not type_ann.startswith("PERF_TYPE_"):
        pmu = type_ann
    elif config_ann and config_ann.endswith("/") and "/" in config_ann[:-1]:
        # hardware events on a hybrid PMU: "0xa00000000 (cpu_atom/PERF_COUNT_HW_CPU_CYCLES/)"
        pmu = config_ann.split("/", 1)[0] or None
    block.pmu_hint = pmu
    block.alias_hint = config_ann or None


def _version_hints(blocks: list[AttrBlock]) -> list[str]:
    type_anns = [b.annotations["type"] for b in blocks if "type" in b.annotations]
    config_anns = [b.annotations["config"] for b in blocks if "config" in b.annotations]
    hints: list[str] = []
    if any(not a.startswith("PERF_TYPE_") for a in type_anns) or any(
        a.startswith("mem-") for a in config_anns
    ):
        hints.append(HINT_PMU_NAMES)
    elif type_anns:
        # 6.10+ names the PMU for RAW/SOFTWARE; HARDWARE/HW_CACHE stay PERF_TYPE_* there too
        if any(a in ("PERF_TYPE_RAW", "PERF_TYPE_SOFTWARE") for a in type_anns):
            hints.append(HINT_PERF_TYPE)
        else:
            hints.append(HINT_PERF_TYPE_AMBIGUOUS)
    elif blocks and not config_anns:
        hints.append(HINT_BARE)
    if any(b.fields and not (b.has_type_line and b.has_config_line) for b in blocks):
        hints.append(HINT_OMITTED)
    return hints


def parse(text: str) -> ParseResult:
    """Parse the text of a ``perf ... -vv`` run.  Never raises on a ``str``."""
    parser = _Parser()
    if not isinstance(text, str):
        return parser.finish()
    for raw in text.splitlines():
        parser.line(raw)
    return parser.finish()


# --------------------------------------------------------------------------- selection


def _is_core_pmu(block: AttrBlock) -> bool:
    if block.pmu_hint is not None:
        return block.pmu_hint.startswith("cpu")
    return block.type == PERF_TYPE_RAW


def _is_aux(block: AttrBlock) -> bool:
    alias = (block.alias_hint or "").lower()
    if alias in _AUX_ALIASES:
        return True
    return (block.config & 0xFFFFFFFF) == INTEL_AUX_CONFIG and _is_core_pmu(block)


def event_role(block: AttrBlock) -> str:
    """'load', 'store', 'data' (IBS/SPE or unknown data-address event), 'aux',
    'software' or 'other' (not a data-address sampling event)."""
    if block.type == PERF_TYPE_SOFTWARE or block.pmu_hint in _NON_SAMPLING_PMUS:
        return "software"
    if _is_aux(block):
        return "aux"
    if block.type in _GENERIC_TYPES:
        return "other"
    alias = (block.alias_hint or "").lower()
    if alias in _LOAD_ALIASES:
        return "load"
    if alias in _STORE_ALIASES:
        return "store"
    hint = block.pmu_hint or ""
    if not hint.startswith(_DATA_PMU_PREFIXES):
        if hint == "" or hint.startswith("cpu"):
            low = block.config & 0xFFFFFFFF
            if low in INTEL_LOAD_CONFIGS:
                return "load"
            if low in INTEL_STORE_CONFIGS:
                return "store"
        if block.config1 and _is_core_pmu(block):
            return "load"  # ldlat
        if alias and not alias.startswith("perf_count"):
            if "store" in alias:
                return "store"
            if "load" in alias:
                return "load"
    return "data" if block.samples_data_address else "other"


def _is_candidate(block: AttrBlock) -> bool:
    return (
        block.opened
        and block.sample_freq_or_period > 0
        and block.samples_data_address
        and event_role(block) in ("load", "store", "data")
    )


def damon_events(result: ParseResult, kind: Kind = "loads") -> list[DamonEvent]:
    """The events DAMON should get: per PMU (perf type) one load event (``loads``, the
    default; a PMU with only a store event gives that), one store event (``stores``) or
    both (``all``); IBS/SPE and other data-address events of unknown role always."""
    by_type: dict[int, dict[str, AttrBlock]] = {}
    for block in result.opened_events:
        if not _is_candidate(block):
            continue
        roles = by_type.setdefault(block.type, {})
        roles.setdefault(event_role(block), block)
    events: list[DamonEvent] = []
    for roles in by_type.values():
        if kind == "all":
            chosen = [roles[r] for r in ("load", "store", "data") if r in roles]
        elif kind == "stores":
            pick = roles.get("store") or roles.get("data")
            chosen = [pick] if pick is not None else []
        else:
            pick = roles.get("load") or roles.get("data") or roles.get("store")
            chosen = [pick] if pick is not None else []
        chosen.sort(key=lambda b: b.index)
        for b in chosen:
            events.append(
                DamonEvent(
                    pmu=b.pmu_hint,
                    type=b.type,
                    config=b.config,
                    config1=b.config1,
                    config2=b.config2,
                    role=event_role(b),
                )
            )
    return events


def _errno_text(errno: int | None) -> str:
    if errno is None:
        return "no fd returned"
    name = ERRNO_NAMES.get(errno)
    return f"error -{errno} ({name})" if name else f"error -{errno}"


def not_supported_reason(result: ParseResult, kind: Kind = "loads") -> str:
    """Why :func:`damon_events` found nothing (meaningful only when it did)."""
    if not result.is_vv_log:
        return REASON_NOT_VV
    if result.error:
        low = result.error.lower()
        if "memory events not supported" in low or "no pmu supports the memory events" in low:
            return REASON_MEM_UNSUPPORTED
        m = _NOT_SUPPORTED_RE.search(result.error)
        if m is not None:
            return f"event '{m.group(1)}' not supported"
        return result.error
    if not result.blocks:
        return "no perf_event_attr block in the log, only open lines"
    data_blocks = [
        b
        for b in result.blocks
        if b.samples_data_address and event_role(b) in ("load", "store", "data")
    ]
    if not result.opened_events:
        attempts = [o for b in result.blocks for o in b.opens]
        if not attempts:
            return REASON_NEVER_OPENED
        errnos = [o.errno for o in attempts if o.errno is not None]
        last = errnos[-1] if errnos else None
        reason = f"no event opened: sys_perf_event_open failed with {_errno_text(last)}"
        if not data_blocks:
            reason += "; no event samples data addresses (ADDR/PHYS_ADDR)"
        return reason
    candidates = [b for b in result.opened_events if _is_candidate(b)]
    if not candidates:
        return REASON_NO_ADDR
    roles = sorted({event_role(b) for b in candidates})
    return f"no {kind.rstrip('s')} event opened (opened data-address events: {', '.join(roles)})"


def summarize(result: ParseResult, kind: Kind = "loads") -> dict[str, Any]:
    """The JSON the CLI prints: support, reason, opened events and DAMON's events."""
    events = damon_events(result, kind)
    supported = bool(events)
    return {
        "supported": supported,
        "reason": None if supported else not_supported_reason(result, kind),
        "events": [
            {
                "pmu": b.pmu_hint,
                "type": b.type,
                "config": b.config,
                "config1": b.config1,
                "config2": b.config2,
                "sample_type": list(b.sample_type),
                "precise_ip": b.precise_ip,
                "alias": b.alias_hint,
                "role": event_role(b),
                "group_leader": b.group_leader,
            }
            for b in result.opened_events
        ],
        "damon_perf_events": [e.to_dict() for e in events],
    }
