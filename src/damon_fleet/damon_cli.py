"""``damon-fleet damon plan``: the ordered DAMON sysfs writes for a spec, as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    HostResolver,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.applier import (
    load_config,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    LAYOUTS,
    LayoutError,
    PlanError,
    detect_layout,
    format_writes,
    plan,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    SpecError,
    resolve_targets,
)

EXIT_BAD_INPUT = 2


def _admin_root(directory: str) -> str:
    """Accept a sysfs mount (``/sys``) or the DAMON admin directory itself."""
    nested = os.path.join(directory, "kernel", "mm", "damon", "admin")
    return nested if os.path.isdir(nested) else directory


def cmd_plan(args: argparse.Namespace) -> int:
    prog = "damon-fleet damon plan"
    try:
        config = load_config(args.spec)
    except SpecError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.max_sample_rate is not None and args.max_sample_rate < 1:
        print(f"{prog}: --max-sample-rate must be a positive integer", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        layout = args.layout
        if layout is None:
            layout = detect_layout(_admin_root(args.sysfs_root))
        spec = resolve_targets(config.spec, HostResolver())
        result = plan(spec, layout, args.max_sample_rate)
    except (SpecError, PlanError, LayoutError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in result.notes:
        print(f"{prog}: note: {note}", file=sys.stderr)
    pairs = format_writes(result.writes)
    sys.stdout.write("[\n" + ",\n".join("  " + json.dumps(pair) for pair in pairs) + "\n]\n")
    return 0


def add_damon_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``damon`` (with ``plan``) to the main CLI."""
    damon = subparsers.add_parser("damon", help="plan DAMON sysfs configurations")
    sub = damon.add_subparsers(dest="damon_command", required=True, metavar="SUBCOMMAND")
    plan_p = sub.add_parser(
        "plan",
        help="print the ordered sysfs writes for a spec",
        description=(
            "Print the ordered DAMON sysfs writes for SPEC.yml (role inputs: "
            "damon_perf_kdamonds, damon_perf_default_perf_events, damon_perf_no_event_policy, "
            "damon_perf_sample_freq) as a JSON list of [relative_path, value] pairs, paths "
            "relative to /sys/kernel/mm/damon/admin. pidfile/unit/process targets and paddr "
            "regions are resolved on this machine."
        ),
    )
    plan_p.add_argument("spec", metavar="SPEC.yml", help="YAML file with damon_perf_* inputs")
    where = plan_p.add_mutually_exclusive_group(required=True)
    where.add_argument("--layout", choices=LAYOUTS, help="the sysfs layout to plan for")
    where.add_argument(
        "--sysfs-root",
        metavar="DIR",
        help="detect the layout from this tree (a sysfs mount or the DAMON admin directory)",
    )
    plan_p.add_argument(
        "--max-sample-rate",
        type=int,
        default=None,
        metavar="N",
        help="refuse sample_freq above N (a host's perf_event_max_sample_rate)",
    )
    plan_p.set_defaults(func=cmd_plan)
