"""Facts about the kernel's DAMON sysfs files: one table, used everywhere.

The planner's check-mode predictions (``damon.plan.default_value``), the unit
tests' fake sysfs (tests/unit/fake_damon_sysfs.py: its defaults, its parsing of
``avail_operations`` and its error rules) and the VM tier
(tests/vm/test_lab_kernel.py re-reads every default on the lab kernel) all come
from here, so the fake cannot drift from the kernel without a test failing.

``MAINLINE_DEFAULTS`` and the rules below were measured on Linux 6.12 (Debian's
linux-source-6.12, the lab kernel).  ``PERF_EVENT_DEFAULTS`` and
``RFC_V3_DEFAULTS`` come from the RFC v3 tree (docs/damon-perf-abi.md); no lab
kernel has them yet.

Paths are relative to the admin root (``/sys/kernel/mm/damon/admin``); ``<K>``,
``<C>``, ``<T>``, ``<R>``, ``<P>`` stand for a numbered directory.  Values are
the file content without the trailing newline.
"""

from __future__ import annotations

import errno
import re

# Every file of the mainline tree, with what it reads right after the ``nr_*``
# write that created its directory (Linux 6.12).
MAINLINE_DEFAULTS: dict[str, str] = {
    "kdamonds/nr_kdamonds": "0",
    "kdamonds/<K>/state": "off",
    "kdamonds/<K>/pid": "-1",
    "kdamonds/<K>/contexts/nr_contexts": "0",
    "kdamonds/<K>/contexts/<C>/avail_operations": "vaddr\nfvaddr\npaddr",
    "kdamonds/<K>/contexts/<C>/operations": "vaddr",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/intervals/sample_us": "5000",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/intervals/aggr_us": "100000",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/intervals/update_us": "60000000",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/nr_regions/min": "10",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/nr_regions/max": "1000",
    "kdamonds/<K>/contexts/<C>/targets/nr_targets": "0",
    "kdamonds/<K>/contexts/<C>/targets/<T>/pid_target": "0",
    "kdamonds/<K>/contexts/<C>/targets/<T>/regions/nr_regions": "0",
    "kdamonds/<K>/contexts/<C>/targets/<T>/regions/<R>/start": "0",
    "kdamonds/<K>/contexts/<C>/targets/<T>/regions/<R>/end": "0",
    "kdamonds/<K>/contexts/<C>/schemes/nr_schemes": "0",
}

# A perf_events directory (RFC v1-v3, and the successor RFC's common files),
# relative to it.  From the RFC v3 tree: ``nr_perf_events`` recreates ``<P>/``
# with every value zeroed; type/config* read back as hex.
PERF_EVENT_DEFAULTS: dict[str, str] = {
    "nr_perf_events": "0",
    "<P>/type": "0x0",
    "<P>/config": "0x0",
    "<P>/config1": "0x0",
    "<P>/config2": "0x0",
    "<P>/sample_phys_addr": "0",
    "<P>/sample_freq": "0",
}

# The other files of the RFC v3 context tree (the ``sample/`` work), relative to
# the admin root.  From the RFC v3 tree.
RFC_V3_DEFAULTS: dict[str, str] = {
    "kdamonds/<K>/total_reports": "0",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/sample/primitives/page_table": "Y",
    "kdamonds/<K>/contexts/<C>/monitoring_attrs/sample/primitives/page_fault": "N",
}

# Measured rules (Linux 6.12).
AVAIL_OPERATIONS_SEPARATOR = "\n"  # one operations set per line
AVAIL_OPERATIONS_ORDER = ("vaddr", "fvaddr", "paddr")
NR_CONTEXTS_MAX = 1  # nr_contexts above 1: EINVAL
EMPTY_REGION_AT_ON = errno.EINVAL  # a region with start >= end: 'on' fails
NR_KDAMONDS_WHILE_RUNNING = errno.EBUSY  # even to the same count
# The ``state`` keywords 6.12 accepts; anything else (update_tuned_intervals,
# added later, or ON) is EINVAL.
STATE_COMMANDS: tuple[str, ...] = (
    "on",
    "off",
    "commit",
    "commit_schemes_quota_goals",
    "update_schemes_stats",
    "update_schemes_tried_regions",
    "update_schemes_tried_bytes",
    "clear_schemes_tried_regions",
    "update_schemes_effective_quotas",
)
UNKNOWN_STATE_COMMAND = errno.EINVAL
OFF_WHEN_NEVER_STARTED = errno.EINVAL
OFF_WHEN_STOPPED = errno.EPERM

_NUMBERED = re.compile(r"[0-9]+", re.ASCII)


def generic(rel: str) -> str:
    """``rel`` with each numbered directory replaced by its placeholder.

    ``kdamonds/1/contexts/0/targets/2/pid_target`` ->
    ``kdamonds/<K>/contexts/<C>/targets/<T>/pid_target``; under a perf_events
    directory the number is ``<P>``.
    """
    parts = rel.split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        if _NUMBERED.fullmatch(part) and index > 0:
            parent = parts[index - 1]
            out.append(
                {
                    "kdamonds": "<K>",
                    "contexts": "<C>",
                    "targets": "<T>",
                    "regions": "<R>",
                    "perf_events": "<P>",
                }.get(parent, "<N>")
            )
        else:
            out.append(part)
    return "/".join(out)


def default_value(rel: str) -> str | None:
    """What ``rel`` reads right after its directory was created; None if unknown."""
    key = generic(rel)
    if key in MAINLINE_DEFAULTS:
        return MAINLINE_DEFAULTS[key]
    if key in RFC_V3_DEFAULTS:
        return RFC_V3_DEFAULTS[key]
    if "/perf_events/" in key:
        return PERF_EVENT_DEFAULTS.get(key.rsplit("/perf_events/", 1)[1])
    return None


def parse_avail_operations(text: str) -> list[str]:
    """The operations sets an ``avail_operations`` file lists (one per line)."""
    return [line.strip() for line in text.split(AVAIL_OPERATIONS_SEPARATOR) if line.strip()]


def format_avail_operations(names: tuple[str, ...] | list[str]) -> str:
    """``avail_operations`` content for ``names`` (without the final newline)."""
    return AVAIL_OPERATIONS_SEPARATOR.join(names)
