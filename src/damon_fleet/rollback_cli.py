"""``damon-fleet rollback``: take hosts back to the kernel they ran before their rollout.

Runs ``playbooks/rollback.yml`` like the other run commands (:func:`damon_fleet.run_cli.cmd_run`:
live progress, the run's directory, the per-host report with the hosts' rollout records,
the same exit codes and signal handling). The options become the playbook's extra vars:
``--to`` -> ``rollback_to``, ``--keep-damon`` -> ``rollback_keep_damon``,
``--remove-packages`` -> ``rollback_remove_packages``; they win over the same names
given with ``-e``. A ``--to`` that no ``uname -r`` could print is refused before anything
runs (exit 2).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from damon_fleet.run_cli import EXIT_BAD_INPUT, add_run_options, cmd_run


def release_pattern() -> re.Pattern[str]:
    """The kernel release pattern of the GRUB module (one definition)."""
    from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.grub_entries import (
        RELEASE,
    )

    pattern: re.Pattern[str] = RELEASE
    return pattern


def rollback_vars(args: argparse.Namespace) -> dict[str, object]:
    """The extra vars the options set; ValueError (one line) for a bad ``--to``."""
    out: dict[str, object] = {
        "rollback_keep_damon": bool(args.keep_damon),
        "rollback_remove_packages": bool(args.remove_packages),
    }
    if args.to is not None:
        if not release_pattern().fullmatch(args.to):
            raise ValueError(
                f"--to {args.to!r} is not accepted: give a kernel release as uname -r prints "
                "it (a digit first, then letters, digits, '.', '_', '+', '~', '-'; at most "
                "64 characters)"
            )
        out["rollback_to"] = args.to
    return out


def cmd_rollback(args: argparse.Namespace) -> int:
    try:
        extra = rollback_vars(args)
    except ValueError as exc:
        print(f"damon-fleet rollback: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args.extra_vars = [*args.extra_vars, json.dumps(extra)]
    args.check = False
    return cmd_run(args)


def add_rollback_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "rollback",
        help="take hosts back to the kernel they ran before the rollout (playbooks/rollback.yml)",
        description=(
            "Per host, in the rollout's batches (canary first, any failure stops the run): "
            "DAMON removed (unless --keep-damon), the kernel the host ran before its rollout "
            "(its rollout record's kernel_before, or --to) made GRUB's default, one reboot, "
            "a gate on that kernel (release, new boot id, kernel log), the rolled-back "
            "kernel's packages removed only with --remove-packages, and the record says "
            "rolled_back. Hosts without a record, or whose previous kernel is gone, are "
            "refused before anything changes on them; hosts rolled back already are left "
            "alone, so running it again resumes. Exit 0 when every host is rolled back, "
            "1 when a host failed or was refused, 2 on bad input (nothing ran), 128+N when "
            "stopped by signal N."
        ),
    )
    add_run_options(parser)
    parser.add_argument(
        "--to",
        default=None,
        metavar="RELEASE",
        help="go back to this kernel release instead of each host's kernel before the rollout",
    )
    parser.add_argument(
        "--keep-damon", action="store_true", help="leave DAMON as it is (default: remove it)"
    )
    parser.add_argument(
        "--remove-packages",
        action="store_true",
        help="remove the rolled-back kernel's packages once the host passed the gate",
    )
    parser.set_defaults(func=cmd_rollback, check=False)
