"""``damon-fleet perf ...``: parse a -vv log, resolve an event, detect this machine."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.facts import (
    DEFAULT_WORKLOAD,
    TIMEOUT_RC,
    Options,
    gather,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import parse, summarize
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.pmu import (
    PmuError,
    read_pmus,
    resolve_event,
)

EXIT_BAD_INPUT = 2


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def cmd_parse(args: argparse.Namespace) -> int:
    try:
        if args.log == "-":
            text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        else:
            with open(args.log, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        print(f"damon-fleet perf parse: cannot read {args.log}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _print_json(summarize(parse(text), args.events))
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    pmus = read_pmus(args.sysfs_root)
    try:
        event = resolve_event(args.event, pmus)
    except PmuError as exc:
        print(f"damon-fleet perf resolve: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _print_json(event.to_dict())
    return 0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(
            list(argv),
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:

        def text(data: str | bytes | None) -> str:
            return data.decode(errors="replace") if isinstance(data, bytes) else data or ""

        return TIMEOUT_RC, text(exc.stdout), text(exc.stderr)
    except OSError as exc:
        return 127, "", f"{argv[0]}: {exc.strerror}"
    return proc.returncode, proc.stdout, proc.stderr


def cmd_detect(args: argparse.Namespace) -> int:
    perf = args.perf if os.sep in args.perf else shutil.which(args.perf)
    with tempfile.TemporaryDirectory(prefix="damon-fleet-perf.") as workdir:
        facts = gather(
            _run,
            _read,
            Options(
                perf_path=perf,
                workload=args.workload or list(DEFAULT_WORKLOAD),
                timeout=args.timeout,
                sysfs_root=args.sysfs_root,
                kind=args.events,
                output_path=os.path.join(workdir, "perf.data"),
            ),
        )
    _print_json(facts)
    return 0


def add_perf_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    perf = subparsers.add_parser("perf", help="perf event detection for DAMON")
    sub = perf.add_subparsers(dest="perf_command", required=True, metavar="COMMAND")

    p_parse = sub.add_parser(
        "parse", help="parse the output of 'perf mem record -vv' and print DAMON's events"
    )
    p_parse.add_argument("log", metavar="LOG", help="log file ('-' reads stdin)")
    p_parse.add_argument(
        "--events",
        choices=("loads", "stores", "all"),
        default="loads",
        help="which events DAMON gets where loads and stores both opened (default: loads)",
    )
    p_parse.set_defaults(func=cmd_parse)

    p_resolve = sub.add_parser(
        "resolve", help="resolve a perf event string (pmu/terms/) to type/config values"
    )
    p_resolve.add_argument("event", metavar="EVENT", help="e.g. cpu/mem-loads,ldlat=30/P")
    p_resolve.add_argument("--sysfs-root", default="/sys", metavar="DIR")
    p_resolve.set_defaults(func=cmd_resolve)

    p_detect = sub.add_parser("detect", help="run the detection on this machine")
    p_detect.add_argument("--perf", default="perf", help="perf binary (default: perf)")
    p_detect.add_argument("--timeout", type=float, default=30.0)
    p_detect.add_argument("--sysfs-root", default="/sys", metavar="DIR")
    p_detect.add_argument("--events", choices=("loads", "stores", "all"), default="loads")
    p_detect.add_argument("workload", nargs="*", help="command to record (default: sleep 0.2)")
    p_detect.set_defaults(func=cmd_detect)
