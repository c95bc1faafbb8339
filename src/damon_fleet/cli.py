"""The ``damon-fleet`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from damon_fleet.damon_cli import add_damon_parser
from damon_fleet.lab_cli import add_lab_parser
from damon_fleet.perf_cli import add_perf_parser
from damon_fleet.run_cli import add_run_parsers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="damon-fleet",
        description="Build, roll out and configure DAMON's perf-event based access check.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_perf_parser(sub)
    add_damon_parser(sub)
    add_lab_parser(sub)
    add_run_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
