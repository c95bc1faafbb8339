"""``damon-fleet lab up|down|status``: the local fleet of QEMU machines.

``up`` and ``down`` run ``playbooks/lab.yml`` (role ``lab_fleet``) through
ansible-runner. They show progress, not Ansible's log: the stages (kernel, image, disk,
boot) from the role's structured events (:mod:`damon_fleet.events`) and the kernel build's
objects with an ETA (:mod:`damon_fleet.build_progress`), as one redrawn bar line on a
terminal, else as plain lines. Ansible's full output goes to the run's directory
(``.damon-fleet/runs/<UTC timestamp>/artifacts/ansible/stdout``), named on failure;
``-v`` streams it instead, as before. ``status`` reads the state directory the role keeps
(one folder per VM with ``vm.json`` and ``qemu.pid``) and asks each running VM for
``uname -r``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import (
    SSH_OPTIONS,
    format_table,
    list_vms,
    vm_status,
)

from damon_fleet import run_cli
from damon_fleet._paths import CONTENT_ROOT, LAB_STATE_DIR, runner_envvars
from damon_fleet.progress import COMMAND_STAGES, Progress
from damon_fleet.signals import STOP_SIGNALS, StopSignals, signal_name
from damon_fleet.signals import exit_code as signal_exit_code

PLAYBOOK = CONTENT_ROOT / "playbooks" / "lab.yml"
# The default: $DAMON_FLEET_LAB_STATE, else .damon-fleet/lab (damon_fleet._paths). The
# role writes the fleet's inventory there (hosts.yml), which the default inventory
# (inventories/lab/hosts.yml, inventory plugin lab_fleet) reads: no tracked file changes.
DEFAULT_STATE_DIR = LAB_STATE_DIR
PROFILES_INDEX = CONTENT_ROOT / "roles" / "lab_profile" / "files" / "profiles" / "index.yml"
HOST_NAME = re.compile(r"[a-z][a-z0-9-]*")
STATUS_COLUMNS = ("name", "ssh_port", "pid", "state", "accel", "kernel", "profile")
SSH_TIMEOUT = 10.0
EXIT_BAD_INPUT = 2
STOPPED_CODES = frozenset(signal_exit_code(s) for s in STOP_SIGNALS)


def _stop_at_once(signum: int) -> None:
    os.write(
        2,
        f"\ndamon-fleet lab: second signal ({signal_name(signum)}): stopped at once; "
        "a VM may be half-started: run damon-fleet lab status\n".encode(),
    )
    os._exit(signal_exit_code(signum))


def run_playbook(extravars: dict[str, Any], verbosity: int = 0) -> int:
    """Run ``playbooks/lab.yml`` with *extravars*; return its exit status.

    SIGTERM, SIGHUP and SIGINT stop it as they stop a run (:mod:`damon_fleet.signals`):
    ansible-runner's cancel stops ansible-playbook and the exit status is 128 + N.
    """
    import ansible_runner

    with (
        StopSignals(on_second=_stop_at_once) as stop,
        tempfile.TemporaryDirectory(prefix="damon-fleet-lab-") as private,
    ):
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(CONTENT_ROOT),
            playbook=str(PLAYBOOK),
            extravars=extravars,
            envvars=runner_envvars(),
            verbosity=verbosity or None,
            quiet=False,
            cancel_callback=stop.is_set,
        )
        rc = runner.rc
    if stop.is_set() and stop.signum is not None:
        print(f"damon-fleet lab: {signal_name(stop.signum)}: ansible stopped", file=sys.stderr)
        return signal_exit_code(stop.signum)
    return int(rc) if isinstance(rc, int) else 1


def ansible_log(run_dir: Path) -> Path:
    """Where a run keeps Ansible's full output (ansible-runner's ``stdout``)."""
    return run_dir / "artifacts" / run_cli.ARTIFACT_IDENT / "stdout"


def run_with_progress(
    command: str,
    extravars: dict[str, Any],
    runs_dir: Path,
    tty: bool,
    stream: Any = None,
) -> tuple[int, Path | None]:
    """Run ``playbooks/lab.yml`` in a new run directory of *runs_dir*, showing progress
    on *stream* (stderr); return (exit status, run directory)."""
    name = f"damon-fleet lab {command}"
    stream = stream if stream is not None else sys.stderr
    try:
        run_dir = run_cli.new_run_dir(runs_dir)
    except OSError as exc:
        print(f"{name}: runs directory {runs_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT, None
    progress = Progress(stages=COMMAND_STAGES["lab up"] if command == "up" else ())
    printer = run_cli.ProgressPrinter(progress, stream, tty)
    print(f"{name}: run {run_dir}; ansible's log: {ansible_log(run_dir)}", file=stream)
    with StopSignals(on_second=_stop_at_once) as stop:
        try:
            result = run_cli.run_playbook(
                run_dir,
                PLAYBOOK,
                run_cli.DEFAULT_INVENTORY,
                None,
                extravars,
                False,
                0,
                printer.event,
                printer.tick,
                stop=stop,
                stopping=f"{name}: {{signal}}: stopping ansible (a second signal stops at once)...",
            )
        finally:
            printer.close()
    if result.canceled:
        signum = result.signum or stop.signum
        if signum is not None:
            print(f"damon-fleet lab: {signal_name(signum)}: ansible stopped", file=sys.stderr)
            return signal_exit_code(signum), run_dir
    return (result.rc if result.rc is not None else 1), run_dir


def _run(command: str, args: argparse.Namespace, extravars: dict[str, Any]) -> int:
    """Run the lab playbook for *command* (up, down) and print how it ended."""
    started = time.monotonic()
    if args.verbose:
        rc, run_dir = run_playbook(extravars, args.verbose), None
    else:
        try:
            run_cli.check_runs_dir(Path(args.runs_dir), create=True)
        except run_cli.BadInput as exc:
            print(f"damon-fleet lab {command}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        tty = sys.stderr.isatty() and not args.no_progress_bar
        rc, run_dir = run_with_progress(command, extravars, Path(args.runs_dir), tty)
    outcome = _outcome(rc)
    print(f"damon-fleet lab {command}: {outcome} in {time.monotonic() - started:.0f}s")
    if rc != 0 and run_dir is not None:
        print(
            f"damon-fleet lab {command}: {outcome}; Ansible's full log: {ansible_log(run_dir)}",
            file=sys.stderr,
        )
    return rc


def _outcome(rc: int) -> str:
    if rc == 0:
        return "done"
    if rc in STOPPED_CODES:
        return "stopped"
    return "failed"


def _vm_count(text: str) -> int:
    """``--count``: a whole number of VMs, 0 or more (0 stops them all)."""
    try:
        count = int(text, 10)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of VMs (0 or more), got {text!r}"
        )
    return count


def _common_vars(args: argparse.Namespace) -> dict[str, Any]:
    state_dir = Path(args.state_dir).resolve()
    inventory = Path(args.inventory).resolve() if args.inventory else None
    return {
        "lab_fleet_state_dir": str(state_dir),
        # Unset: the role's default, <state dir>/hosts.yml (what the inventory plugin reads).
        **({"lab_fleet_inventory_path": str(inventory)} if inventory else {}),
    }


def _parse_extra(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (VALUE parsed as JSON when it is JSON, else a string)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def known_profiles(index: Path = PROFILES_INDEX) -> dict[str, str]:
    """``{name: the machine it plays}`` of the lab profiles (roles/lab_profile)."""
    try:
        data = yaml.safe_load(index.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in profiles.items()} if isinstance(profiles, dict) else {}


def profile_vars(
    by_position: str | None, by_host: Sequence[str], known: Sequence[str]
) -> dict[str, Any]:
    """``--profiles A,B`` and ``--profile HOST=NAME`` as lab_fleet inputs.

    Raises ValueError (one line naming the option and what is accepted) on an unknown
    profile or a malformed value.
    """
    accepted = ", ".join(sorted(known))
    out: dict[str, Any] = {}
    if by_position is not None:
        names = [name.strip() for name in by_position.split(",")]
        if not all(names):
            raise ValueError(
                f"--profiles {by_position!r}: expected profile names separated by commas "
                f"(known: {accepted})"
            )
        for name in names:
            if name not in known:
                raise ValueError(
                    f"--profiles: unknown profile {name!r}; known profiles: {accepted}"
                )
        out["lab_fleet_profiles"] = names
    by_name: dict[str, str] = {}
    for pair in by_host:
        host, sep, name = pair.partition("=")
        if not sep or not HOST_NAME.fullmatch(host):
            raise ValueError(
                f"--profile {pair!r}: expected HOST=PROFILE, e.g. lab1=icelake-sp "
                f"(known profiles: {accepted})"
            )
        if name not in known:
            raise ValueError(
                f"--profile {pair!r}: unknown profile {name!r}; known profiles: {accepted}"
            )
        by_name[host] = name
    if by_name:
        out["lab_fleet_host_profiles"] = by_name
    return out


def cmd_up(args: argparse.Namespace) -> int:
    try:
        extra = _parse_extra(args.extra_vars)
        profiles = profile_vars(args.profiles, args.profile, list(known_profiles()))
    except ValueError as exc:
        print(f"damon-fleet lab up: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    extravars: dict[str, Any] = {
        **_common_vars(args),
        "lab_fleet_state": "present",
        "lab_fleet_count": args.count,
        "lab_fleet_accel": args.accel,
    }
    if args.memory is not None:
        extravars["lab_fleet_memory_mb"] = args.memory
    if args.cpus is not None:
        extravars["lab_fleet_cpus"] = args.cpus
    if args.kernel_package:
        extravars["lab_fleet_kernel_packages"] = [
            str(Path(p).resolve()) for p in args.kernel_package
        ]
    extravars.update(profiles)
    extravars.update(extra)
    rc = _run("up", args, extravars)
    if rc == 0:
        print_status(Path(args.state_dir), json_output=False)
    return rc


def cmd_down(args: argparse.Namespace) -> int:
    extravars: dict[str, Any] = {
        **_common_vars(args),
        "lab_fleet_state": "absent",
        "lab_fleet_remove_disks": not args.keep_disks,
    }
    return _run("down", args, extravars)


def _fleet_record(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / "fleet.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def guest_kernel(port: int, key: str, timeout: float = SSH_TIMEOUT) -> str | None:
    """``uname -r`` of the VM on *port*, or None when it does not answer in time."""
    if not port or not key:
        return None
    argv = [
        "ssh",
        *SSH_OPTIONS,
        "-o",
        f"ConnectTimeout={max(1, int(timeout / 2))}",
        "-i",
        key,
        "-p",
        str(port),
        "root@127.0.0.1",
        "uname -r",
    ]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def fleet_status(state_dir: Path, ssh: bool = True) -> list[dict[str, Any]]:
    """One row per VM of *state_dir*: name, ssh_port, pid, state, accel, kernel, and the
    lab profile it plays (from ``fleet.json``, None when not recorded)."""
    record = _fleet_record(state_dir)
    key = str(record.get("ssh_key") or "")
    vms = record.get("vms")
    if not isinstance(vms, list):
        vms = []
    profiles = {
        vm.get("name"): vm.get("profile")
        for vm in vms
        if isinstance(vm, dict) and isinstance(vm.get("profile"), str)
    }
    rows = [vm_status(str(state_dir), name) for name in list_vms(str(state_dir))]
    for row in rows:
        row["profile"] = profiles.get(row["name"])
    running = [row for row in rows if row["state"] == "running"]
    if ssh and running:
        with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
            kernels = pool.map(lambda row: guest_kernel(row["ssh_port"], key), running)
            for row, kernel in zip(running, kernels, strict=True):
                row["kernel"] = kernel
                if kernel is None:
                    row["state"] = "running (no ssh)"
    for row in rows:
        row.setdefault("kernel", None)
    return rows


def print_status(state_dir: Path, json_output: bool) -> int:
    rows = fleet_status(state_dir)
    if json_output:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif rows:
        print(format_table(rows, STATUS_COLUMNS))
    else:
        print(f"no lab VMs in {state_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return print_status(Path(args.state_dir), args.json)


def add_lab_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``lab`` (with ``up``, ``down``, ``status``) to the main CLI."""
    lab = subparsers.add_parser("lab", help="the local fleet of QEMU machines")
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="SUBCOMMAND")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state-dir",
            default=os.environ.get("DAMON_FLEET_LAB_STATE", str(DEFAULT_STATE_DIR)),
            help="folder with one folder per VM (default: %(default)s)",
        )
        parser.add_argument(
            "--inventory",
            default=None,
            help=(
                "YAML inventory file written for the fleet (default: STATE_DIR/hosts.yml, "
                "which the default inventory inventories/lab/hosts.yml reads)"
            ),
        )
        parser.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="stream Ansible's output instead of the progress display (-vv... for more)",
        )

    def progress(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--runs-dir",
            default=str(run_cli.default_runs_dir()),
            help=(
                "where the run's directory (with Ansible's full log) is made "
                f"(default: %(default)s; ${run_cli.RUNS_DIR_ENV} sets it)"
            ),
        )
        parser.add_argument(
            "--no-progress-bar",
            action="store_true",
            help="plain progress lines even on a terminal",
        )

    up = sub.add_parser(
        "up",
        help="build what is missing, start the VMs, wait for SSH, write the inventory",
        description=(
            "Build the lab kernel packages and the Debian disk image when they are not "
            "cached, start COUNT VMs (running ones are left alone), wait until each answers "
            "on SSH and write the inventory. Needs root."
        ),
    )
    common(up)
    progress(up)
    up.add_argument("--count", type=_vm_count, default=2, help="number of VMs (default: 2)")
    up.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    up.add_argument("--memory", type=int, default=None, metavar="MB", help="memory per VM")
    up.add_argument("--cpus", type=int, default=None, help="vCPUs per VM")
    up.add_argument(
        "--kernel-package",
        action="append",
        default=[],
        metavar="DEB",
        help="kernel .deb for the image instead of building the lab kernel (repeatable)",
    )
    up.add_argument(
        "--profiles",
        default=None,
        metavar="NAME[,NAME...]",
        help=(
            "the real machine each VM plays for perf detection, by position (lab1 the "
            "first; a larger fleet starts over); default: the lab_fleet role's "
            "lab_fleet_profiles (README, Lab fleet)"
        ),
    )
    up.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="HOST=NAME",
        help="the machine one VM plays, e.g. lab1=icelake-sp (repeatable; over --profiles)",
    )
    up.add_argument(
        "-e",
        "--extra-var",
        dest="extra_vars",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any lab_fleet_* input (VALUE as JSON when it parses)",
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser(
        "down", help="stop every VM (by pid), free the ports, write an empty inventory"
    )
    common(down)
    progress(down)
    down.add_argument(
        "--keep-disks", action="store_true", help="keep the overlays (the next up resumes them)"
    )
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="list the VMs: port, pid, state, kernel")
    common(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=cmd_status)
