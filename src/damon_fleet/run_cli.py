"""``damon-fleet deploy|detect|configure|verify|report|status``.

The four run commands run a playbook (``deploy.yml``, ``playbooks/detect.yml``,
``playbooks/configure.yml``, ``playbooks/verify.yml``) through ansible-runner's Python API
(``run_async`` with an ``event_handler``), show live progress built from the runner
events (:mod:`damon_fleet.progress`) and write a per-host report (:mod:`damon_fleet.report`)
into the run's directory, ``.damon-fleet/runs/<UTC timestamp>/`` of the checkout::

    run.json       command, inventory, limit, extravars (secrets redacted), redacted,
                   rollout_state_dir, started, finished, status, ansible_rc, exit_code
    artifacts/     ansible-runner's artifacts (job_events/, stdout, rc, status)
    report.json    report.md    report.html

The runs folder and each run's folder are 0700, the files 0600. Values of extra vars whose
name looks secret (password, passwd, pass, token, secret, key, vault) are stored as
``<redacted>``; ``deploy --resume`` then asks for them again with ``-e``.

Exit codes: 0 every host done, 1 some host failed (listed on stderr), 2 bad input (nothing
ran), 128 + N when stopped by signal N: 130 SIGINT (ctrl-C), 143 SIGTERM, 129 SIGHUP (the
records let ``deploy --resume`` continue; see :mod:`damon_fleet.signals`).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import datetime
import io
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

import yaml

from damon_fleet import report as report_mod
from damon_fleet._paths import REPO_ROOT, STATE_ROOT, runner_envvars
from damon_fleet.progress import COMMAND_STAGES, Progress, shorten
from damon_fleet.report_rollback import reboot_lines, reboot_rows
from damon_fleet.signals import StopSignals, signal_name
from damon_fleet.signals import exit_code as signal_exit_code

PLAYBOOKS = {
    "deploy": REPO_ROOT / "deploy.yml",
    "detect": REPO_ROOT / "playbooks" / "detect.yml",
    "configure": REPO_ROOT / "playbooks" / "configure.yml",
    "verify": REPO_ROOT / "playbooks" / "verify.yml",
    "bench": REPO_ROOT / "playbooks" / "benchmark.yml",
    "rollback": REPO_ROOT / "playbooks" / "rollback.yml",
}
DEFAULT_INVENTORY = REPO_ROOT / "inventories" / "lab" / "hosts.yml"
# Under the runtime state root (_paths.STATE_ROOT): .damon-fleet/ of the checkout, or of
# the working directory when damon-fleet runs from an installed wheel (never site-packages).
DEFAULT_RUNS_DIR = STATE_ROOT / "runs"
DEFAULT_STATE_DIR = STATE_ROOT / "state"
RUNS_DIR_ENV = "DAMON_FLEET_RUNS_DIR"
STATE_DIR_ENV = "DAMON_FLEET_STATE_DIR"
ARTIFACT_IDENT = "ansible"
RUN_FORMAT = 1
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
REDACTED = "<redacted>"
# A name is secret when one of its words (split at _ - . and camelCase) is one of
# SECRET_WORDS or contains one of SECRET_PARTS; a name ending in _file/_path/_dir names a
# place, not a secret.
SECRET_WORDS = ("password", "passwd", "pass", "passphrase", "token", "secret", "key", "vault")
SECRET_PARTS = ("password", "passwd", "token", "secret")
NOT_SECRET_LAST = ("file", "path", "dir", "files", "paths", "dirs")
MAX_QUOTE = 300


class BadInput(ValueError):
    """Input that keeps the run from starting; the message says what is wrong."""


def default_state_dir() -> Path:
    """Where rollout records live unless ``-e rollout_state_dir=`` says otherwise:
    ``$DAMON_FLEET_STATE_DIR``, else ``state/`` under ``_paths.STATE_ROOT``."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def default_runs_dir() -> Path:
    """``$DAMON_FLEET_RUNS_DIR``, else ``runs/`` under ``_paths.STATE_ROOT``."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def _one_line(text: object, limit: int = MAX_QUOTE) -> str:
    """*text* on one line, cut to *limit* characters (an error never quotes a whole file)."""
    return shorten(" ".join(str(text).split()), limit)


# --- secrets -----------------------------------------------------------------------------


def is_secret_name(name: object) -> bool:
    """Whether an extra var named *name* holds a secret (see :data:`SECRET_WORDS`)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w]
    if not words or words[-1] in NOT_SECRET_LAST:
        return False
    return any(word in SECRET_WORDS or any(part in word for part in SECRET_PARTS) for word in words)


def redact(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """*value* with the values of secret-looking keys (nested too) replaced by
    :data:`REDACTED`, and the dotted paths of what was replaced."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        paths: list[str] = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if is_secret_name(key):
                out[key] = REDACTED
                paths.append(where)
            else:
                out[key], inner = redact(item, where)
                paths += inner
        return out, paths
    if isinstance(value, list):
        items = []
        paths = []
        for index, item in enumerate(value):
            clean, inner = redact(item, f"{path}[{index}]")
            items.append(clean)
            paths += inner
        return items, paths
    return value, []


def redacted_paths(value: Any, path: str = "") -> list[str]:
    """Where *value* still holds :data:`REDACTED` (a secret not given again)."""
    if isinstance(value, Mapping):
        return [
            p
            for key, item in value.items()
            for p in redacted_paths(item, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in redacted_paths(item, f"{path}[{i}]")]
    return [path] if value == REDACTED else []


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line with the secrets of its ``-e`` values redacted (``@FILE`` stays:
    a file name is no secret)."""
    out: list[str] = []
    take_next = False
    for arg in argv:
        value = None
        if take_next:
            value, prefix = arg, ""
            take_next = False
        elif arg in ("-e", "--extra-vars"):
            take_next = True
        elif arg.startswith("--extra-vars="):
            value, prefix = arg[len("--extra-vars=") :], "--extra-vars="
        elif arg.startswith("-e") and not arg.startswith("--"):
            value, prefix = arg[2:], "-e"
        if value is None or value.strip().startswith("@"):
            out.append(arg)
            continue
        try:
            parsed = parse_extra_vars([value])
        except BadInput:
            out.append(prefix + (REDACTED if is_secret_name(value.split("=")[0]) else value))
            continue
        clean, paths = redact(parsed)
        out.append(prefix + (json.dumps(clean, sort_keys=True) if paths else value))
    return out


# --- private files -----------------------------------------------------------------------


def make_private_dir(path: Path, parents: bool = False) -> None:
    """Create *path* 0700 (an existing one is tightened to 0700)."""
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """Write *text* to *path* 0600, atomically (a temporary file beside it, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def tighten(folder: Path) -> None:
    """Folders under *folder* 0700, files 0600 (ansible-runner makes some 0755/0644)."""
    for root, dirs, files in os.walk(folder):
        for names, mode in ((dirs, 0o700), (files, 0o600)):
            for name in names:
                path = os.path.join(root, name)
                if not os.path.islink(path):  # os.walk does not follow them either
                    with contextlib.suppress(OSError):
                        os.chmod(path, mode)


# --- the controller's folders ------------------------------------------------------------


def check_runs_dir(runs_dir: Path, create: bool) -> None:
    """BadInput unless *runs_dir* is (or, with *create*, can be made) a writable folder."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise BadInput(f"--runs-dir {runs_dir} is not a directory")
    if not create:
        return
    try:
        make_private_dir(runs_dir, parents=True)
    except OSError as exc:
        raise BadInput(
            f"--runs-dir {runs_dir}: cannot create it: {exc.strerror or exc}; "
            "give a writable directory (--runs-dir DIR or DAMON_FLEET_RUNS_DIR)"
        ) from exc
    if not os.access(runs_dir, os.W_OK | os.X_OK):
        raise BadInput(f"--runs-dir {runs_dir} is not writable; give a writable directory")


def _ansible_cfg_value(key: str) -> str | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(REPO_ROOT / "ansible.cfg", encoding="utf-8")
        return parser.get("defaults", key, fallback=None)
    except (configparser.Error, UnicodeDecodeError):
        return None


def ansible_temp_dirs(local_hosts: bool) -> list[tuple[str, Path]]:
    """The controller folders ansible-playbook will create files in, as Ansible resolves
    them with this checkout's ansible.cfg: its local temp (``ANSIBLE_LOCAL_TEMP``, else
    ``local_tmp``, else ``$ANSIBLE_HOME/tmp``, ``~/.ansible/tmp`` by default) and, when a
    targeted host runs on the controller (local connection), the remote temp
    (``ANSIBLE_REMOTE_TEMP``/``ANSIBLE_REMOTE_TMP``, default ``~/.ansible/tmp``)."""
    home = os.environ.get("ANSIBLE_HOME") or _ansible_cfg_value("home") or "~/.ansible"
    local = (
        os.environ.get("ANSIBLE_LOCAL_TEMP")
        or _ansible_cfg_value("local_tmp")
        or f"{home.rstrip('/')}/tmp"
    )
    what = "ANSIBLE_LOCAL_TEMP" if os.environ.get("ANSIBLE_LOCAL_TEMP") else "Ansible's local temp"
    dirs = [(what, Path(os.path.expanduser(local)))]
    if local_hosts:
        remote_env = os.environ.get("ANSIBLE_REMOTE_TEMP") or os.environ.get("ANSIBLE_REMOTE_TMP")
        remote = remote_env or _ansible_cfg_value("remote_tmp") or "~/.ansible/tmp"
        label = "ANSIBLE_REMOTE_TEMP" if remote_env else "Ansible's remote temp (local hosts)"
        dirs.append((label, Path(os.path.expanduser(remote))))
    return dirs


def _writable_problem(path: Path) -> str | None:
    """Why files cannot be created in *path* (made when missing), or None."""
    if not path.is_absolute():
        return None  # relative to the hosts' login folder: nothing to check here
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def check_ansible_temp(local_hosts: bool) -> None:
    """BadInput naming the folder when Ansible could not create its temporary files."""
    for label, path in ansible_temp_dirs(local_hosts):
        problem = _writable_problem(path)
        if problem is not None:
            raise BadInput(
                f"{label} {path}: {problem}; ansible-playbook creates its temporary files "
                "there: set ANSIBLE_LOCAL_TEMP / ANSIBLE_REMOTE_TEMP to a writable folder, "
                f"or fix HOME ({os.environ.get('HOME', 'unset')})"
            )


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
                data = yaml.safe_load(path.read_bytes().decode("utf-8"))
            except OSError as exc:
                raise BadInput(f"-e {raw}: cannot read {path}: {exc.strerror or exc}") from exc
            except UnicodeDecodeError as exc:
                raise BadInput(
                    f"-e {raw}: {path} is not UTF-8 text (byte {exc.start}); "
                    "expected a YAML or JSON mapping"
                ) from exc
            except yaml.YAMLError as exc:
                raise BadInput(f"-e {raw}: {path} is not YAML: {_one_line(exc)}") from exc
            except RecursionError as exc:
                raise BadInput(f"-e {raw}: {path} is nested too deeply") from exc
            if not isinstance(data, dict):
                raise BadInput(f"-e {raw}: {path} does not hold a mapping")
            out.update(data)
        elif text.startswith("{"):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                what = _one_line(repr(raw))
                raise BadInput(f"-e {what}: not a JSON/YAML mapping: {_one_line(exc)}") from exc
            except RecursionError as exc:
                raise BadInput(f"-e {_one_line(repr(raw))}: nested too deeply") from exc
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
    local_hosts: list[str] = field(default_factory=list)


def read_inventory(
    inventory: Path, limit: str | None, extravars: Mapping[str, Any] | None = None
) -> InventoryInfo:
    """Parse *inventory* with Ansible's own InventoryManager and apply *limit*; a source
    Ansible cannot parse, an inventory without hosts or a limit pattern matching no host is
    :class:`BadInput` (the run would do nothing useful). The rollout's hosts are what
    Ansible resolves from playbooks/vars/contracts.yml with *extravars*
    (:func:`damon_fleet.targets.rollout_hosts`), in batch order."""
    from ansible.inventory.manager import InventoryManager, split_host_pattern
    from ansible.parsing.dataloader import DataLoader

    from damon_fleet._paths import register_inventory_plugins
    from damon_fleet.targets import TargetsError, rollout_hosts

    register_inventory_plugins()
    if not inventory.exists():
        raise BadInput(f"inventory {inventory} does not exist")
    if not os.access(inventory, os.R_OK):
        raise BadInput(f"inventory {inventory} is not readable")
    noise = io.StringIO()
    with contextlib.redirect_stderr(noise), contextlib.redirect_stdout(noise):
        loader = DataLoader()
        manager = InventoryManager(loader, sources=[])
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
        try:
            rollout = [h for h in rollout_hosts(manager, loader, extravars or {}) if h in hosts]
        except TargetsError as exc:
            raise BadInput(f"-e rollout_hosts / rollout_canary_group: {exc}") from exc
        local = [
            h.name
            for h in manager.list_hosts("all")
            if h.vars.get("ansible_connection") == "local" or h.name in ("localhost", "127.0.0.1")
        ]
    return InventoryInfo(
        local_hosts=local,
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
    """A fresh ``<runs_dir>/<UTC timestamp>`` (``-2``, ``-3`` ... when taken), 0700 like
    *runs_dir*."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    make_private_dir(runs_dir, parents=True)
    for n in range(1, 1000):
        path = runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir(mode=0o700)
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
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


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
    return sorted(events, key=_counter)


def _counter(event: Mapping[str, Any]) -> int:
    value = event.get("counter")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def load_records(
    state_dir: Path | None, hosts: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """The rollout records of *state_dir* (of *hosts* when given), and (file, problem) for
    each file that is not a usable record (``kernel.rollout_state.scan``: one rule for the CLI and
    the module)."""
    from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import scan

    if state_dir is None:
        return [], []
    records: list[dict[str, Any]]
    bad: list[tuple[Path, str]]
    records, bad = scan(state_dir, hosts)
    return records, bad


def _state_dir(run: Mapping[str, Any]) -> Path | None:
    value = run.get("rollout_state_dir")
    return Path(value) if isinstance(value, str) and value else None


def make_report(run: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report of a run: its events plus, for deploy, its hosts' rollout records."""
    hosts = [str(h) for h in run.get("hosts") or []]
    records: list[dict[str, Any]] = []
    bad: list[tuple[Path, str]] = []
    if run.get("command") in ("deploy", "rollback"):
        records, bad = load_records(_state_dir(run), hosts or None)
    report = report_mod.build_report(run, events, records, hosts)
    reboots = reboot_rows(records)
    if reboots:
        report["reboots"] = reboots
    if bad:
        report["bad_records"] = [{"path": str(path), "problem": text} for path, text in bad]
    return report


def write_report(run_dir: Path, report: Mapping[str, Any]) -> None:
    write_private(run_dir / "report.json", report_mod.render_json(report))
    write_private(run_dir / "report.md", render(report, "markdown"))
    write_private(run_dir / "report.html", report_mod.render_html(report))


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
        with self.lock:
            lines = self.progress.poll(time.time(), plain=not self.tty)
            if lines:
                self._clear()
                for line in lines:
                    self.stream.write(line + "\n")
                self.stream.flush()
            if self.tty:
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
    signum: int | None = None


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
    stop: StopSignals | None = None,
    stopping: str = "damon-fleet: {signal}: stopping ansible (the report follows; "
    "a second signal stops at once)...",
) -> RunResult:
    """Run *playbook* with ansible-runner in a thread and return what happened.

    *stop* (held by the caller) is ansible-runner's ``cancel_callback``: once a signal
    sets it, the runner kills ansible-playbook and the run ends as canceled. A stop asked
    for before the start starts nothing. *stopping* is the line printed when a signal
    arrives during the run (``{signal}``: its name). The extra vars file ansible-runner writes
    (``env/extravars``, which may hold secrets) is removed when the run ends.
    """
    import ansible_runner

    stop = stop if stop is not None else StopSignals()
    events: list[dict[str, Any]] = []
    if stop.is_set():
        return RunResult(status="canceled", rc=None, canceled=True, events=[], signum=stop.signum)

    def handler(event: dict[str, Any]) -> bool:
        events.append(event)
        try:
            on_event(event)
        except Exception as exc:  # progress must never break the run
            print(f"damon-fleet: progress: {exc}", file=sys.stderr)
        return True

    make_private_dir(run_dir / "artifacts")
    try:
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
            cancel_callback=stop.is_set,
        )
        announced = False
        while thread.is_alive():
            time.sleep(0.25)
            if stop.is_set() and not announced:
                announced = True
                name = signal_name(stop.signum or signal.SIGINT)
                print("\n" + stopping.format(signal=name), file=sys.stderr)
            tick()
        thread.join()
    finally:
        with contextlib.suppress(OSError):
            (run_dir / "env" / "extravars").unlink()
        tighten(run_dir)
    rc = runner.rc if isinstance(runner.rc, int) else None
    canceled = stop.is_set() or bool(runner.canceled)
    return RunResult(
        status=str(runner.status),
        rc=rc,
        canceled=canceled,
        events=events,
        signum=(stop.signum or signal.SIGINT) if canceled else None,
    )


def _child_process_groups() -> list[int]:
    """Process groups led by this process's children (ansible-runner starts
    ansible-playbook in a session of its own), other than our own group."""
    me, own = os.getpid(), os.getpgrp()
    groups = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[1] == str(me) and int(fields[2]) != own:
            groups.append(int(fields[2]))
    return sorted(set(groups))


HALF_DONE = {
    "deploy": (
        "a host may be mid-install or mid-reboot (its rollout record in {state} names the "
        "phase it reached), or DAMON half-configured; run: damon-fleet deploy --resume"
    ),
    "configure": "DAMON may be half-configured on a host; run: damon-fleet configure (again)",
    "detect": "detect changes nothing on the hosts; run it again: damon-fleet detect",
    "verify": "verify changes nothing on the hosts; run it again: damon-fleet verify",
    "bench": (
        "a host may be mid-bench: its workload running and DAMON set for an arm; run "
        "damon-fleet bench again (it stops a leftover workload and puts DAMON back)"
    ),
    "rollback": (
        "a host may be mid-rollback (its rollout record in {state} says rolling_back); "
        "run damon-fleet rollback again: hosts rolled back are left alone"
    ),
}


def stop_at_once(command: str, run_dir: Path | None, run: dict[str, Any], signum: int) -> None:
    """The second signal: kill ansible-playbook, mark the run canceled, say what may be
    left half-done, and end the process (exit 128 + *signum*) without a report."""
    code = signal_exit_code(signum)
    for group in _child_process_groups():
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    if run_dir is not None:
        with contextlib.suppress(OSError):
            (run_dir / "env" / "extravars").unlink()
        with contextlib.suppress(OSError, TypeError, ValueError):
            marked = {**run, "status": "canceled", "finished": _now_iso(), "exit_code": code}
            marked["stopped_at_once"] = signal_name(signum)
            write_json(run_dir / "run.json", marked)
    hint = HALF_DONE[command].format(state=run.get("rollout_state_dir") or "?")
    where = f" (run {run_dir})" if run_dir is not None else ""
    message = (
        f"\ndamon-fleet {command}: second signal ({signal_name(signum)}): stopped at once, "
        f"ansible-playbook killed, no report written{where}. {hint}\n"
    )
    with contextlib.suppress(OSError):
        os.write(2, message.encode("utf-8", "replace"))
    os._exit(code)


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
        return signal_exit_code(result.signum or signal.SIGINT), []
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


def _resume_inputs(
    runs_dir: Path, args: argparse.Namespace, extra: dict[str, Any]
) -> tuple[Path, dict[str, Any], str | None, bool, dict[str, Any]]:
    """(previous run dir, extra vars, limit, check, previous run.json) for ``--resume``;
    BadInput naming the file and field when the previous run.json is not usable."""
    previous = latest_run(runs_dir, "deploy")
    if previous is None:
        raise BadInput(f"--resume: no previous deploy run in {runs_dir}")
    if args.inventory is not None or args.limit is not None:
        raise BadInput(
            "--resume reuses the inventory and limit of the previous run; leave out -i and --limit"
        )
    path = previous / "run.json"
    try:
        old = read_json(path)
    except (OSError, ValueError) as exc:
        raise BadInput(f"--resume: cannot read {path}: {_one_line(exc)}") from exc
    old_vars = old.get("extravars")
    if old_vars is None:
        old_vars = {}
    if not isinstance(old_vars, dict):
        raise BadInput(
            f"--resume: {path}: extravars is {type(old_vars).__name__}, expected a mapping; "
            "start a new deploy with -i and -e instead"
        )
    for key, allowed in (
        ("inventory", (str,)),
        ("limit", (str, type(None))),
        ("check", (bool, type(None))),
        ("rollout_state_dir", (str, type(None))),
    ):
        if not isinstance(old.get(key), allowed) or (key == "inventory" and not old[key]):
            raise BadInput(
                f"--resume: {path}: {key} is {_one_line(repr(old.get(key)), 80)}, expected "
                + ("a file name" if key == "inventory" else "a string, true/false or null")
            )
    state = extra.pop("rollout_state_dir", None)
    if state is not None and str(Path(str(state)).resolve()) != old.get("rollout_state_dir"):
        raise BadInput(
            f"--resume continues with rollout_state_dir {old.get('rollout_state_dir')}; "
            "do not pass another"
        )
    extravars = {**old_vars, **extra}
    missing = redacted_paths(extravars)
    if missing:
        raise BadInput(
            f"--resume: the previous run was given {', '.join(missing)}, which damon-fleet "
            "does not store; pass it again with -e (e.g. -e @secrets.yml)"
        )
    return previous, extravars, old.get("limit"), bool(old.get("check")), old


def _prepare(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run.json without the outcome, with secrets redacted; the extra vars to run with);
    BadInput when unusable. Nothing is written."""
    cwd = Path.cwd()
    runs_dir = Path(args.runs_dir)
    check_runs_dir(runs_dir, create=False)
    extra = parse_extra_vars(args.extra_vars, cwd)
    resumed_from = None
    if getattr(args, "resume", False):
        previous, extravars, limit, old_check, old = _resume_inputs(runs_dir, args, extra)
        inventory = Path(str(old["inventory"]))
        check = old_check or args.check
        resumed_from = previous.name
    else:
        inventory = Path(args.inventory) if args.inventory is not None else DEFAULT_INVENTORY
        inventory = inventory if inventory.is_absolute() else cwd / inventory
        limit = args.limit
        check = args.check
        extravars = extra
    state_value = extravars.get("rollout_state_dir") or default_state_dir()
    if not isinstance(state_value, str | Path):
        raise BadInput(f"-e rollout_state_dir: expected a folder name, got {state_value!r}")
    state_dir = Path(state_value).expanduser()
    state_dir = state_dir if state_dir.is_absolute() else cwd / state_dir
    extravars["rollout_state_dir"] = str(state_dir.resolve())
    info = read_inventory(inventory, limit, extravars)
    check_ansible_temp(bool(info.local_hosts))
    check_runs_dir(runs_dir, create=True)
    stored, redacted = redact(extravars)
    run = {
        "format": RUN_FORMAT,
        "command": args.command,
        "argv": redact_argv(sys.argv[1:]),
        "playbook": str(PLAYBOOKS[args.command]),
        "inventory": str(inventory.resolve()),
        "limit": limit,
        "check": check,
        "extravars": stored,
        "redacted": redacted,
        "rollout_state_dir": extravars["rollout_state_dir"],
        "resumed_from": resumed_from,
        "hosts": info.hosts,
        "stage_hosts": info.stage_hosts,
    }
    return run, extravars


def cmd_run(args: argparse.Namespace) -> int:
    """deploy / detect / configure / verify.

    SIGTERM, SIGHUP and SIGINT (ctrl-C) stop the run the same way: ansible-playbook is
    stopped, the records are kept, the report is written, ``run.json`` says ``canceled``
    and the exit code is 128 + the signal's number (143, 129, 130). A second signal stops
    at once. SIGINT and SIGHUP inherited as ignored (a background job, ``nohup``) stay
    ignored; SIGTERM is always honoured.
    """
    name = f"damon-fleet {args.command}"
    try:
        check_ansible_temp(False)  # before anything imports ansible.constants
        run, extravars = _prepare(args)
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
    where: dict[str, Path] = {}
    with StopSignals(
        on_second=lambda signum: stop_at_once(args.command, where.get("run_dir"), run, signum)
    ) as stop:
        try:
            run_dir = new_run_dir(runs_dir)
        except OSError as exc:
            print(f"{name}: --runs-dir {runs_dir}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        where["run_dir"] = run_dir
        run["id"] = run_dir.name
        run["started"] = _now_iso()
        run["finished"] = None
        run["status"] = "running"
        write_json(run_dir / "run.json", run)
        return _run_and_report(args, name, run, extravars, run_dir, stop)


def _run_and_report(
    args: argparse.Namespace,
    name: str,
    run: dict[str, Any],
    extravars: dict[str, Any],
    run_dir: Path,
    stop: StopSignals,
) -> int:
    # rollback runs the rollout stage's role (kernel_install) only
    stages = COMMAND_STAGES.get(args.command, ("rollout",))
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
            extravars,
            run["check"],
            args.verbose,
            printer.event,
            printer.tick,
            stop=stop,
        )
    finally:
        printer.close()
    run["finished"] = _now_iso()
    run["status"] = "canceled" if result.canceled else result.status
    run["ansible_rc"] = result.rc
    if result.canceled:
        run["signal"] = signal_name(result.signum or signal.SIGINT)
    report = make_report(run, result.events)
    code, lines = exit_code(report, result)
    run["exit_code"] = code
    report["run"]["exit_code"] = code
    write_json(run_dir / "run.json", run)
    write_report(run_dir, report)
    sys.stdout.write(render(report, "table"))
    print(f"report: {run_dir / 'report.md'} (json, html beside it)", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    if code == EXIT_BAD_INPUT:
        print(_stdout_tail(run_dir), file=sys.stderr)
    if result.canceled:
        hint = (
            "damon-fleet deploy --resume"
            if args.command == "deploy"
            else f"damon-fleet {args.command} (again)"
        )
        print(
            f"{name}: interrupted ({run['signal']}); the hosts' state is in the report "
            f"above. Continue with: {hint}",
            file=sys.stderr,
        )
    return code


# --- report and status -------------------------------------------------------------------


def render(report: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return report_mod.render_json(report)
    reboots = reboot_lines(report)
    if fmt == "markdown":
        text = report_mod.render_markdown(report)
        return text + ("\n" + "".join(f"    {line}\n" for line in reboots) if reboots else "")
    if fmt == "html":
        return report_mod.render_html(report)
    return report_mod.render_table(report) + "".join(f"{line}\n" for line in reboots)


class BadRun(ValueError):
    """A run whose files cannot be shown; the message names the file and the problem."""


RENDER_ERRORS = (TypeError, KeyError, AttributeError, ValueError)


def load_report(run_dir: Path) -> dict[str, Any]:
    """A run's report.json, or the report rebuilt from its run.json and artifacts when
    report.json is missing. BadRun naming the file when either is not usable."""
    path = run_dir / "report.json"
    if path.exists():
        try:
            data: Any = read_json(path)
        except (OSError, ValueError) as exc:
            raise BadRun(f"{path}: {_one_line(exc)}") from exc
        problem = report_mod.report_problem(data)
        if problem is not None:
            raise BadRun(f"{path} is not a damon-fleet report: {problem}")
        return dict(data)
    run = load_run(run_dir)
    run.setdefault("id", run_dir.name)
    try:
        report = make_report(run, load_events(run_dir))
    except RENDER_ERRORS as exc:
        path = run_dir / "run.json"
        raise BadRun(f"{path}: cannot rebuild the report: {_one_line(exc)}") from exc
    return report


def load_run(run_dir: Path) -> dict[str, Any]:
    """A run's run.json; BadRun naming it when it is not a run of damon-fleet."""
    path = run_dir / "run.json"
    try:
        run = read_json(path)
    except (OSError, ValueError) as exc:
        raise BadRun(f"{path}: {_one_line(exc)}") from exc
    if run.get("command") not in PLAYBOOKS:
        return _bad_run(path, f"command is {_one_line(repr(run.get('command')), 60)}")
    hosts = run.get("hosts")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        return _bad_run(path, "hosts is not a list of host names")
    state = run.get("rollout_state_dir")
    if state is not None and not isinstance(state, str):
        return _bad_run(path, "rollout_state_dir is not a folder name")
    return run


def _bad_run(path: Path, problem: str) -> NoReturn:
    raise BadRun(f"{path} is not a damon-fleet run: {problem}")


def cmd_report(args: argparse.Namespace) -> int:
    """Exit 0 with the report shown; 2 when the run is missing or its files are not usable
    (one line naming the file)."""
    run_dir = Path(args.runs_dir)
    try:
        runs_dir = Path(args.runs_dir)
        check_runs_dir(runs_dir, create=False)
        run_dir = find_run(runs_dir, args.run)
        report = load_report(run_dir)
        text = render(report, args.format)
    except (BadInput, BadRun) as exc:
        print(f"damon-fleet report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RENDER_ERRORS as exc:
        print(
            f"damon-fleet report: {run_dir / 'report.json'}: cannot be shown: {_one_line(exc)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    sys.stdout.write(text)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """The fleet as last seen. Runs and rollout records that cannot be read are listed on
    stderr, one line each naming the file; then the exit code is 2 (0 otherwise)."""
    runs_dir = Path(args.runs_dir)
    try:
        check_runs_dir(runs_dir, create=False)
    except BadInput as exc:
        print(f"damon-fleet status: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    reports = []
    problems: list[str] = []
    state_dir: Path = default_state_dir()
    for run_dir in list_runs(runs_dir):
        try:
            run = load_run(run_dir)
            report = load_report(run_dir)
            report_mod.fleet_status([report])
        except BadRun as exc:
            problems.append(str(exc))
            continue
        except RENDER_ERRORS as exc:
            problems.append(f"{run_dir / 'report.json'}: cannot be used: {_one_line(exc)}")
            continue
        reports.append(report)
        state_dir = _state_dir(run) or state_dir
    records, bad = load_records(state_dir)
    problems += [f"{path}: unusable rollout record: {problem}" for path, problem in bad]
    rows = report_mod.fleet_status(reports, records)
    if not rows and args.format != "json":
        print(f"no run recorded in {runs_dir} and no rollout record in {state_dir}")
    else:
        sys.stdout.write(report_mod.render_status(rows, args.format))
    for line in problems:
        print(f"damon-fleet status: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT if problems else EXIT_OK


# --- parsers -----------------------------------------------------------------------------


def _runs_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        default=str(default_runs_dir()),
        help=f"where runs are kept (default: %(default)s; ${RUNS_DIR_ENV} sets it)",
    )


def add_run_options(parser: argparse.ArgumentParser, check: bool = False) -> None:
    """The options every command that runs a playbook takes: ``-i``, ``-l``, ``-e``, ``-v``,
    ``--no-progress-bar``, ``--runs-dir`` (and ``--check`` where check mode makes sense)."""
    parser.add_argument(
        "-i",
        "--inventory",
        default=None,
        help=f"inventory file (default: {DEFAULT_INVENTORY.relative_to(REPO_ROOT)})",
    )
    parser.add_argument("-l", "--limit", default=None, help="host pattern, as ansible's")
    if check:
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
                "(nothing ran), 128+N when stopped by signal N: 130 SIGINT (ctrl-C), "
                "143 SIGTERM, 129 SIGHUP. A signal stops ansible, keeps the records and "
                "writes the report (run.json says canceled); a second one stops at once. "
                "SIGINT and SIGHUP inherited as ignored (background job, nohup) stay "
                "ignored; SIGTERM is always honoured. Extra vars whose name looks secret "
                "(password, token, secret, key, vault) are stored redacted."
            ),
        )
        add_run_options(parser, check=True)
        if command == "deploy":
            parser.add_argument(
                "--resume",
                action="store_true",
                help=(
                    "continue the last deploy run: same inventory, limit, extra vars and "
                    "rollout records; hosts done with this build are skipped. Secret extra "
                    "vars are not stored: give them again with -e (new -e values win)"
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
