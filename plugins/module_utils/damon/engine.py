"""Apply a DAMON plan to a sysfs tree idempotently, and verify the result.

The engine works over two small interfaces (``damon.adapters``) so that the real kernel
and the fake sysfs of the unit tests run the very same code:

* :class:`SysfsIO` - ``read``/``write``/``exists``/``isdir`` on absolute paths;
* :class:`KernelLog` - the kernel messages after a mark (taken just before the
  ``on``/``commit`` write) or since a kdamond started, used to see the silent
  perf-event fallback (``perf event create on CPU N failed with E``).

Steps: resolve targets on the host, create the kdamond/context directories if
needed, detect the layout, plan, then walk the plan in order writing only what
differs (an ``nr_*`` write resets everything beneath it, which later reads see),
turn kdamonds on, ``commit`` running ones that changed, read every value back,
check ``pid``, and decide ``perf_effective`` from evidence (the kernel log and the
``total_reports`` counter; the rules are in ``damon.evidence``).  Nothing here runs a
shell; values are written to files under the admin root only.
"""

from __future__ import annotations

import errno
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    KernelLog,
    RealSysfs,
    SysfsIO,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.evidence import (
    DEFAULT_WINDOW,
    FALLBACK_ACCESSED_BITS,
    FALLBACK_FAIL,
    NO,
    UNKNOWN,
    Counter,
    EvidenceInputError,
    no_perf_configured,
    not_measured,
    parse_counter,
    parse_failures,
    parse_fallback_policy,
    parse_stand_in_kernels,
    parse_window,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.evidence import (
    Evidence as PerfEvidence,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.evidence import (
    describe as describe_perf,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.evidence import (
    judge as judge_evidence,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.kernel_facts import (
    parse_avail_operations,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    ADMIN_ROOT,
    LAYOUTS,
    LayoutUndetermined,
    Plan,
    PlanError,
    Write,
    default_value,
    detect_layout,
    is_rebuild_file,
    rebuild_scope,
    sample_rate_problems,
    structure_writes,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    plan as make_plan,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    DamonSpec,
    Resolver,
    SpecError,
    resolve_targets,
)

KEYWORD_FILES = ("operations", "state", "avail_operations")
BOOL_FILES = ("sample_phys_addr",)
ABSENT = "(absent)"


class ApplyError(RuntimeError):
    """Applying failed; ``result`` holds what was done up to that point."""

    def __init__(self, message: str, result: ApplyResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def parse_perf_failures(lines: Sequence[str]) -> list[dict[str, Any]]:
    """``perf event create on CPU N failed with E`` lines as ``{cpu, error}``."""
    failures: list[dict[str, Any]] = parse_failures(lines)
    return failures


def _kstrtobool(text: str) -> bool | None:
    head = text.strip()[:2].lower()
    if head[:1] in ("y", "t", "1"):
        return True
    if head[:1] in ("n", "f", "0"):
        return False
    if head == "on":
        return True
    if head == "of":
        return False
    return None


def same_value(path: str, current: str | None, wanted: str) -> bool:
    """Whether ``current`` (as read back) already equals ``wanted`` (as written)."""
    if current is None:
        return False
    base = posixpath.basename(path)
    if base in KEYWORD_FILES:
        return current.strip() == wanted.strip()
    if base in BOOL_FILES:
        left, right = _kstrtobool(current), _kstrtobool(wanted)
        return left is not None and left == right
    try:
        return int(current.strip(), 0) == int(wanted.strip(), 0)
    except ValueError:
        return current.strip() == wanted.strip()


def diff_text(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{path} = {value}\n" for path, value in pairs)


FALLBACK_NOTE = (
    f"going on (damon_perf_fallback_policy is '{FALLBACK_ACCESSED_BITS}'; "
    f"'{FALLBACK_FAIL}' fails the host instead)"
)


@dataclass(frozen=True)
class EvidenceSettings:
    """How ``perf_effective`` is decided and what follows from a ``no``."""

    window: float = DEFAULT_WINDOW  # seconds total_reports is watched; 0: not watched
    fallback_policy: str = FALLBACK_ACCESSED_BITS
    stand_in: bool = False  # the running kernel is built from a stand-in series
    collect: bool = True  # False: do not measure (perf_effective unknown)


def evidence_settings(
    window: Any = DEFAULT_WINDOW,
    fallback_policy: Any = FALLBACK_ACCESSED_BITS,
    stand_in_kernels: Any = (),
    release: str | None = None,
    collect: bool = True,
    prefix: str = "damon_perf_",
) -> EvidenceSettings:
    """Validate the evidence inputs; ``release`` is the running kernel's (``uname -r``).

    Raises :class:`SpecError` with one line per bad input.
    """
    problems: list[str] = []
    parsed_window, policy = DEFAULT_WINDOW, FALLBACK_ACCESSED_BITS
    kernels: tuple[str, ...] = ()
    try:
        parsed_window = parse_window(window, prefix + "evidence_window")
    except EvidenceInputError as err:
        problems.append(str(err))
    try:
        policy = parse_fallback_policy(fallback_policy, prefix + "fallback_policy")
    except EvidenceInputError as err:
        problems.append(str(err))
    try:
        kernels = parse_stand_in_kernels(stand_in_kernels, prefix + "stand_in_kernels")
    except EvidenceInputError as err:
        problems.append(str(err))
    if problems:
        raise SpecError(problems)
    return EvidenceSettings(parsed_window, policy, release in kernels, collect)


@dataclass
class ApplyResult:
    changed: bool = False
    layout: str | None = None
    writes: list[Write] = field(default_factory=list)
    before: list[tuple[str, str]] = field(default_factory=list)
    after: list[tuple[str, str]] = field(default_factory=list)
    perf: PerfEvidence | None = None
    perf_failures: list[dict[str, Any]] = field(default_factory=list)
    kdamonds: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False
    plan: list[Write] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "layout": self.layout,
            "writes": [[p, v] for p, v in self.writes],
            **self.perf_dict(),
            "perf_failures": self.perf_failures,
            "kdamonds": self.kdamonds,
            "warnings": self.warnings,
            "skipped": self.skipped,
            "diff": {"before": diff_text(self.before), "after": diff_text(self.after)},
        }

    @property
    def perf_effective(self) -> str:
        """``yes``, ``no`` or ``unknown`` (see ``damon.evidence``)."""
        value: str = self.perf.value if self.perf is not None else UNKNOWN
        return value

    def perf_dict(self) -> dict[str, Any]:
        """``perf_effective``, ``perf_evidence`` and ``perf_summary`` (the one-line text)."""
        evidence = self.perf or not_measured("not measured: the run stopped before it")
        out: dict[str, Any] = evidence.as_dict()
        out["perf_summary"] = describe_perf(out)
        return out


class Applier:
    """One apply run over ``io`` rooted at ``root`` (the DAMON admin directory)."""

    def __init__(
        self,
        io: SysfsIO,
        root: str = ADMIN_ROOT,
        log: KernelLog | None = None,
        check_mode: bool = False,
        settle_time: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        evidence: EvidenceSettings | None = None,
    ) -> None:
        self.io = io
        self.root = posixpath.normpath(root)
        self.log = log
        self.check_mode = check_mode
        self.settle_time = settle_time
        self.sleep = sleep
        self.evidence = evidence or EvidenceSettings()
        self._log_mark_error: str | None = None
        self._log_marked = False
        self.result = ApplyResult()
        self._rebuilt: set[str] = set()  # check mode: directories a write would recreate
        self._pending: dict[str, str] = {}  # check mode: what a write would leave behind
        self._touched: set[int] = set()  # kdamonds with a changed leaf

    # ------------------------------------------------------------------ paths
    def abspath(self, rel: str) -> str:
        """``root/rel``, refusing anything that leaves the admin root."""
        if not rel or rel.startswith("/") or "\x00" in rel or "\\" in rel:
            raise ApplyError(f"refusing path {rel!r}: not a relative DAMON sysfs path")
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ApplyError(f"refusing path {rel!r}: it leaves {self.root}")
        # Symbolic links below the root are refused when the path is opened (RealSysfs
        # walks it with O_NOFOLLOW), not checked here: a check would race with the open.
        return posixpath.join(self.root, rel)

    def _read(self, rel: str) -> str | None:
        path = self.abspath(rel)
        if self.check_mode:
            if rel in self._pending:
                return self._pending[rel]
            if self._under_rebuilt(rel):
                default: str | None = default_value(rel)
                return default
        if not self.io.exists(path):
            return None
        try:
            return self.io.read(path).strip()
        except OSError as err:
            raise ApplyError(f"cannot read {path}: {_oserror(err)}", self.result) from err

    def _under_rebuilt(self, rel: str) -> bool:
        return any(_in_numbered_child(scope, rel) for scope in self._rebuilt)

    def _write(self, rel: str, value: str, before: str | None) -> None:
        if "\n" in value or "\x00" in value:
            raise ApplyError(f"refusing value {value!r} for {rel}: one line expected")
        path = self.abspath(rel)
        self.result.before.append((rel, ABSENT if before is None else before))
        self.result.after.append((rel, value))
        self.result.writes.append((rel, value))
        self.result.changed = True
        if is_rebuild_file(rel):
            scope = rebuild_scope(rel)
            self._rebuilt.add(scope)
            for key in [k for k in self._pending if _in_numbered_child(scope, k)]:
                del self._pending[key]
        if self.check_mode:
            if posixpath.basename(rel) != "state":
                self._pending[rel] = value
            else:
                self._pending[rel] = "off" if value == "off" else "on"
            return
        try:
            self.io.write(path, value)
        except OSError as err:
            raise ApplyError(
                f"writing {value!r} to {path} failed: {_oserror(err)}", self.result
            ) from err

    # ------------------------------------------------------------------ steps
    def _running(self, index: int) -> bool:
        return (self._read(f"kdamonds/{index}/state") or "off") == "on"

    def _current_nr_kdamonds(self) -> int:
        value = self._read("kdamonds/nr_kdamonds")
        return int(value, 0) if value else 0

    def _sync(self, writes: Sequence[Write]) -> None:
        """Write each value that differs, in order; ``state`` writes are handled apart."""
        for rel, value in writes:
            if posixpath.basename(rel) == "state":
                continue
            current = self._read(rel)
            if current is None and not self.check_mode:
                layout = self.result.layout
                raise ApplyError(
                    f"{self.abspath(rel)} does not exist (symbolic links below {self.root} are "
                    "not followed); the kernel's DAMON sysfs differs from the "
                    + (f"{layout} layout" if layout else "DAMON sysfs ABI"),
                    self.result,
                )
            if same_value(rel, current, value):
                continue
            self._write(rel, value, current)
            kdamond = _kdamond_of(rel)
            if kdamond is not None:
                self._touched.add(kdamond)

    def _stop_all_running(self, count: int, reason: str) -> None:
        for index in range(count):
            if self._running(index):
                self.result.warnings.append(f"stopping kdamond {index}: {reason}")
                self._write(f"kdamonds/{index}/state", "off", "on")

    def run(
        self,
        spec: DamonSpec,
        resolver: Resolver | None = None,
        layout: str = "auto",
        max_sample_rate: int | None = None,
    ) -> ApplyResult:
        result = self.result
        if not self.io.isdir(self.root):
            raise ApplyError(
                f"DAMON sysfs admin directory {self.root} not found "
                "(the kernel needs CONFIG_DAMON_SYSFS=y)",
                result,
            )
        if resolver is not None:
            spec = resolve_targets(spec, resolver)
        early = sample_rate_problems(spec, max_sample_rate)
        if early:  # before the directory writes below: a bad input changes nothing
            raise PlanError("; ".join(early))

        # 1. kdamond and context directories, so the layout can be seen
        current_nr = self._current_nr_kdamonds()
        wanted_nr = len(spec.kdamonds)
        detected: str | None
        try:
            detected = detect_layout(self.root, self.io.isdir)
        except LayoutUndetermined:
            detected = None
        needs_structure = detected is None or current_nr != wanted_nr
        if needs_structure and wanted_nr > 0 and detected is not None:
            # The checks of steps 1-2 on the layout already visible, before the writes
            # below stop kdamonds or rebuild directories: a bad input changes nothing.
            self._check_layout(layout, detected)
            make_plan(spec, detected, max_sample_rate)
            self._check_operations(spec, before_structure=True)
        if needs_structure and wanted_nr > 0:
            if current_nr != wanted_nr:
                self._stop_all_running(
                    current_nr, "nr_kdamonds changes (the kernel refuses it while any kdamond runs)"
                )
            self._sync(structure_writes(spec))
            if detected is None and not self.check_mode:
                detected = detect_layout(self.root, self.io.isdir)
        if detected is None and wanted_nr == 0:
            detected = layout if layout != "auto" else "mainline"  # nothing layout-specific
        if detected is None:
            if layout == "auto":
                if wanted_nr:
                    result.warnings.append(
                        "layout not visible until kdamond directories exist; check mode "
                        "shows only the directory writes"
                    )
                result.layout = None
                return result
            detected = layout
        self._check_layout(layout, detected)
        result.layout = detected

        # 2. plan on the detected layout
        the_plan: Plan = make_plan(spec, detected, max_sample_rate)
        result.plan = list(the_plan.writes)
        result.warnings.extend(the_plan.notes)
        if the_plan.skipped:
            result.skipped = True
            result.perf = no_perf_configured(
                "DAMON left alone (damon_perf_no_event_policy 'skip')", self.evidence.stand_in
            )
            return result
        self._check_operations(spec)

        # 3. stop kdamonds when the number changes (EBUSY otherwise)
        if self._current_nr_kdamonds() != wanted_nr:
            self._stop_all_running(self._current_nr_kdamonds(), "nr_kdamonds changes")
        running = {i for i in range(wanted_nr) if self._running(i)}

        # 4. leaves in plan order, then the state of each kdamond
        started: list[int] = []
        groups = _group_by_kdamond(the_plan.writes)
        self._sync(groups.get(None, []))
        for index in range(wanted_nr):
            self._sync(groups.get(index, []))
            want = spec.kdamonds[index].state
            state_rel = f"kdamonds/{index}/state"
            if want == "on" and (index not in running or index in self._touched):
                self._mark_log()
            if want == "on" and index in running and index in self._touched:
                self._write(state_rel, "commit", "on")
                started.append(index)
            elif want == "on" and index not in running:
                self._write(state_rel, "on", "off")
                started.append(index)
            elif want == "off" and index in running:
                self._write(state_rel, "off", "on")

        # 5. verify
        if not self.check_mode:
            if started and self.settle_time > 0:
                self.sleep(self.settle_time)
            self._read_back(the_plan)
        self._verify_kdamonds(spec, started)
        result.perf = self._perf_evidence(the_plan, started)
        self._apply_fallback_policy(the_plan)
        return result

    def _mark_log(self) -> None:
        """Mark the kernel log once, just before the first ``on``/``commit`` write."""
        if self.log is None or self.check_mode or self._log_marked:
            return
        self._log_marked = True
        try:
            self.log.mark()
        except OSError as err:
            self._log_mark_error = _oserror(err)

    def _check_layout(self, layout: str, detected: str) -> None:
        if layout != "auto" and layout != detected:
            raise ApplyError(
                f"expected DAMON sysfs layout {layout} but the running kernel has {detected}",
                self.result,
            )

    def _check_operations(self, spec: DamonSpec, before_structure: bool = False) -> None:
        """Each kdamond's operations against its context's ``avail_operations``; before
        the structure writes, kdamonds not there yet are checked against kdamond 0's
        (the list is the kernel's, the same in every context)."""
        shared = self._read("kdamonds/0/contexts/0/avail_operations") if before_structure else None
        for index, kd in enumerate(spec.kdamonds):
            rel = f"kdamonds/{index}/contexts/0/avail_operations"
            avail = self._read(rel)
            if avail is None or (self.check_mode and self._under_rebuilt(rel)):
                avail = shared
            if avail is None:
                continue
            names = parse_avail_operations(avail)
            if names and kd.operations not in names:
                raise ApplyError(
                    f"damon_perf_kdamonds[{index}].operations: {kd.operations} is not "
                    f"available on this kernel (avail_operations: {' '.join(names)}; "
                    f"needs CONFIG_DAMON_{'PADDR' if kd.operations == 'paddr' else 'VADDR'})",
                    self.result,
                )

    def _read_back(self, the_plan: Plan) -> None:
        mismatches = []
        for rel, value in the_plan.writes:
            if posixpath.basename(rel) == "state":
                continue
            current = self._read(rel)
            if not same_value(rel, current, value):
                mismatches.append(f"{rel}: wrote {value}, reads {current}")
        if mismatches:
            raise ApplyError("read-back mismatch: " + "; ".join(mismatches), self.result)

    def _verify_kdamonds(self, spec: DamonSpec, started: list[int]) -> None:
        result = self.result
        problems = []
        for index, kd in enumerate(spec.kdamonds):
            state = self._read(f"kdamonds/{index}/state") or "off"
            pid_text = self._read(f"kdamonds/{index}/pid") or "-1"
            try:
                pid = int(pid_text)
            except ValueError:
                pid = -1
            if self.check_mode:
                # The state the writes would leave; the pid of the kdamond running now (a
                # check with nothing to write shows the running kdamond as it is).
                result.kdamonds.append(
                    {"index": index, "state": kd.state, "pid": pid if pid > 0 else None}
                )
                continue
            result.kdamonds.append(
                {"index": index, "state": state, "pid": pid if pid > 0 else None}
            )
            if kd.state == "on" and (state != "on" or pid <= 0):
                problems.append(
                    f"kdamond {index} is not running after "
                    f"'{'on' if index in started else 'apply'}' (state {state}, pid {pid}); "
                    "a target process may have exited"
                )
        if problems:
            raise ApplyError("; ".join(problems), result)

    def _perf_evidence(self, the_plan: Plan, started: list[int]) -> PerfEvidence:
        """``perf_effective`` from the kernel log and ``total_reports`` (read-only)."""
        settings = self.evidence
        stand_in = settings.stand_in
        wanted = sorted(i for i, on in the_plan.perf.items() if on)
        if not wanted:
            return no_perf_configured(
                "no perf event configured"
                + ("" if the_plan.layout != "mainline" else " (mainline layout)")
                + "; monitoring with accessed bits",
                stand_in,
            )
        if self.check_mode and self.result.writes:
            return not_measured(
                f"check mode: {len(self.result.writes)} writes pending, nothing measured",
                stand_in,
            )
        if not settings.collect:
            return not_measured("not measured (evidence not collected)", stand_in)
        counters = self._watch_counters(wanted)
        # the log after the window: it also holds what the kdamonds logged meanwhile
        lines, log_error, since = self._log_lines(wanted, started)
        self.result.perf_failures = parse_failures(lines or [])
        return judge_evidence(lines, counters, settings.window, stand_in, log_error, since)

    def _log_lines(
        self, wanted: Sequence[int], started: Sequence[int]
    ) -> tuple[list[str] | None, str | None, str]:
        """The kernel log since the ``on``/``commit`` write of this run (after the mark)
        when every kdamond with perf events got one; else since the earliest start of
        those that did not (failure lines cannot be told apart by kdamond, so this may
        include older lines of the others: never a false yes). (None, why) if unreadable."""
        if self.log is None:
            return None, "no kernel log given", ""
        unchanged = [index for index in wanted if index not in started]
        if self._log_marked:
            if self._log_mark_error is not None:
                return None, self._log_mark_error, ""
            try:
                lines = self.log.messages_since_mark()
            except OSError as err:
                return None, _oserror(err), ""
            if not unchanged:
                return lines, None, "since the 'on'/'commit' write"
        pids = [k["pid"] for k in self.result.kdamonds if k["index"] in unchanged and k["pid"]]
        starts = [self.log.process_start_us(pid) for pid in pids]
        known = [s for s in starts if s is not None]
        # /proc/<pid>/stat counts from boot in clock ticks, the log in microseconds from
        # its own clock: a second of slack before the start
        since_us = max(0, min(known) - 1000000) if known and len(known) == len(pids) else 0
        try:
            lines = self.log.messages_since(since_us)
        except OSError as err:
            return None, _oserror(err), ""
        return lines, None, "since the kdamond started" if since_us else "in the whole log"

    def _watch_counters(self, wanted: Sequence[int]) -> list[Counter] | None:
        """``total_reports`` of each kdamond at the start and the end of the window; None
        where the layout has no counter (or the window is 0)."""
        window = self.evidence.window
        rels = [f"kdamonds/{index}/total_reports" for index in wanted]
        if window <= 0 or not all(self.io.exists(self.abspath(rel)) for rel in rels):
            return None
        first = [self._counter(rel) for rel in rels]
        self.sleep(window)
        last = [self._counter(rel) for rel in rels]
        return [Counter(i, a, b) for i, a, b in zip(wanted, first, last, strict=True)]

    def _counter(self, rel: str) -> int:
        text = self._read(rel)
        try:
            value: int = parse_counter(text if text is not None else "")
        except ValueError as err:
            raise ApplyError(f"{self.abspath(rel)}: {err}", self.result) from None
        return value

    def _apply_fallback_policy(self, the_plan: Plan) -> None:
        """Perf events configured but not in effect: go on (accessed bits) or fail."""
        evidence = self.result.perf
        if evidence is None or evidence.value != NO or not the_plan.perf_wanted:
            return
        text = f"perf_effective: no ({evidence.reason})"
        if self.evidence.fallback_policy == FALLBACK_FAIL:
            raise ApplyError(text + " (damon_perf_fallback_policy is 'fail')", self.result)
        self.result.warnings.append(text + "; " + FALLBACK_NOTE)


def _in_numbered_child(scope: str, rel: str) -> bool:
    if not rel.startswith(scope + "/"):
        return False
    first = rel[len(scope) + 1 :].split("/", 1)[0]
    return first.isdigit()


def _kdamond_of(rel: str) -> int | None:
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] == "kdamonds" and parts[1].isdigit():
        return int(parts[1])
    return None


def _group_by_kdamond(writes: Sequence[Write]) -> dict[int | None, list[Write]]:
    groups: dict[int | None, list[Write]] = {}
    for rel, value in writes:
        groups.setdefault(_kdamond_of(rel), []).append((rel, value))
    return groups


def _oserror(err: OSError) -> str:
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    return f"{name} ({err.strerror or err})"


def apply_spec(
    spec: DamonSpec,
    io: SysfsIO | None = None,
    root: str = ADMIN_ROOT,
    log: KernelLog | None = None,
    resolver: Resolver | None = None,
    check_mode: bool = False,
    layout: str = "auto",
    max_sample_rate: int | None = None,
    settle_time: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    evidence: EvidenceSettings | None = None,
) -> ApplyResult:
    """Apply ``spec``; raises :class:`ApplyError` (with ``.result``) on failure.

    ``sleep`` waits the settle time and the evidence window (``evidence.window``).
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ApplyError("unknown layout {!r}; known: auto, {}".format(layout, ", ".join(LAYOUTS)))
    applier = Applier(io or RealSysfs(root), root, log, check_mode, settle_time, sleep, evidence)
    return applier.run(spec, resolver, layout, max_sample_rate)
