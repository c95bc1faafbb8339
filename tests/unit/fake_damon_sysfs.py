"""A fake DAMON sysfs: a real directory tree whose writes follow the kernel's rules.

Modelled on mm/damon/sysfs.c (mainline) and the perf-event RFC series.  Its
defaults, the format of ``avail_operations`` and the ``state`` rules come from the
one table of facts measured on the real kernel, ``damon_kernel_facts`` (which
the planner uses too, and the VM tier re-checks on the lab kernel):

* numbers are parsed like ``kstrtoint``/``kstrtoul`` with base 0 (``0x`` hex,
  leading ``0`` octal, one trailing newline allowed), bad input is ``EINVAL``,
  overflow ``ERANGE``;
* writing ``nr_*`` removes every numbered directory beside it and creates
  ``0..N-1`` with default (zeroed) values; ``nr_contexts`` accepts only 0 or 1;
  ``nr_kdamonds`` is ``EBUSY`` while any kdamond runs; ``nr_perf_events`` <= 64;
* perf ``type``/``config*`` read back as hex (``0x1cd``), ``sample_phys_addr`` as
  ``0``/``1`` (``kstrtobool`` input), ``sample_freq`` as decimal;
* ``avail_operations`` lists one operations set per line;
* ``state`` takes the 6.12 keywords: ``on`` (``EBUSY`` if running, ``EINVAL`` on
  bad inputs, such as an empty region with start == end), ``off`` (``EINVAL`` if
  never started, ``EPERM`` if stopped),
  ``commit`` and ``update_*`` (``EINVAL`` unless running); unknown -> ``EINVAL``;
* read-only files (``pid``, ``avail_operations``, ``total_reports``) refuse writes
  with ``EACCES``;
* ``on``/``commit`` creates each configured perf event on every online CPU
  (``online_cpus``); on CPUs listed in ``perf_fail_cpus`` creation fails with
  -95, and an event whose ``type`` is in ``perf_unsupported_types`` fails on every
  CPU with -2 (no such PMU, as the PEBS event under QEMU).  Each failure logs
  ``perf event create on CPU N failed with E`` and drops that counter; the write
  still succeeds (the silent fallback);
* ``kdamonds/<K>/total_reports`` (RFC v3 layout) counts access reports: time passes
  only through :meth:`FakeDamonSysfs.advance` (pass it as the ``sleep`` of the
  applier), which adds ``reports_per_second`` per created counter to every running
  kdamond.  ``reports_per_second=0`` models a kernel whose files store values only
  (the first lab stand-in): the counter stays flat.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import kernel_facts as facts

OPS_KEYWORDS = facts.AVAIL_OPERATIONS_ORDER
STATE_COMMANDS = facts.STATE_COMMANDS
PERF_DIRS = {
    "rfc-v3": "monitoring_attrs/sample/primitives/perf_events",
    "successor": "monitoring_attrs/sample/perf_events",
    "rfc-v1": "perf_events",
    "mainline": None,
}
READ_ONLY = ("pid", "avail_operations", "total_reports")
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
INT_MAX = (1 << 31) - 1
INT_MIN = -(1 << 31)


def _err(code: int, what: str) -> OSError:
    return OSError(code, os.strerror(code), what)


def kstrtoull(text: str, what: str = "") -> int:
    """``kstrtoull(s, 0)``: base auto-detection, one trailing newline, no sign but '+'."""
    if text.endswith("\n"):
        text = text[:-1]
    if text.startswith("+"):
        text = text[1:]
    if not text:
        raise _err(errno.EINVAL, what)
    if text[:2].lower() == "0x" and len(text) > 2:
        base, digits = 16, text[2:]
    elif text.startswith("0") and len(text) > 1:
        base, digits = 8, text[1:]
    else:
        base, digits = 10, text
    allowed = "0123456789abcdef"[:base]
    if not digits or any(c not in allowed for c in digits.lower()):
        raise _err(errno.EINVAL, what)
    value = int(digits, base)
    if value > U64_MAX:
        raise _err(errno.ERANGE, what)
    return value


def kstrtoul_range(text: str, maximum: int, what: str) -> int:
    value = kstrtoull(text, what)
    if value > maximum:
        raise _err(errno.ERANGE, what)
    return value


def kstrtoint(text: str, what: str = "") -> int:
    body = text[:-1] if text.endswith("\n") else text
    negative = body.startswith("-")
    value = kstrtoull(body[1:] if negative else body, what)
    value = -value if negative else value
    if value > INT_MAX or value < INT_MIN:
        raise _err(errno.ERANGE, what)
    return value


def kstrtobool(text: str, what: str = "") -> bool:
    head = text[:2].lower()
    if head[:1] in ("y", "t", "1"):
        return True
    if head[:1] in ("n", "f", "0"):
        return False
    if head == "on":
        return True
    if head == "of":
        return False
    raise _err(errno.EINVAL, what)


def sysfs_streq(text: str, keyword: str) -> bool:
    return (text[:-1] if text.endswith("\n") else text) == keyword


class FakeKernelLog:
    """A kernel log with its own microsecond clock (implements ``KernelLog``)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str]] = []
        self.starts: dict[int, int] = {}
        self.readable = True
        self._clock = 10_000_000
        self._mark: int | None = None

    def tick(self) -> int:
        self._clock += 1000
        return self._clock

    def now_us(self) -> int:
        return self.tick()

    def pass_time(self, seconds: float) -> None:
        self._clock += int(seconds * 1_000_000)

    def log(self, message: str) -> None:
        self.records.append((self.tick(), message))

    def _check_readable(self) -> None:
        if not self.readable:
            raise PermissionError(errno.EPERM, "Operation not permitted", "/dev/kmsg")

    def mark(self) -> None:
        self._check_readable()
        self._mark = len(self.records)

    def messages_since_mark(self) -> list[str]:
        self._check_readable()
        if self._mark is None:
            raise OSError(errno.EBADF, "no mark taken", "/dev/kmsg")
        start, self._mark = self._mark, None
        return [m for _, m in self.records[start:]]

    def messages_since(self, since_us: int) -> list[str]:
        self._check_readable()
        return [m for t, m in self.records if t >= since_us]

    def process_start_us(self, pid: int) -> int | None:
        return self.starts.get(pid)


class FakeDamonSysfs:
    """The DAMON admin tree under ``base``; use :attr:`root` and the IO methods."""

    def __init__(
        self,
        base: Path,
        layout: str = "rfc-v3",
        avail_operations: Sequence[str] = OPS_KEYWORDS,
        alive_pids: Iterable[int] | None = None,
        perf_fail_cpus: Sequence[int] = (),
        log: FakeKernelLog | None = None,
        online_cpus: Sequence[int] = (0, 1),
        perf_unsupported_types: Sequence[int] = (),
        reports_per_second: int = 100,
    ) -> None:
        if layout not in PERF_DIRS:
            raise ValueError(layout)
        self.layout = layout
        self.base = Path(base)
        self.root_path = self.base / "sys" / "kernel" / "mm" / "damon" / "admin"
        self.root = str(self.root_path)
        self.avail_operations = tuple(avail_operations)
        self.alive_pids: set[int] | None = set(alive_pids) if alive_pids is not None else None
        self.perf_fail_cpus = tuple(perf_fail_cpus)
        self.online_cpus = tuple(online_cpus)
        self.perf_unsupported_types = tuple(perf_unsupported_types)
        self.reports_per_second = reports_per_second
        self.log = log or FakeKernelLog()
        self.running: dict[int, int] = {}
        self.counters: dict[int, int] = {}  # kdamond -> perf counters created (all CPUs)
        self.slept: list[float] = []
        self.started: set[int] = set()
        self.writes: list[tuple[str, str]] = []  # every accepted write, relative
        self._next_pid = 4000
        (self.root_path / "kdamonds").mkdir(parents=True)
        self._default("kdamonds/nr_kdamonds")

    # ---------------------------------------------------------------- helpers
    def _p(self, rel: str) -> Path:
        return self.root_path / rel

    def _file(self, rel: str, value: str) -> None:
        path = self._p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")

    def _default(self, rel: str) -> None:
        """Create ``rel`` with the kernel's default content (from the facts table)."""
        value = facts.default_value(rel)
        if value is None:
            raise KeyError(f"no kernel default known for {rel}")
        self._file(rel, value)

    def get(self, rel: str) -> str:
        return self._p(rel).read_text().strip()

    def _rel(self, path: str) -> str:
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(self.root))
        if rel.startswith(".."):
            raise _err(errno.EACCES, path)
        return rel.replace(os.sep, "/")

    def _rm_numbered(self, rel_dir: str) -> None:
        directory = self._p(rel_dir)
        for child in directory.iterdir():
            if child.is_dir() and child.name.isdigit():
                shutil.rmtree(child)

    # ---------------------------------------------------------------- SysfsIO
    def read(self, path: str) -> str:
        p = Path(path)
        if p.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        return p.read_text()

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def write(self, path: str, value: str) -> None:
        rel = self._rel(path)
        if not self._p(rel).is_file():
            raise _err(errno.ENOENT, path)
        name = rel.rsplit("/", 1)[-1]
        if name in READ_ONLY:
            raise _err(errno.EACCES, path)
        handler = getattr(self, "_w_" + name, None)
        if handler is None:
            raise _err(errno.EACCES, path)
        handler(rel, value)
        self.writes.append((rel, value))

    # ---------------------------------------------------------------- builders
    def _make_kdamond(self, index: int) -> None:
        kdir = f"kdamonds/{index}"
        self._default(kdir + "/state")
        self._default(kdir + "/pid")
        self._default(kdir + "/contexts/nr_contexts")
        if self.layout == "rfc-v3":
            self._default(kdir + "/total_reports")

    def _make_context(self, cdir: str) -> None:
        self._file(cdir + "/avail_operations", facts.format_avail_operations(self.avail_operations))
        self._default(cdir + "/operations")
        attrs = cdir + "/monitoring_attrs"
        for leaf in ("sample_us", "aggr_us", "update_us"):
            self._default(f"{attrs}/intervals/{leaf}")
        self._default(attrs + "/nr_regions/min")
        self._default(attrs + "/nr_regions/max")
        self._default(cdir + "/targets/nr_targets")
        self._default(cdir + "/schemes/nr_schemes")
        if self.layout == "rfc-v3":
            self._default(attrs + "/sample/primitives/page_table")
            self._default(attrs + "/sample/primitives/page_fault")
        perf = PERF_DIRS[self.layout]
        if perf is not None:
            self._default(f"{cdir}/{perf}/nr_perf_events")

    def _make_event(self, edir: str) -> None:
        for leaf in ("type", "config", "config1", "config2", "sample_phys_addr", "sample_freq"):
            self._default(f"{edir}/{leaf}")
        if self.layout == "successor":
            for leaf, value in (
                ("freq", "1"),
                ("sample_period", "0"),
                ("precise_ip", "2"),
                ("wakeup_events", "1"),
                ("exclude_kernel", "1"),
                ("exclude_hv", "1"),
                ("sample_weight_struct", "0"),
            ):
                self._file(f"{edir}/{leaf}", value)

    def _make_target(self, tdir: str) -> None:
        self._default(tdir + "/pid_target")
        self._default(tdir + "/regions/nr_regions")

    def _make_region(self, rdir: str) -> None:
        self._default(rdir + "/start")
        self._default(rdir + "/end")

    def _rebuild(self, rel: str, count: int, make: str) -> None:
        parent = rel.rsplit("/", 1)[0]
        self._rm_numbered(parent)
        builder = getattr(self, make)
        for index in range(count):
            if make == "_make_kdamond":
                builder(index)
            else:
                builder(f"{parent}/{index}")
        self._file(rel, str(count))

    # ---------------------------------------------------------------- nr_* files
    def _w_nr_kdamonds(self, rel: str, value: str) -> None:
        count = kstrtoint(value, rel)
        if count < 0:
            raise _err(errno.EINVAL, rel)
        if self.running:
            raise _err(facts.NR_KDAMONDS_WHILE_RUNNING, rel)
        self.started.clear()
        self._rebuild(rel, count, "_make_kdamond")

    def _w_nr_contexts(self, rel: str, value: str) -> None:
        count = kstrtoint(value, rel)
        if count < 0 or count > facts.NR_CONTEXTS_MAX:
            raise _err(errno.EINVAL, rel)
        self._rebuild(rel, count, "_make_context")

    def _w_nr_targets(self, rel: str, value: str) -> None:
        count = kstrtoint(value, rel)
        if count < 0:
            raise _err(errno.EINVAL, rel)
        self._rebuild(rel, count, "_make_target")

    def _w_nr_regions(self, rel: str, value: str) -> None:
        count = kstrtoint(value, rel)
        if count < 0:
            raise _err(errno.EINVAL, rel)
        self._rebuild(rel, count, "_make_region")

    def _w_nr_perf_events(self, rel: str, value: str) -> None:
        count = kstrtoint(value, rel)
        if count < 0 or count > 64:
            raise _err(errno.EINVAL, rel)
        self._rebuild(rel, count, "_make_event")

    def _w_nr_schemes(self, rel: str, value: str) -> None:
        count = kstrtoint(value, rel)
        if count < 0:
            raise _err(errno.EINVAL, rel)
        self._rm_numbered(rel.rsplit("/", 1)[0])
        for index in range(count):
            self._p(f"{rel.rsplit('/', 1)[0]}/{index}").mkdir()
        self._file(rel, str(count))

    # ---------------------------------------------------------------- leaves
    def _w_operations(self, rel: str, value: str) -> None:
        for keyword in OPS_KEYWORDS:
            if sysfs_streq(value, keyword):
                self._file(rel, keyword)
                return
        raise _err(errno.EINVAL, rel)

    def _ulong(self, rel: str, value: str) -> None:
        self._file(rel, str(kstrtoul_range(value, U64_MAX, rel)))

    _w_sample_us = _w_aggr_us = _w_update_us = _w_start = _w_end = _ulong

    def _w_min(self, rel: str, value: str) -> None:
        self._ulong(rel, value)

    _w_max = _w_min

    def _w_pid_target(self, rel: str, value: str) -> None:
        self._file(rel, str(kstrtoint(value, rel)))

    def _w_type(self, rel: str, value: str) -> None:
        self._file(rel, f"0x{kstrtoul_range(value, U32_MAX, rel):x}")

    def _hex64(self, rel: str, value: str) -> None:
        number = kstrtoul_range(value, U64_MAX, rel)
        self._file(rel, f"0x{number:x}")

    _w_config = _w_config1 = _w_config2 = _hex64

    def _w_sample_phys_addr(self, rel: str, value: str) -> None:
        self._file(rel, "1" if kstrtobool(value, rel) else "0")

    def _w_sample_freq(self, rel: str, value: str) -> None:
        self._file(rel, str(kstrtoul_range(value, U64_MAX, rel)))

    _w_sample_period = _w_sample_freq

    def _bool_leaf(self, rel: str, value: str) -> None:
        self._file(rel, "1" if kstrtobool(value, rel) else "0")

    _w_freq = _w_exclude_kernel = _w_exclude_hv = _w_sample_weight_struct = _bool_leaf

    def _u32_leaf(self, rel: str, value: str) -> None:
        self._file(rel, str(kstrtoul_range(value, U32_MAX, rel)))

    _w_precise_ip = _w_wakeup_events = _u32_leaf

    def _yn_leaf(self, rel: str, value: str) -> None:
        self._file(rel, "Y" if kstrtobool(value, rel) else "N")

    _w_page_table = _w_page_fault = _yn_leaf

    # ---------------------------------------------------------------- state
    def _w_state(self, rel: str, value: str) -> None:
        index = int(rel.split("/")[1])
        command = next((c for c in STATE_COMMANDS if sysfs_streq(value, c)), None)
        if command is None:
            raise _err(facts.UNKNOWN_STATE_COMMAND, rel)
        kdir = f"kdamonds/{index}"
        if command == "on":
            if index in self.running:
                raise _err(errno.EBUSY, rel)
            self._check_inputs(kdir)
            pid = self._next_pid
            self._next_pid += 1
            self.running[index] = pid
            self.started.add(index)
            self.log.starts[pid] = self.log.tick()
            self._file(kdir + "/state", "on")
            self._file(kdir + "/pid", str(pid))
            self._start_perf_events(kdir)
        elif command == "off":
            if index not in self.started:
                raise _err(facts.OFF_WHEN_NEVER_STARTED, rel)
            if index not in self.running:
                raise _err(facts.OFF_WHEN_STOPPED, rel)
            self.stop(index)
        else:
            if index not in self.running:
                raise _err(errno.EINVAL, rel)
            if command == "commit":
                self._check_inputs(kdir)
                self._start_perf_events(kdir)

    def stop(self, index: int) -> None:
        """The kdamond exits (``off``, or its target went away); its counters go."""
        self.running.pop(index, None)
        self.counters.pop(index, None)
        kdir = f"kdamonds/{index}"
        self._file(kdir + "/state", "off")
        self._file(kdir + "/pid", "-1")

    def _check_inputs(self, kdir: str) -> None:
        if self.get(kdir + "/contexts/nr_contexts") != "1":
            raise _err(errno.EINVAL, kdir + "/state")
        cdir = kdir + "/contexts/0"
        ops = self.get(cdir + "/operations")
        if ops not in self.avail_operations:
            raise _err(errno.EINVAL, cdir + "/operations")
        attrs = cdir + "/monitoring_attrs"
        low = int(self.get(attrs + "/nr_regions/min"))
        high = int(self.get(attrs + "/nr_regions/max"))
        if low < 3 or low > high:
            raise _err(errno.EINVAL, attrs + "/nr_regions")
        if int(self.get(attrs + "/intervals/sample_us")) > int(
            self.get(attrs + "/intervals/aggr_us")
        ):
            raise _err(errno.EINVAL, attrs + "/intervals")
        for t_index in range(int(self.get(cdir + "/targets/nr_targets"))):
            tdir = f"{cdir}/targets/{t_index}"
            if ops in ("vaddr", "fvaddr"):
                pid = int(self.get(tdir + "/pid_target"))
                alive = pid > 0 if self.alive_pids is None else pid in self.alive_pids
                if not alive:
                    raise _err(errno.EINVAL, tdir + "/pid_target")
            previous_end = 0
            for r_index in range(int(self.get(tdir + "/regions/nr_regions"))):
                rdir = f"{tdir}/regions/{r_index}"
                start, end = int(self.get(rdir + "/start")), int(self.get(rdir + "/end"))
                if start >= end or start < previous_end:  # empty: EINVAL (measured)
                    raise _err(facts.EMPTY_REGION_AT_ON, rdir)
                previous_end = end

    def _start_perf_events(self, kdir: str) -> None:
        """(Re)create the perf counters of a kdamond, one per event and online CPU."""
        index = int(kdir.split("/")[1])
        self.counters[index] = 0
        perf = PERF_DIRS[self.layout]
        if perf is None:
            return
        edir = f"{kdir}/contexts/0/{perf}"
        for event in range(int(self.get(edir + "/nr_perf_events"))):
            unsupported = int(self.get(f"{edir}/{event}/type"), 16) in self.perf_unsupported_types
            for cpu in self.online_cpus:
                error = "-2" if unsupported else "-95" if cpu in self.perf_fail_cpus else None
                if error is None:
                    self.counters[index] += 1
                else:
                    self.log.log(f"damon: perf event create on CPU {cpu} failed with {error}")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: every created counter of a running kdamond reports
        ``reports_per_second`` samples a second (a ``sleep`` for the applier)."""
        self.slept.append(seconds)
        self.log.pass_time(seconds)
        if self.layout != "rfc-v3":
            return
        for index in self.running:
            rel = f"kdamonds/{index}/total_reports"
            grown = int(self.counters.get(index, 0) * self.reports_per_second * seconds)
            self._file(rel, str(int(self.get(rel)) + grown))

    # ---------------------------------------------------------------- snapshot
    def snapshot(self) -> dict[str, str]:
        """Every file under the root with its content (for comparisons)."""
        out: dict[str, str] = {}
        for path in sorted(self.root_path.rglob("*")):
            if path.is_file():
                out[str(path.relative_to(self.root_path))] = path.read_text().strip()
        return out
