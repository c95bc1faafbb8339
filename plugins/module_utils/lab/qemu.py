# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab fleet QEMU machines: command lines, ports, pidfiles and per-VM state.

Everything here is pure (or touches only the local socket table and ``/proc``), so the
``lab_vm`` module, the ``damon-fleet lab`` command and the tests share one definition
of how a lab VM is started and how its state is read back.

A VM's files live in ``<state_dir>/<name>/``: ``disk.qcow2`` (copy-on-write overlay of
the lab disk image), ``qemu.pid``, ``console.log`` (the serial console), ``qemu.log``
and ``vm.json`` (:class:`VmState`).
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

QEMU_BINARY = "qemu-system-x86_64"
ACCELS = ("auto", "kvm", "tcg")
LOCALHOST = "127.0.0.1"
#: TCG's translation-block cache in MiB. QEMU 7.2's default (1 GiB) keeps the translated
#: code of the last boot across a guest reset, and every first write to one of those pages
#: takes the slow path: the next kernel's decompressor sat on one ``rep movs`` for 12 s,
#: and a warm reboot to SSH took 54.6 s against 25.4 s cold. With 256 MiB it took 26.0 s,
#: with no loss in the guest's speed (the same commands 7.6 s against 10.3 s).
TCG_TB_SIZE_MB = 256

#: OpenSSH client options for lab VMs (throw-away host keys on localhost ports).
SSH_OPTIONS: tuple[str, ...] = (
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "IdentitiesOnly=yes",
)

#: What SeaBIOS writes first on its debug port: the machine runs its firmware.
FIRMWARE_MARKER = "SeaBIOS"
#: Console lines a kernel prints once it has initialized everything but the root
#: filesystem: the guest really runs (nested KVM can run the firmware, then hang).
KERNEL_MARKERS: tuple[str, ...] = ("VFS: ", "Kernel panic", "Freeing unused kernel")

STATE_FILE = "vm.json"
PIDFILE = "qemu.pid"
DISK_FILE = "disk.qcow2"
CONSOLE_LOG = "console.log"
QEMU_LOG = "qemu.log"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class LabQemuError(ValueError):
    """An input to the lab VM helpers is invalid."""


def ssh_common_args() -> str:
    """``SSH_OPTIONS`` as one ``ansible_ssh_common_args`` string."""
    return " ".join(f"{SSH_OPTIONS[i]} {SSH_OPTIONS[i + 1]}" for i in range(0, len(SSH_OPTIONS), 2))


def vm_names(count: int, prefix: str = "lab") -> list[str]:
    """``lab1`` .. ``lab<count>``."""
    if count < 0:
        raise LabQemuError(f"VM count must be >= 0, not {count}")
    if not _NAME_RE.match(f"{prefix}1"):
        raise LabQemuError(f"invalid VM name prefix {prefix!r}")
    return [f"{prefix}{i}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class VmPaths:
    """The files of one VM under its directory."""

    directory: str

    @property
    def disk(self) -> str:
        return os.path.join(self.directory, DISK_FILE)

    @property
    def pidfile(self) -> str:
        return os.path.join(self.directory, PIDFILE)

    @property
    def console_log(self) -> str:
        return os.path.join(self.directory, CONSOLE_LOG)

    @property
    def qemu_log(self) -> str:
        return os.path.join(self.directory, QEMU_LOG)

    @property
    def state(self) -> str:
        return os.path.join(self.directory, STATE_FILE)


@dataclass(frozen=True)
class VmSpec:
    """How to start one VM."""

    name: str
    directory: str
    ssh_port: int
    accel: str = "tcg"
    memory_mb: int = 1024
    cpus: int = 2
    extra_args: tuple[str, ...] = ()

    @property
    def paths(self) -> VmPaths:
        return VmPaths(self.directory)


def validate_spec(spec: VmSpec) -> None:
    """Raise :class:`LabQemuError` for a spec QEMU would refuse or misread."""
    if not _NAME_RE.match(spec.name):
        raise LabQemuError(f"invalid VM name {spec.name!r} (lower-case, digits, '-')")
    if spec.accel not in ("kvm", "tcg"):
        raise LabQemuError(f"accel must be kvm or tcg, not {spec.accel!r}")
    if not 0 < spec.ssh_port < 65536:
        raise LabQemuError(f"invalid SSH port {spec.ssh_port}")
    if spec.memory_mb < 256:
        raise LabQemuError(f"memory_mb {spec.memory_mb} is too small (>= 256)")
    if spec.cpus < 1:
        raise LabQemuError(f"cpus must be >= 1, not {spec.cpus}")
    for path in (spec.directory,):
        if "," in path:
            raise LabQemuError(f"QEMU option values cannot contain ',': {path}")


def machine_argv(
    accel: str,
    memory_mb: int,
    cpus: int,
    disk: str,
    ssh_port: int,
    console_log: str,
    pidfile: str,
    boot: Sequence[str] = (),
) -> list[str]:
    """The machine every lab VM is (without the QEMU binary).

    q35 (under TCG with a :data:`TCG_TB_SIZE_MB` code cache), the qcow2 *disk* on virtio,
    user networking with SSH forwarded from 127.0.0.1:*ssh_port*, a virtio RNG, the serial
    console in *console_log*, no display, monitor or VGA, the pid in *pidfile*; ``-cpu
    host`` under KVM. *boot* options (the direct-boot ``-kernel``/``-append`` of the VM
    tier) come before the disk.
    """
    argv = [
        "-machine",
        "q35",
        "-accel",
        f"tcg,tb-size={TCG_TB_SIZE_MB}" if accel == "tcg" else accel,
        "-m",
        str(memory_mb),
        "-smp",
        str(cpus),
        *boot,
        "-drive",
        f"file={disk},if=virtio,format=qcow2,discard=unmap",
        "-netdev",
        f"user,id=net0,hostfwd=tcp:{LOCALHOST}:{ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=net0",
        "-device",
        "virtio-rng-pci",
        "-serial",
        f"file:{console_log}",
        "-display",
        "none",
        "-monitor",
        "none",
        "-vga",
        "none",
        "-pidfile",
        pidfile,
    ]
    if accel == "kvm":
        argv += ["-cpu", "host"]
    return argv


def qemu_argv(spec: VmSpec, qemu: str = QEMU_BINARY, daemonize: bool = True) -> list[str]:
    """The QEMU command line of *spec*: boots the overlay through its own boot loader.

    No ``-kernel`` and no ``-no-reboot``: a guest reboot resets the machine, which comes
    back through GRUB on its own. With *daemonize* QEMU detaches once the machine is set
    up (so it outlives the caller) and its exit status reports set-up errors such as a
    port that is already taken.
    """
    validate_spec(spec)
    paths = spec.paths
    argv = [
        qemu,
        "-name",
        f"damon-fleet-{spec.name},process=damon-fleet-{spec.name}",
        *machine_argv(
            spec.accel,
            spec.memory_mb,
            spec.cpus,
            paths.disk,
            spec.ssh_port,
            paths.console_log,
            paths.pidfile,
        ),
    ]
    if daemonize:
        argv.append("-daemonize")
    argv += list(spec.extra_args)
    return argv


def kvm_probe_argv(output_path: str, kernel: str = "", qemu: str = QEMU_BINARY) -> list[str]:
    """A diskless KVM machine that reports to *output_path* once it runs.

    With *kernel*, the kernel boots with its console in *output_path* until it finds no
    root filesystem (:data:`KERNEL_MARKERS`); without, only the firmware banner on the
    debug port is awaited (:data:`FIRMWARE_MARKER`), which misses guests that hang
    later. Where KVM is present but guests hang, the markers never come; the caller kills
    QEMU after a short timeout and falls back to TCG.
    """
    argv = [
        qemu,
        "-machine",
        "q35",
        "-accel",
        "kvm",
        "-m",
        "256",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ]
    if kernel:
        return [
            *argv,
            "-kernel",
            kernel,
            "-append",
            "console=ttyS0 panic=-1 root=/dev/lab-probe-none loglevel=4",
            "-serial",
            f"file:{output_path}",
        ]
    return [
        *argv,
        "-chardev",
        f"file,id=dbg,path={output_path}",
        "-device",
        "isa-debugcon,iobase=0x402,chardev=dbg",
    ]


def kvm_probe_ok(output: str, kernel: bool = False) -> bool:
    """Whether the probe machine got far enough (see :func:`kvm_probe_argv`)."""
    if kernel:
        return any(marker in output for marker in KERNEL_MARKERS)
    return FIRMWARE_MARKER in output


def choose_accel(requested: str, kvm_usable: bool | None) -> str:
    """``kvm``/``tcg`` as asked; ``auto`` is kvm when the probe ran guests, else tcg."""
    if requested not in ACCELS:
        raise LabQemuError(f"accel must be one of {', '.join(ACCELS)}, not {requested!r}")
    if requested != "auto":
        return requested
    return "kvm" if kvm_usable else "tcg"


# --------------------------------------------------------------------------- ports


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """Whether something listens on (or holds) *port* on *host*."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def free_port(host: str = LOCALHOST, exclude: Iterable[int] = ()) -> int:
    """A TCP port on *host* that is free right now and not in *exclude*."""
    excluded = set(exclude)
    for _attempt in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in excluded:
            return port
    raise LabQemuError("no free TCP port found")


def choose_port(preferred: int, taken: Iterable[int] = (), host: str = LOCALHOST) -> int:
    """*preferred* when it is set, free and not *taken*; else any free port."""
    excluded = set(taken)
    if preferred and preferred not in excluded and not port_in_use(preferred, host):
        return preferred
    return free_port(host, excluded)


# --------------------------------------------------------------------------- processes


def parse_pidfile(text: str) -> int | None:
    """The pid in a QEMU pidfile, or None when it is empty or garbled."""
    text = text.strip()
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def cmdline_is_vm(cmdline: bytes, pidfile: str) -> bool:
    """Whether a ``/proc/<pid>/cmdline`` is the QEMU that writes *pidfile*.

    Guards against a stale pidfile whose pid was reused by another process.
    """
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    if not args or "qemu" not in os.path.basename(args[0]):
        return False
    return any(args[i] == "-pidfile" and args[i + 1] == pidfile for i in range(len(args) - 1))


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def running_pid(pidfile: str, proc_root: str = "/proc") -> int | None:
    """The pid of the VM's QEMU when it runs, else None."""
    text = read_text(pidfile)
    pid = parse_pidfile(text) if text is not None else None
    if pid is None:
        return None
    try:
        with open(os.path.join(proc_root, str(pid), "cmdline"), "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return None
    try:
        with open(os.path.join(proc_root, str(pid), "stat"), encoding="utf-8") as handle:
            stat = handle.read()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        pass
    return pid if cmdline_is_vm(cmdline, pidfile) else None


# --------------------------------------------------------------------------- state


@dataclass
class VmState:
    """What ``vm.json`` records about a VM (written when it is started)."""

    name: str
    ssh_port: int = 0
    pid: int | None = None
    accel: str = ""
    base_image: str = ""
    memory_mb: int = 0
    cpus: int = 0
    argv: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def parse_state(text: str, name: str) -> VmState:
    """Parse ``vm.json``; unknown keys are ignored, garbage gives an empty state."""
    try:
        data = json.loads(text)
    except ValueError:
        return VmState(name=name)
    if not isinstance(data, dict):
        return VmState(name=name)
    known = {k: v for k, v in data.items() if k in VmState.__dataclass_fields__}
    known["name"] = name
    try:
        state = VmState(**known)
    except TypeError:
        return VmState(name=name)
    if not isinstance(state.ssh_port, int):
        state.ssh_port = 0
    return state


def load_state(directory: str, name: str) -> VmState:
    text = read_text(VmPaths(directory).state)
    return parse_state(text, name) if text is not None else VmState(name=name)


def list_vms(state_dir: str) -> list[str]:
    """Names of the VM directories under *state_dir* (those with a ``vm.json``), sorted."""
    try:
        entries = os.listdir(state_dir)
    except OSError:
        return []
    names = [
        e
        for e in entries
        if _NAME_RE.match(e) and os.path.isfile(os.path.join(state_dir, e, STATE_FILE))
    ]
    return sorted(names, key=_natural_key)


def _natural_key(name: str) -> tuple[str, int]:
    match = re.match(r"^(.*?)(\d+)$", name)
    return (match[1], int(match[2])) if match else (name, 0)


def vm_status(state_dir: str, name: str) -> dict[str, Any]:
    """The status of one VM: name, ssh_port, pid (when running), state, accel."""
    directory = os.path.join(state_dir, name)
    state = load_state(directory, name)
    pid = running_pid(VmPaths(directory).pidfile)
    return {
        "name": name,
        "ssh_port": state.ssh_port,
        "pid": pid,
        "state": "running" if pid else "stopped",
        "accel": state.accel,
        "directory": directory,
    }


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table (header + one line per row; None shows as ``-``)."""
    cells = [[str(c).upper() for c in columns]]
    for row in rows:
        cells.append(["-" if row.get(c) in (None, "") else str(row.get(c)) for c in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in cells
    )
