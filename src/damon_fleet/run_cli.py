"""``damon-fleet deploy|detect|configure|verify|report|status``.

The four run commands run a playbook (``deploy.yml``, ``playbooks/detect.yml``,
``playbooks/configure.yml``, ``playbooks/verify.yml``) through ansible-runner's Python API
(``run_async`` with an ``event_handler``), show live progress built from the runner
events (:mod:`damon_fleet.progress`) and write a per-host report (:mod:`damon_fleet.report`)
into the run's directory, ``.damon-fleet/runs/<UTC timestamp>/`` of the checkout::

    run.json       command, inventory, limit, extravars, rollout_state_dir, started,
                   finished, status, ansible_rc, exit_code
    artifacts/     ansible-runner's artifacts (job_events/, stdout, rc, status)
    report.json    report.md    report.html

Exit codes: 0 every host done, 1 some host failed (listed on stderr), 2 bad input (nothing
ran), 130 interrupted (ctrl-C; the records let ``deploy --resume`` continue).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from damon_fleet import report as report_mod
from damon_fleet._paths import REPO_ROOT, runner_envvars
from damon_fleet.progress import COMMAND_STAGES, Progress, shorten

PLAYBOOKS = {
    "deploy": REPO_ROOT / "deploy.yml",
    "detect": REPO_ROOT / "playbooks" / "detect.yml",
    "configure": REPO_ROOT / "playbooks" / "configure.yml",
    "verify": REPO_ROOT / "playbooks" / "verify.yml",
}
DEFAULT_INVENTORY = REPO_ROOT / "inventories" / "lab" / "hosts.yml"
DEFAULT_RUNS_DIR = REPO_ROOT / ".damon-fleet" / "runs"
DEFAULT_STATE_DIR = REPO_ROOT / ".damon-fleet" / "state"
DEFAULT_ROLLOUT_HOSTS = "all:!localhost:!builder"
ARTIFACT_IDENT = "ansible"
RUN_FORMAT = 1
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(ValueError):
    """Input that keeps the run from starting; the message says what is wrong."""


# --- inputs ------------------------------------------------------------------------------


def _scalar(value: str) -> Any:
    """VALUE of KEY=VALUE: JSON when it parses (numbers, lists, true), else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_extra_vars(values: Sequence[str], cwd: Path | None = None) -> dict[str, Any]:
    """``-e`` values as ansible-playbook takes them: ``@FILE`` (YAML/JSON mapping), an
    inline JSON/YAML mapping (``{...}``), or ``KEY=VALUE`` pairs separated by spaces
    (VALUE as JSON when it parses). Later values win."""
    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if not text:
            raise BadInput("-e: empty extra vars")
        if text.startswith("@"):
            path = Path(text[1:]).expanduser()
            if cwd is not None and not path.is_absolute():
                path = cwd / path
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise BadInput(f"-e {raw}: cannot read {path}: {exc.strerror}") from exc
            except yaml.YAMLError as exc:
                raise BadInput(f"-e {raw}: {path} is not YAML: {exc}") from exc
            if not isinstance(data, dict):
                raise BadInput(f"-e {raw}: {path} does not hold a mapping")
            out.update(data)
        elif text.startswith("{"):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                detail = " ".join(str(exc).split())
                raise BadInput(f"-e {raw!r}: not a JSON/YAML mapping: {detail}") from exc
            if not isinstance(data, dict):
                raise BadInput(f"-e {raw!r}: not a mapping")
            out.update(data)
        else:
            from ansible.errors import AnsibleError
            from ansible.parsing.splitter import parse_kv

            try:
                pairs = parse_kv(text)
            except AnsibleError as exc:
                raise BadInput(f"-e {raw!r}: {' '.join(str(exc).split())}") from exc
            if "_raw_params" in pairs or not all(k.isidentifier() for k in pairs):
                raise BadInput(f"-e {raw!r}: expected KEY=VALUE, @FILE or a mapping")
            out.update({key: _scalar(value) for key, value in pairs.items()})
    return out


@dataclass
class InventoryInfo:
    """The hosts a run targets (inventory and limit applied) and, per stage, which."""

    hosts: list[str]
    stage_hosts: dict[str, list[str]] = field(default_factory=dict)


def read_inventory(
    inventory: Path, limit: str | None, rollout_hosts: str = DEFAULT_ROLLOUT_HOSTS
) -> InventoryInfo:
    """Parse *inventory* with Ansible's own InventoryManager and apply *limit*; a source
    Ansible cannot parse, an inventory without hosts or a limit pattern matching no host is
    :class:`BadInput` (the run would do nothing useful)."""
    from ansible.inventory.manager import InventoryManager, split_host_pattern
    from ansible.parsing.dataloader import DataLoader

    if not inventory.exists():
        raise BadInput(f"inventory {inventory} does not exist")
    if not os.access(inventory, os.R_OK):
        raise BadInput(f"inventory {inventory} is not readable")
    noise = io.StringIO()
    with contextlib.redirect_stderr(noise), contextlib.redirect_stdout(noise):
        manager = InventoryManager(DataLoader(), sources=[])
        parsed = manager.parse_source(str(inventory))
        manager.reconcile_inventory()
        if not parsed:
            detail = " ".join(
                line
                for line in noise.getvalue().splitlines()
                if "No inventory was parsed" not in line and "<<< caused by >>>" not in line
            )
            detail = " ".join(detail.split())[:400]
            raise BadInput(f"inventory {inventory} cannot be parsed: {detail}")
        every = [h.name for h in manager.list_hosts("all")]
        if not every:
            raise BadInput(f"inventory {inventory} has no hosts")
        if limit:
            for pattern in split_host_pattern(limit):
                name = pattern.lstrip("!&")
                if name.startswith("@"):
                    if not Path(name[1:]).is_file():
                        raise BadInput(f"--limit {limit}: no file {name[1:]}")
                    continue
                if not manager.get_hosts(name):
                    raise BadInput(f"--limit {limit}: {name!r} matches no host of {inventory}")
            manager.subset(limit)
        hosts = [h.name for h in manager.list_hosts("all")]
        if not hosts:
            raise BadInput(f"--limit {limit} leaves no host of {inventory}")
        rollout = [h.name for h in manager.list_hosts(rollout_hosts)]
    return InventoryInfo(
        hosts=hosts,
        stage_hosts={
            "rollout": rollout,
            "detect": hosts,
            "configure": hosts,
            "verify": hosts,
        },
    )


# --- run directories ---------------------------------------------------------------------


def new_run_dir(runs_dir: Path, now: float | None = None) -> Path:
    """A fresh ``<runs_dir>/<UTC timestamp>`` (``-2``, ``-3`` ... when taken)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    runs_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"no free run directory for {stamp} in {runs_dir}")


def list_runs(runs_dir: Path) -> list[Path]:
    """Run directories with a ``run.json``, oldest first (their names sort by time)."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if (p / "run.json").is_file())


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def latest_run(runs_dir: Path, command: str | None = None) -> Path | None:
    for path in reversed(list_runs(runs_dir)):
        if command is None:
            return path
        try:
            if read_json(path / "run.json").get("command") == command:
                return path
        except (OSError, ValueError):
            continue
    return None


def find_run(runs_dir: Path, name: str | None) -> Path:
    if name is None:
        path = latest_run(runs_dir)
        if path is None:
            raise BadInput(f"no run recorded in {runs_dir}")
        return path
    for candidate in (Path(name), runs_dir / name):
        if (candidate / "run.json").is_file():
            return candidate
    raise BadInput(f"no run {name} in {runs_dir}")


def load_events(run_dir: Path) -> list[dict[str, Any]]:
    """The runner events of a run, from its artifacts, in order."""
    events_dir = run_dir / "artifacts" / ARTIFACT_IDENT / "job_events"
    if not events_dir.is_dir():
        return []
    events = []
    for path in events_dir.glob("*.json"):
        if path.name.endswith("-partial.json"):
            continue
        try:
            events.append(read_json(path))
        except (OSError, ValueError):
            continue
    return sorted(events, key=lambda e: int(e.get("counter") or 0))


def load_records(
    state_dir: Path | None, hosts: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The rollout records of *state_dir* (of *hosts* when given); unreadable ones are
    skipped."""
    from ansible.module_utils.rollout_state import StateError, parse

    if state_dir is None or not state_dir.is_dir():
        return []
    records = []
    for path in sorted(state_dir.glob("*.json")):
        host = path.name[: -len(".json")]
        if path.name.startswith(".") or (hosts is not None and host not in hosts):
            continue
        try:
            records.append(parse(path.read_text(encoding="utf-8"), host))
        except (OSError, StateError):
            continue
    return records


def _state_dir(run: Mapping[str, Any]) -> Path | None:
    value = run.get("rollout_state_dir")
    return Path(value) if isinstance(value, str) and value else None


def make_report(run: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report of a run: its events plus, for deploy, its hosts' rollout records."""
    hosts = [str(h) for h in run.get("hosts") or []]
    records = load_records(_state_dir(run), hosts or None) if run.get("command") == "deploy" else []
    return report_mod.build_report(run, events, records, hosts)


def write_report(run_dir: Path, report: Mapping[str, Any]) -> None:
    (run_dir / "report.json").write_text(report_mod.render_json(report), encoding="utf-8")
    (run_dir / "report.md").write_text(report_mod.render_markdown(report), encoding="utf-8")
    (run_dir / "report.html").write_text(report_mod.render_html(report), encoding="utf-8")


# --- progress output ---------------------------------------------------------------------


class ProgressPrinter:
    """Prints :class:`Progress` lines; on a terminal also keeps a redrawn status bar."""

    def __init__(self, progress: Progress, stream: TextIO, tty: bool) -> None:
        self.progress = progress
        self.stream = stream
        self.tty = tty
        self.lock = threading.Lock()
        self.bar_shown = False

    def _width(self) -> int:
        return max(40, shutil.get_terminal_size((100, 20)).columns - 1)

    def _clear(self) -> None:
        if self.bar_shown:
            self.stream.write("\r\x1b[K")
            self.bar_shown = False

    def _draw(self) -> None:
        if self.tty:
            self.stream.write(self.progress.bar(self._width(), now=time.time()))
            self.bar_shown = True
        self.stream.flush()

    def event(self, event: Mapping[str, Any]) -> None:
        with self.lock:
            lines = self.progress.feed(event)
            if lines:
                self._clear()
                for line in lines:
                    self.stream.write(line + "\n")
            if self.tty:
                self._clear()
            self._draw()

    def tick(self) -> None:
        if not self.tty:
            return
        with self.lock:
            self._clear()
            self._draw()

    def close(self) -> None:
        with self.lock:
            self._clear()
            self.stream.flush()


# --- running -----------------------------------------------------------------------------


@dataclass
class RunResult:
    status: str
    rc: int | None
    canceled: bool
    events: list[dict[str, Any]]


def run_playbook(
    run_dir: Path,
    playbook: Path,
    inventory: Path,
    limit: str | None,
    extravars: Mapping[str, Any],
    check: bool,
    verbosity: int,
    on_event: Callable[[Mapping[str, Any]], None],
    tick: Callable[[], None] = lambda: None,
) -> RunResult:
    """Run *playbook* with ansible-runner in a thread; ctrl-C cancels it (cancel_callback)
    and still returns what happened."""
    import ansible_runner

    events: list[dict[str, Any]] = []
    cancel = threading.Event()

    def handler(event: dict[str, Any]) -> bool:
        events.append(event)
        try:
            on_event(event)
        except Exception as exc:  # progress must never break the run
            print(f"damon-fleet: progress: {exc}", file=sys.stderr)
        return True

    thread, runner = ansible_runner.run_async(
        private_data_dir=str(run_dir),
        artifact_dir=str(run_dir / "artifacts"),
        ident=ARTIFACT_IDENT,
        project_dir=str(REPO_ROOT),
        playbook=str(playbook),
        inventory=str(inventory),
        limit=limit or None,
        extravars=dict(extravars),
        cmdline="--check" if check else None,
        envvars=runner_envvars(),
        settings={"pexpect_timeout": 1},
        verbosity=verbosity or None,
        quiet=True,
        event_handler=handler,
        cancel_callback=cancel.is_set,
    )
    # Poll with sleep, not thread.join(timeout): a KeyboardInterrupt inside join() can
    # leave the thread looking finished while it still runs (CPython issue 90882).
    while True:
        try:
            while thread.is_alive():
                time.sleep(0.25)
                tick()
            break
        except KeyboardInterrupt:
            if not cancel.is_set():
                cancel.set()
                print("\ndamon-fleet: interrupted, stopping ansible...", file=sys.stderr)
    thread.join()
    rc = runner.rc if isinstance(runner.rc, int) else None
    return RunResult(
        status=str(runner.status), rc=rc, canceled=cancel.is_set() or runner.canceled, events=events
    )


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stdout_tail(run_dir: Path, lines: int = 12) -> str:
    """The last non-empty lines ansible printed (colours removed)."""
    path = run_dir / "artifacts" / ARTIFACT_IDENT / "stdout"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def exit_code(report: Mapping[str, Any], result: RunResult) -> tuple[int, list[str]]:
    """The exit code of a finished run and the lines for stderr."""
    if result.canceled:
        return EXIT_INTERRUPTED, []
    summary = report.get("summary") or {}
    rows = {r["host"]: r for r in report.get("hosts") or []}
    failed = list(summary.get("failed") or []) + list(summary.get("unreachable") or [])
    lines = []
    for host in failed:
        row = rows.get(host) or {}
        failure = row.get("failure") or {}
        reason = failure.get("reason") or row.get("error") or "failed"
        where = failure.get("stage") or "?"
        if failure.get("phase"):
            where += f"/{failure['phase']}"
        lines.append(f"  {host}: {row.get('outcome')} in {where}: {shorten(str(reason), 400)}")
    if result.rc not in (0, None) or failed:
        for host in summary.get("not_reached") or []:
            lines.append(f"  {host}: not reached (the run stopped before it)")
    if failed:
        return EXIT_FAILED, ["damon-fleet: failed hosts:", *lines]
    if report.get("tasks_started", 0) == 0 and result.rc != 0:
        return EXIT_BAD_INPUT, ["damon-fleet: nothing ran; ansible said:"]
    if result.rc != 0:
        return EXIT_FAILED, [f"damon-fleet: ansible-playbook exited {result.rc}", *lines]
    return EXIT_OK, []


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The run's inputs (run.json without the outcome); BadInput when unusable."""
    cwd = Path.cwd()
    runs_dir = Path(args.runs_dir)
    extra = parse_extra_vars(args.extra_vars, cwd)
    resumed_from = None
    if getattr(args, "resume", False):
        previous = latest_run(runs_dir, "deploy")
        if previous is None:
            raise BadInput(f"--resume: no previous deploy run in {runs_dir}")
        if args.inventory is not None or args.limit is not None:
            raise BadInput(
                "--resume reuses the inventory and limit of the previous run; "
                "leave out -i and --limit"
            )
        try:
            old = read_json(previous / "run.json")
        except (OSError, ValueError) as exc:
            raise BadInput(f"--resume: cannot read {previous / 'run.json'}: {exc}") from exc
        old_vars = dict(old.get("extravars") or {})
        state = extra.pop("rollout_state_dir", None)
        if state is not None and str(Path(state).resolve()) != old.get("rollout_state_dir"):
            raise BadInput(
                f"--resume continues with rollout_state_dir {old.get('rollout_state_dir')}; "
                "do not pass another"
            )
        extravars = {**old_vars, **extra}
        inventory = Path(str(old.get("inventory")))
        limit = old.get("limit")
        check = bool(old.get("check")) or args.check
        resumed_from = previous.name
    else:
        inventory = Path(args.inventory) if args.inventory is not None else DEFAULT_INVENTORY
        inventory = inventory if inventory.is_absolute() else cwd / inventory
        limit = args.limit
        check = args.check
        extravars = extra
    state_dir = Path(str(extravars.get("rollout_state_dir") or DEFAULT_STATE_DIR)).expanduser()
    state_dir = state_dir if state_dir.is_absolute() else cwd / state_dir
    extravars["rollout_state_dir"] = str(state_dir.resolve())
    info = read_inventory(
        inventory, limit, str(extravars.get("rollout_hosts") or DEFAULT_ROLLOUT_HOSTS)
    )
    return {
        "format": RUN_FORMAT,
        "command": args.command,
        "argv": list(sys.argv[1:]),
        "playbook": str(PLAYBOOKS[args.command]),
        "inventory": str(inventory.resolve()),
        "limit": limit,
        "check": check,
        "extravars": extravars,
        "rollout_state_dir": extravars["rollout_state_dir"],
        "resumed_from": resumed_from,
        "hosts": info.hosts,
        "stage_hosts": info.stage_hosts,
    }


def cmd_run(args: argparse.Namespace) -> int:
    """deploy / detect / configure / verify."""
    name = f"damon-fleet {args.command}"
    try:
        run = _prepare(args)
    except BadInput as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if run["resumed_from"]:
        print(
            f"{name}: resuming run {run['resumed_from']} (inventory {run['inventory']}, "
            f"limit {run['limit'] or '-'}, records {run['rollout_state_dir']}); hosts done "
            "with this build are skipped",
            file=sys.stderr,
        )
    runs_dir = Path(args.runs_dir)
    run_dir = new_run_dir(runs_dir)
    run["id"] = run_dir.name
    run["started"] = _now_iso()
    run["finished"] = None
    run["status"] = "running"
    write_json(run_dir / "run.json", run)

    stages = COMMAND_STAGES[args.command]
    progress = Progress(
        stages=stages, stage_hosts={s: run["stage_hosts"].get(s, []) for s in stages}
    )
    tty = sys.stderr.isatty() and not args.no_progress_bar
    printer = ProgressPrinter(progress, sys.stderr, tty)
    print(
        f"{name}: {len(run['hosts'])} host(s) ({', '.join(run['hosts'])}); run {run_dir}",
        file=sys.stderr,
    )
    try:
        result = run_playbook(
            run_dir,
            PLAYBOOKS[args.command],
            Path(run["inventory"]),
            run["limit"],
            run["extravars"],
            run["check"],
            args.verbose,
            printer.event,
            printer.tick,
        )
    finally:
        printer.close()
    run["finished"] = _now_iso()
    run["status"] = "canceled" if result.canceled else result.status
    run["ansible_rc"] = result.rc
    report = make_report(run, result.events)
    code, lines = exit_code(report, result)
    run["exit_code"] = code
    report["run"]["exit_code"] = code
    write_json(run_dir / "run.json", run)
    write_report(run_dir, report)
    sys.stdout.write(report_mod.render_table(report))
    print(f"report: {run_dir / 'report.md'} (json, html beside it)", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    if code == EXIT_BAD_INPUT:
        print(_stdout_tail(run_dir), file=sys.stderr)
    if code == EXIT_INTERRUPTED:
        hint = (
            "damon-fleet deploy --resume"
            if args.command == "deploy"
            else f"damon-fleet {args.command} (again)"
        )
        print(
            f"{name}: interrupted; the hosts' state is in the report above. Continue with: {hint}",
            file=sys.stderr,
        )
    return code


# --- report and status -------------------------------------------------------------------


def render(report: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return report_mod.render_json(report)
    if fmt == "markdown":
        return report_mod.render_markdown(report)
    if fmt == "html":
        return report_mod.render_html(report)
    return report_mod.render_table(report)


def load_report(run_dir: Path) -> dict[str, Any]:
    """A run's report.json, or the report rebuilt from its artifacts when missing."""
    try:
        return read_json(run_dir / "report.json")
    except (OSError, ValueError):
        pass
    run = read_json(run_dir / "run.json")
    run.setdefault("id", run_dir.name)
    return make_report(run, load_events(run_dir))


def cmd_report(args: argparse.Namespace) -> int:
    try:
        run_dir = find_run(Path(args.runs_dir), args.run)
        report = load_report(run_dir)
    except BadInput as exc:
        print(f"damon-fleet report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, ValueError) as exc:
        print(f"damon-fleet report: cannot read the run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(render(report, args.format))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    runs_dir = Path(args.runs_dir)
    reports = []
    state_dir: Path | None = DEFAULT_STATE_DIR
    for run_dir in list_runs(runs_dir):
        try:
            reports.append(load_report(run_dir))
            state_dir = _state_dir(read_json(run_dir / "run.json")) or state_dir
        except (OSError, ValueError):
            continue
    records = load_records(state_dir)
    rows = report_mod.fleet_status(reports, records)
    if not rows and args.format != "json":
        print(f"no run recorded in {runs_dir} and no rollout record in {state_dir}")
        return EXIT_OK
    sys.stdout.write(report_mod.render_status(rows, args.format))
    return EXIT_OK


# --- parsers -----------------------------------------------------------------------------


def _runs_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        default=os.environ.get("DAMON_FLEET_RUNS_DIR", str(DEFAULT_RUNS_DIR)),
        help="where runs are kept (default: %(default)s)",
    )


def add_run_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``deploy``, ``detect``, ``configure``, ``verify``, ``report`` and ``status``."""
    helps = {
        "deploy": "build, roll out (batches, trial boot, gate), detect, configure, verify",
        "detect": "detect each host's perf event for DAMON (playbooks/detect.yml)",
        "configure": "configure DAMON where inventory asks for it (playbooks/configure.yml)",
        "verify": "verify DAMON runs as inventory asks, changing nothing (playbooks/verify.yml)",
    }
    for command, text in helps.items():
        parser = subparsers.add_parser(
            command,
            help=text,
            description=(
                f"Run {PLAYBOOKS[command].relative_to(REPO_ROOT)} through ansible-runner with "
                "live progress, then write the per-host report into the run's directory. "
                "Exit 0 when every host is done, 1 when a host failed, 2 on bad input "
                "(nothing ran), 130 when interrupted."
            ),
        )
        parser.add_argument(
            "-i",
            "--inventory",
            default=None,
            help=f"inventory file (default: {DEFAULT_INVENTORY.relative_to(REPO_ROOT)})",
        )
        parser.add_argument("-l", "--limit", default=None, help="host pattern, as ansible's")
        parser.add_argument("--check", action="store_true", help="check mode (ansible --check)")
        parser.add_argument(
            "-e",
            "--extra-vars",
            dest="extra_vars",
            action="append",
            default=[],
            metavar="VARS",
            help="KEY=VALUE (VALUE as JSON when it parses), a JSON/YAML mapping or @FILE",
        )
        parser.add_argument("-v", "--verbose", action="count", default=0)
        parser.add_argument(
            "--no-progress-bar",
            action="store_true",
            help="plain progress lines even on a terminal",
        )
        _runs_dir_option(parser)
        if command == "deploy":
            parser.add_argument(
                "--resume",
                action="store_true",
                help=(
                    "continue the last deploy run: same inventory, limit, extra vars and "
                    "rollout records; hosts done with this build are skipped"
                ),
            )
        parser.set_defaults(func=cmd_run)

    report = subparsers.add_parser("report", help="show the report of a run (default: the latest)")
    report.add_argument("run", nargs="?", default=None, metavar="RUN", help="run id or directory")
    report.add_argument("--format", choices=("table", "json", "markdown", "html"), default="table")
    _runs_dir_option(report)
    report.set_defaults(func=cmd_report)

    status = subparsers.add_parser(
        "status", help="the fleet as last seen by the runs: kernel, DAMON, perf_effective"
    )
    status.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    _runs_dir_option(status)
    status.set_defaults(func=cmd_status)
