"""``damon-fleet bench``: the A/B bench of playbooks/benchmark.yml, as a run command.

The run is like ``configure`` or ``verify`` (:func:`damon_fleet.run_cli.cmd_run`: the runs
directory, live progress, report.json/md/html, the exit codes). The bench adds to the run
directory::

    bench.json   the figures of both arms per host, the decisions, the fleet summary
                 (schema: roles/damon_bench/README.md)
    bench.md     the letter-style A/B table per host
    bench.html   the same with a chart (matplotlib), per host A against B

The per-host decisions are recorded on the controller by the role, under
``<rollout_state_dir>/bench/<host>.json``; ``damon_perf_mode: auto`` applies them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from damon_fleet import bench as bench_mod
from damon_fleet import run_cli
from damon_fleet._paths import REPO_ROOT


def write_bench(run_dir: Path) -> Path | None:
    """Write bench.json/md/html of the run in *run_dir* from its events; the path of
    bench.json, or None when no host ran the bench."""
    doc = bench_mod.from_events(run_dir.name, run_cli.load_events(run_dir))
    if doc is None:
        return None
    run_cli.write_json(run_dir / "bench.json", doc)
    run_cli.write_private(run_dir / "bench.md", bench_mod.render_markdown(doc))
    run_cli.write_private(run_dir / "bench.html", bench_mod.render_html(doc))
    return run_dir / "bench.json"


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the bench like the other run commands, then write bench.json and its views."""
    runs_dir = Path(args.runs_dir)
    before = set(run_cli.list_runs(runs_dir))
    code = run_cli.cmd_run(args)
    new = [p for p in run_cli.list_runs(runs_dir) if p not in before]
    if not new:
        return code
    path = write_bench(new[-1])
    if path is not None:
        print(f"bench: {path} (md, html beside it)", file=sys.stderr)
    return code


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bench`` to the main CLI."""
    parser = subparsers.add_parser(
        "bench",
        help="measure accessed bits (A) against perf events (B) per host, and decide the mode",
        description=(
            f"Run {run_cli.PLAYBOOKS['bench'].relative_to(REPO_ROOT)} through ansible-runner "
            "with live progress: per host one workload, DAMON with accessed bits (A) then "
            "with perf events (B), the RFC cover letter's function latencies, kdamond CPU, "
            "NMIs, the total_reports rate and the workload's throughput; then the overhead "
            "gate's decision per host (recorded under <rollout_state_dir>/bench/). DAMON is "
            "put back as configured on every host, also on failure. Writes report.* and "
            "bench.json, bench.md, bench.html into the run's directory. Exit 0 when every "
            "host is done, 1 when a host failed, 2 on bad input (nothing ran), 128+N when "
            "stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."
        ),
    )
    run_cli.add_run_options(parser)
    parser.set_defaults(func=cmd_bench, check=False)
