"""The ``damon-fleet`` command.

Exit codes: 0 done, 1 a host failed, 2 bad input (one line naming it; nothing ran), 70 an
internal error (one line; ``DAMON_FLEET_DEBUG=1`` shows the traceback), 128 + N when
stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP; see
:mod:`damon_fleet.signals` for which signals a run honours).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from damon_fleet._paths import ensure_collection_link, register_module_utils
from damon_fleet.bench_cli import add_bench_parser
from damon_fleet.damon_cli import add_damon_parser
from damon_fleet.lab_cli import add_lab_parser
from damon_fleet.perf_cli import add_perf_parser
from damon_fleet.rollback_cli import add_rollback_parser
from damon_fleet.run_cli import add_run_parsers

EXIT_INTERNAL = 70  # EX_SOFTWARE (sysexits.h)
DEBUG_ENV = "DAMON_FLEET_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="damon-fleet",
        description="Build, roll out and configure DAMON's perf-event based access check.",
        epilog=(
            "Exit codes: 0 done, 1 a host failed, 2 bad input (nothing ran), 70 internal "
            f"error ({DEBUG_ENV}=1 shows the traceback), 128+N stopped by signal N "
            "(130 SIGINT, 143 SIGTERM, 129 SIGHUP)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_perf_parser(sub)
    add_damon_parser(sub)
    add_lab_parser(sub)
    add_run_parsers(sub)
    add_bench_parser(sub)
    add_rollback_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = os.environ.get(DEBUG_ENV) == "1"
    try:
        # ansible-playbook finds the checkout as the collection damon_fleet.fleet (the
        # modules' module_utils imports) through this link; a fresh clone has none yet.
        ensure_collection_link()
        register_module_utils()
        result: int = args.func(args)
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ndamon-fleet: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as exc:
        if debug:
            raise
        detail = " ".join(str(exc).split())[:300]
        print(
            f"damon-fleet: internal error: {type(exc).__name__}: {detail} "
            f"(run again with {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return result


if __name__ == "__main__":
    sys.exit(main())
