"""DAMON sysfs layouts, layout detection, and the write planner.

A plan is the ordered list of ``(relative_path, value)`` writes, paths relative to
the DAMON admin root (``/sys/kernel/mm/damon/admin``), that turns a resolved
:class:`~damon.spec.DamonSpec` into a running configuration on a given layout.
The order follows the kernel's rules: ``nr_*`` files first (writing one removes
and recreates the numbered directories beside it with every value reset), then
the leaves, ``state`` last.

Pure code: detection takes an ``isdir`` callable so the fake sysfs, a copied tree
and the real sysfs are treated the same.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.kernel_facts import (
    default_value as kernel_default_value,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    LAYOUTS,
    DamonSpec,
    KdamondSpec,
    PerfEvent,
    SpecError,
    Target,
)

ADMIN_ROOT = "/sys/kernel/mm/damon/admin"

# LAYOUTS (damon.spec): the layouts planned for here, one directory table each.

# Where each layout keeps the perf_events directory, relative to a context dir.
PERF_EVENTS_DIRS: dict[str, str | None] = {
    "rfc-v3": "monitoring_attrs/sample/primitives/perf_events",
    "successor": "monitoring_attrs/sample/perf_events",
    "rfc-v1": "perf_events",
    "mainline": None,
}
# Detection order: the most specific probe first.
_PROBES: tuple[tuple[str, str], ...] = (
    ("rfc-v3", "monitoring_attrs/sample/primitives/perf_events"),
    ("successor", "monitoring_attrs/sample/perf_events"),
    ("rfc-v1", "perf_events"),
    ("mainline", "monitoring_attrs/intervals"),
)

Write = tuple[str, str]


class PlanError(ValueError):
    """The spec cannot be planned on this layout (or under this policy)."""


class LayoutError(RuntimeError):
    """The sysfs tree matches no known DAMON layout."""


class LayoutUndetermined(LayoutError):
    """No context directory exists yet, so the layout cannot be seen."""


@dataclass
class Plan:
    layout: str
    writes: list[Write] = field(default_factory=list)
    # kdamond index -> True when it runs with perf events on this layout
    perf: dict[int, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def perf_wanted(self) -> bool:
        return any(self.perf.values())


def context_dir(kdamond: int, context: int = 0) -> str:
    return f"kdamonds/{kdamond}/contexts/{context}"


def detect_layout(root: str, isdir: Callable[[str], bool] = os.path.isdir) -> str:
    """Name the layout of the DAMON sysfs tree at ``root`` (the admin directory).

    Looks at the first existing context directory.  Raises
    :class:`LayoutUndetermined` when ``root`` has no context directory yet, and
    :class:`LayoutError` naming every path it looked for when none matches.
    """
    if not isdir(posixpath.join(root, "kdamonds")):
        raise LayoutError(
            f"no DAMON sysfs interface at {root} (looked for {root}/kdamonds; the kernel needs "
            "CONFIG_DAMON_SYSFS=y)"
        )
    ctx = None
    kdamond = 0
    while isdir(posixpath.join(root, "kdamonds", str(kdamond))):
        candidate = posixpath.join(root, context_dir(kdamond))
        if isdir(candidate):
            ctx = candidate
            break
        kdamond += 1
    if ctx is None:
        raise LayoutUndetermined(
            f"no context directory under {root}/kdamonds yet; the layout shows once "
            "kdamonds/<K>/contexts/0 exists"
        )
    for name, probe in _PROBES:
        if isdir(posixpath.join(ctx, probe)):
            return name
    looked = ", ".join(posixpath.join(ctx, probe) for _, probe in _PROBES)
    raise LayoutError(f"unknown DAMON sysfs layout: looked for {looked}; found none")


def is_rebuild_file(path: str) -> bool:
    """True for ``nr_*`` files: writing one recreates the numbered dirs beside it."""
    return posixpath.basename(path).startswith("nr_")


def rebuild_scope(path: str) -> str:
    """The directory whose numbered children a write to ``path`` recreates."""
    return posixpath.dirname(path)


def _perf_leaves(event: PerfEvent) -> list[Write]:
    return [
        ("sample_freq", str(event.sample_freq)),
        ("sample_phys_addr", "1" if event.sample_phys_addr else "0"),
        ("type", f"{event.type:#x}"),
        ("config", f"{event.config:#x}"),
        ("config1", f"{event.config1:#x}"),
        ("config2", f"{event.config2:#x}"),
    ]


def _target_writes(tdir: str, target: Target, operations: str) -> list[Write]:
    writes: list[Write] = []
    if operations in ("vaddr", "fvaddr"):
        if target.pid is None:
            raise PlanError(f"{tdir}: {target.kind} target {target.ref!r} is not resolved to a pid")
        writes.append((tdir + "/pid_target", str(target.pid)))
    if target.regions or operations != "vaddr":
        writes.append((tdir + "/regions/nr_regions", str(len(target.regions))))
        for r_index, region in enumerate(target.regions):
            rdir = f"{tdir}/regions/{r_index}"
            writes.append((rdir + "/start", str(region.start)))
            writes.append((rdir + "/end", str(region.end)))
    return writes


def structure_writes(spec: DamonSpec) -> list[Write]:
    """The layout-independent first writes: kdamond and context directories."""
    writes: list[Write] = [("kdamonds/nr_kdamonds", str(len(spec.kdamonds)))]
    for index in range(len(spec.kdamonds)):
        writes.append((f"kdamonds/{index}/contexts/nr_contexts", "1"))
    return writes


def sample_rate_problems(spec: DamonSpec, max_sample_rate: int | None) -> list[str]:
    """Events whose ``sample_freq`` exceeds the host's ``perf_event_max_sample_rate``.

    Layout-independent, so it can run before anything is written.
    """
    problems: list[str] = []
    if max_sample_rate is None:
        return problems
    for index in range(len(spec.kdamonds)):
        for e_index, event in enumerate(spec.events_for(index)):
            freq = event.sample_freq or 0
            if freq > max_sample_rate:
                problems.append(
                    f"damon_perf_kdamonds[{index}].perf_events[{e_index}].sample_freq: "
                    f"{freq} exceeds /proc/sys/kernel/perf_event_max_sample_rate "
                    f"({max_sample_rate})"
                )
    return problems


def plan(spec: DamonSpec, layout: str, max_sample_rate: int | None = None) -> Plan:
    """Ordered writes for ``spec`` on ``layout``.

    The policy for a kdamond with no usable perf event (none listed nor detected,
    or a layout without perf events) is ``spec.no_event_policy``: ``fail`` raises
    :class:`PlanError`, ``accessed_bit`` plans it without perf events, ``skip``
    returns an empty plan marked ``skipped``.  A kdamond whose ``perf_events`` is
    an explicit empty list uses the accessed-bit check without invoking the policy.
    """
    if layout not in LAYOUTS:
        raise PlanError("unknown layout {!r}; known: {}".format(layout, ", ".join(LAYOUTS)))
    perf_dir = PERF_EVENTS_DIRS[layout]
    result = Plan(layout=layout)
    problems: list[str] = []
    per_kdamond: list[tuple[KdamondSpec, tuple[PerfEvent, ...]]] = []
    for index, kd in enumerate(spec.kdamonds):
        events = spec.events_for(index)
        explicit_none = kd.perf_events is not None and not kd.perf_events
        if explicit_none:
            per_kdamond.append((kd, ()))
            continue
        reason = ""
        if not events:
            reason = "no perf event listed in inventory nor detected (damon_perf_events)"
        elif perf_dir is None:
            reason = f"the running kernel's DAMON ({layout} layout) has no perf_events directory"
        if reason:
            where = f"damon_perf_kdamonds[{index}]"
            if spec.no_event_policy == "fail":
                problems.append(f"{where}: {reason} (damon_perf_no_event_policy is 'fail')")
            elif spec.no_event_policy == "skip":
                result.notes.append(f"{where}: {reason}; skipping DAMON on this host")
                result.skipped = True
            else:
                result.notes.append(f"{where}: {reason}; using the accessed-bit check")
            events = ()
        for e_index, event in enumerate(events):
            freq = event.sample_freq or 0
            if max_sample_rate is not None and freq > max_sample_rate:
                problems.append(
                    f"damon_perf_kdamonds[{index}].perf_events[{e_index}].sample_freq: "
                    f"{freq} exceeds /proc/sys/kernel/perf_event_max_sample_rate "
                    f"({max_sample_rate})"
                )
        per_kdamond.append((kd, events))
    if problems:
        raise PlanError("; ".join(problems))
    if result.skipped:
        return result

    result.writes.append(("kdamonds/nr_kdamonds", str(len(spec.kdamonds))))
    for index, (kd, events) in enumerate(per_kdamond):
        kdir = f"kdamonds/{index}"
        cdir = context_dir(index)
        writes = result.writes
        writes.append((kdir + "/contexts/nr_contexts", "1"))
        writes.append((cdir + "/operations", kd.operations))
        attrs = cdir + "/monitoring_attrs"
        writes.append((attrs + "/intervals/sample_us", str(kd.intervals.sample_us)))
        writes.append((attrs + "/intervals/aggr_us", str(kd.intervals.aggr_us)))
        writes.append((attrs + "/intervals/update_us", str(kd.intervals.update_us)))
        writes.append((attrs + "/nr_regions/min", str(kd.nr_regions_min)))
        writes.append((attrs + "/nr_regions/max", str(kd.nr_regions_max)))
        if perf_dir is not None:
            pdir = f"{cdir}/{perf_dir}"
            writes.append((pdir + "/nr_perf_events", str(len(events))))
            for e_index, event in enumerate(events):
                for leaf, value in _perf_leaves(event):
                    writes.append((f"{pdir}/{e_index}/{leaf}", value))
        result.perf[index] = bool(events) and perf_dir is not None and kd.state == "on"
        writes.append((cdir + "/targets/nr_targets", str(len(kd.targets))))
        for t_index, target in enumerate(kd.targets):
            tdir = f"{cdir}/targets/{t_index}"
            writes.extend(_target_writes(tdir, target, kd.operations))
        writes.append((kdir + "/state", kd.state))
    return result


def default_value(path: str) -> str | None:
    """What a file reads right after its directory was (re)created by an ``nr_*`` write.

    The kernel's defaults, from the one table of measured facts
    (``damon.kernel_facts``); ``None`` when unknown.
    """
    value: str | None = kernel_default_value(path)
    return value


def format_writes(writes: Sequence[Write]) -> list[list[str]]:
    """JSON-friendly form: a list of ``[relative_path, value]`` pairs."""
    return [[path, value] for path, value in writes]


__all__ = [
    "ADMIN_ROOT",
    "LAYOUTS",
    "PERF_EVENTS_DIRS",
    "LayoutError",
    "LayoutUndetermined",
    "Plan",
    "PlanError",
    "SpecError",
    "Write",
    "context_dir",
    "default_value",
    "detect_layout",
    "format_writes",
    "is_rebuild_file",
    "plan",
    "rebuild_scope",
    "structure_writes",
]
