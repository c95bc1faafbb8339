"""Lab VMs for end-to-end tests: a DAMON-enabled kernel, a Debian disk image and QEMU.

Three stages, the first two cached by a hash of their inputs so a warm run only boots:

* :func:`build_kernel` -- the lab kernel's ``bzImage``: Debian's ``linux-source-6.12``
  with ``tinyconfig`` + ``kvm_guest.config`` + ``kernel-patches/lab-kernel.config``, built
  as Debian packages by the kernel_build role (``playbooks/lab-kernel.yml``).
* :func:`build_image` -- the lab fleet's disk image, built by the ``lab_image`` module
  in its two stages (``rootfs``: debootstrap of Debian bookworm; ``disk``: that root
  filesystem with the lab kernel's packages installed, on a GRUB-booted MBR disk), in
  the cache folder and under the keys of ``damon-fleet lab up``.
* :class:`LabVm` -- boots the kernel directly (``-kernel``/``-append``, ``root=`` the
  disk's :data:`ROOT_DEVICE`) on a private qcow2 overlay of the disk under
  ``qemu-system-x86_64`` (TCG by default, KVM opt-in via ``DAMON_FLEET_ACCEL=kvm``) with
  an SSH port forward, and writes an Ansible inventory for it.

The test tiers' harness (the VM tier and the benches): it drives the product's own code
(the kernel_build role through ``playbooks/lab-kernel.yml``, the ``lab_image`` module
with the lab_fleet role's inputs, the kconfig parser of ``kernel_series``, the ports and
QEMU argv of ``lab_qemu``) and keeps only what the direct-boot VM needs besides. Cache
root: the controller's, ``damon_fleet_cache_root`` of ``playbooks/vars/contracts.yml`` as
Ansible resolves it.

Command line (for CI stages)::

    python tests/labvm.py kernel
    python tests/labvm.py image
    python tests/labvm.py boot-smoke
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))
# The package makes the collection (damon_fleet.fleet) importable.
importlib.import_module("damon_fleet")

from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import (  # noqa: E402
    dropped_options,
    parse_kconfig,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.image import (  # noqa: E402
    ROOT_DEVICE,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import (  # noqa: E402
    SSH_OPTIONS,
    free_port,
    machine_argv,
    port_in_use,
)

from damon_fleet._paths import REPO_ROOT, runner_envvars  # noqa: E402
from damon_fleet.targets import controller_value  # noqa: E402

__all__ = ["LabVm", "LabVmError", "build_image", "build_kernel", "parse_kconfig", "ssh_key_path"]

#: Options that must be ``=y`` in the lab kernel: the lab_fleet role's, which builds it.
REQUIRED_OPTIONS: tuple[str, ...] = tuple(
    yaml.safe_load((ROOT / "roles" / "lab_fleet" / "defaults" / "main.yml").read_text())[
        "lab_fleet_kernel_required_options"
    ]
)

#: The direct boot's kernel arguments: the root file system is the disk's partition, as
#: its fstab (the lab_image module's) and GRUB's entries name it.
KERNEL_CMDLINE = f"root={ROOT_DEVICE} rw console=ttyS0 net.ifnames=0 quiet loglevel=4"

#: Build results of this process, by cache root: the lab kernel (``kernel_build_result``
#: of ``playbooks/lab-kernel.yml``) and the image (both ``lab_image`` stages' results).
_KERNELS: dict[Path, dict[str, Any]] = {}
_IMAGES: dict[Path, dict[str, Any]] = {}


class LabVmError(RuntimeError):
    """A lab stage (kernel build, image build, boot, ssh) failed."""


# --------------------------------------------------------------------------- cache


def cache_root(cache_dir: Path | None = None) -> Path:
    """Return the cache root: *cache_dir*, else the controller's cache root as Ansible
    resolves ``damon_fleet_cache_root`` of ``playbooks/vars/contracts.yml``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(controller_value("damon_fleet_cache_root"))


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _run_logged(
    cmd: Sequence[str | Path], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Run *cmd* appending stdout+stderr to *log*; raise with the log tail on failure."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(str(c) for c in cmd)}\n")
        out.flush()
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        raise LabVmError(
            f"command failed ({proc.returncode}): {' '.join(str(c) for c in cmd)}\n"
            f"log: {log}\n--- log tail ---\n{_log_tail(log)}"
        )


# --------------------------------------------------------------------------- kernel


def check_required_options(config_text: str, required: Sequence[str] = REQUIRED_OPTIONS) -> None:
    """Raise :class:`LabVmError` naming every required option that is not ``=y``."""
    dropped = dropped_options(config_text, required)
    if dropped:
        raise LabVmError(
            "kernel .config lost required option(s) after olddefconfig: "
            + ", ".join(f"{d['option']} (is {d['value']})" for d in dropped)
        )


def _lab_kernel(root: Path) -> dict[str, Any]:
    """The kernel_build role's result for the lab kernel in the cache *root* (built when
    missing), once per process and cache root."""
    if root in _KERNELS:
        return _KERNELS[root]
    root.mkdir(parents=True, exist_ok=True)
    log = root / "lab-kernel.log"
    log.write_text("lab kernel (playbooks/lab-kernel.yml)\n")
    with tempfile.TemporaryDirectory(prefix="lab-kernel-") as tmp:
        result_file = Path(tmp) / "result.json"
        _run_logged(
            [
                "ansible-playbook",
                REPO_ROOT / "playbooks" / "lab-kernel.yml",
                "-e",
                f"lab_kernel_result_file={result_file}",
                "-e",
                f"lab_fleet_cache_dir={root}",
            ],
            log,
            cwd=REPO_ROOT,
            env={**os.environ, **runner_envvars()},
        )
        result: dict[str, Any] = json.loads(result_file.read_text())
    _KERNELS[root] = result
    return result


def build_kernel(cache_dir: Path | None = None) -> Path:
    """Return the lab kernel's ``bzImage``, built by the kernel_build role when missing.

    The kernel is the lab image's base kernel (``playbooks/lab-kernel.yml``: role
    lab_fleet, tasks kernel.yml), so the direct-boot VM and the GRUB-booted lab fleet run
    the same build and share one ccache; :func:`build_image` installs its packages in the
    disk.  ``<cache>/kernels/<inputs hash>/`` holds the ``bzImage`` taken from the
    ``linux-image`` package, its ``config`` and ``result.json`` (the role's build result).
    """
    root = cache_root(cache_dir)
    result = _lab_kernel(root)
    log = root / "lab-kernel.log"
    images = [str(p) for p in result["packages"] if Path(p).name.startswith("linux-image-")]
    if len(images) != 1:
        raise LabVmError(f"lab kernel build: expected one linux-image package, got {images}")
    dest = root / "kernels" / str(result["inputs_hash"])
    bzimage = dest / "bzImage"
    if bzimage.is_file() and (dest / "config").is_file():
        return bzimage
    dest.mkdir(parents=True, exist_ok=True)
    release = str(result["kernel_release"])
    with tempfile.TemporaryDirectory(prefix="lab-kernel-", dir=dest) as tmp:
        _run_logged(["dpkg-deb", "-x", images[0], tmp], log)
        for name, target in ((f"vmlinuz-{release}", "bzImage"), (f"config-{release}", "config")):
            source = Path(tmp) / "boot" / name
            if not source.is_file():
                raise LabVmError(f"{images[0]} has no boot/{name}")
            shutil.copy2(source, dest / f"{target}.tmp")
        check_required_options((dest / "config.tmp").read_text())
        (dest / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        os.replace(dest / "config.tmp", dest / "config")
        os.replace(dest / "bzImage.tmp", bzimage)
    return bzimage


# --------------------------------------------------------------------------- image


def image_play(result_file: Path) -> list[dict[str, Any]]:
    """The lab fleet's two image stages as a one-play playbook on localhost.

    The ``lab_image`` module's ``rootfs`` then ``disk`` stage, with the lab_fleet role's
    inputs (its cache folder ``__lab_fleet_images_dir``, ``lab_fleet_mirror``,
    ``lab_fleet_debootstrap_timeout``, ``lab_fleet_disk_size_mb``) taken from the role's
    own defaults and vars, as ``roles/lab_fleet/tasks/up.yml`` runs them: ``damon-fleet
    lab up`` and this harness build and find the same cached stages. The kernel packages
    come as the extra variable ``labvm_kernel_packages``; both stages' results are saved
    as JSON to *result_file*.
    """
    role = ROOT / "roles" / "lab_fleet"
    stage = "damon_fleet.fleet.lab_image"
    return [
        {
            "name": "Lab disk image",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            # The contracts the project's plays load (the role's cache comes from them),
            # then the role's defaults and internals: the play is written outside
            # playbooks/ and runs no role.
            "vars_files": [
                str(ROOT / "playbooks" / "vars" / "contracts.yml"),
                str(role / "defaults" / "main.yml"),
                str(role / "vars" / "main.yml"),
            ],
            "tasks": [
                {
                    "name": "Build the root filesystem (or find it in the cache)",
                    stage: {
                        "stage": "rootfs",
                        "cache_dir": "{{ __lab_fleet_images_dir }}",
                        "mirror": "{{ lab_fleet_mirror }}",
                        "timeout": "{{ lab_fleet_debootstrap_timeout }}",
                    },
                    "register": "labvm_rootfs",
                },
                {
                    "name": "Build the disk image with the lab kernel (or find it in the cache)",
                    stage: {
                        "stage": "disk",
                        "cache_dir": "{{ __lab_fleet_images_dir }}",
                        "kernel_packages": "{{ labvm_kernel_packages }}",
                        "size_mb": "{{ lab_fleet_disk_size_mb }}",
                    },
                    "register": "labvm_disk",
                },
                {
                    "name": "Save both stages' results",
                    "ansible.builtin.copy": {
                        "content": "{{ {'rootfs': labvm_rootfs, 'disk': labvm_disk} | to_json }}",
                        "dest": str(result_file),
                        "mode": "0644",
                    },
                    "changed_when": False,
                },
            ],
        }
    ]


def _lab_image(cache_dir: Path | None = None) -> dict[str, Any]:
    """The ``lab_image`` results of both stages for the lab kernel (built when missing),
    once per process and cache root."""
    root = cache_root(cache_dir)
    if root in _IMAGES:
        return _IMAGES[root]
    packages = [str(p) for p in _lab_kernel(root)["packages"]]
    log = root / "lab-image.log"
    log.write_text("lab disk image (lab_image: rootfs, disk)\n")
    extra: dict[str, Any] = {"lab_fleet_cache_dir": str(root), "labvm_kernel_packages": packages}
    mirror = os.environ.get("DAMON_FLEET_MIRROR", "")
    if mirror:
        extra["lab_fleet_mirror"] = mirror.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="lab-image-") as tmp:
        play, extra_file, result_file = (Path(tmp) / n for n in ("image.yml", "vars.json", "out"))
        play.write_text(yaml.safe_dump(image_play(result_file), sort_keys=False))
        extra_file.write_text(json.dumps(extra))
        _run_logged(
            ["ansible-playbook", play, "-e", f"@{extra_file}"],
            log,
            cwd=REPO_ROOT,
            env={**os.environ, **runner_envvars()},
        )
        result: dict[str, Any] = json.loads(result_file.read_text())
    disk = Path(result["disk"]["disk"])
    key = Path(result["rootfs"]["ssh_key"])
    for path in (disk, key):
        if not path.is_file():
            raise LabVmError(f"lab image: {path} missing after the build (log: {log})")
    _IMAGES[root] = result
    return result


def ssh_key_path(cache_dir: Path | None = None) -> Path:
    """Private key that logs in as root to VMs of the lab image: the ``id_ed25519`` of its
    root filesystem stage (``lab_image``'s ``ssh_key``; the image is built when missing)."""
    return Path(_lab_image(cache_dir)["rootfs"]["ssh_key"])


def build_image(cache_dir: Path | None = None) -> Path:
    """Return the lab fleet's disk image, built by the product when missing.

    The ``lab_image`` module builds (or finds cached) its ``rootfs`` stage
    (``<cache>/lab-images/rootfs-<key>/``: ``root/``, ``id_ed25519``) and its ``disk``
    stage with the packages of :func:`build_kernel`'s lab kernel installed
    (``<cache>/lab-images/disk-<key>/disk.img``: raw, MBR, GRUB, the root file system on
    :data:`ROOT_DEVICE`): the image ``damon-fleet lab up`` boots, under the same keys.
    Building needs root (debootstrap, chroot); ``$DAMON_FLEET_MIRROR`` sets the Debian
    mirror of a cold build (``lab_fleet_mirror``; not part of the keys).
    """
    return Path(_lab_image(cache_dir)["disk"]["disk"])


# --------------------------------------------------------------------------- VM


def _set_pdeathsig() -> None:
    """In the child: get SIGKILL when the parent dies, so QEMU never outlives it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LabVm:
    """One QEMU guest running *kernel* (direct boot) on a private overlay of the lab disk.

    *image* is :func:`build_image`'s raw disk, *ssh_key* the key root's
    ``authorized_keys`` holds in it (:func:`ssh_key_path`).  ``with LabVm(kernel, image,
    ssh_key=key) as vm:`` starts it and waits for SSH; leaving the block powers it off and
    removes its work directory (overlay, logs) unless ``keep_workdir`` is set.
    """

    def __init__(
        self,
        kernel: Path,
        image: Path,
        *,
        ssh_key: Path,
        memory_mb: int = 1024,
        cpus: int = 2,
        accel: str | None = None,
        workdir: Path | None = None,
        keep_workdir: bool = False,
        extra_cmdline: str = "",
    ) -> None:
        self.kernel = Path(kernel)
        self.image = Path(image)
        self.ssh_key = Path(ssh_key)
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.accel = accel or os.environ.get("DAMON_FLEET_ACCEL", "tcg")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="labvm-"))
        self.keep_workdir = keep_workdir
        self.cmdline = f"{KERNEL_CMDLINE} {extra_cmdline}".strip()
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.boot_started = 0.0
        self.boot_seconds: float | None = None

    # -- paths
    @property
    def overlay(self) -> Path:
        return self.workdir / "overlay.qcow2"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.workdir / "qemu.log"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "qemu.pid"

    def console_tail(self, lines: int = 40) -> str:
        return _log_tail(self.console_log, lines)

    # -- lifecycle
    def qemu_command(self) -> list[str]:
        return [
            "qemu-system-x86_64",
            *machine_argv(
                "kvm" if self.accel == "kvm" else "tcg",
                self.memory_mb,
                self.cpus,
                str(self.overlay),
                self.port,
                str(self.console_log),
                str(self.pidfile),
                boot=("-kernel", str(self.kernel), "-append", self.cmdline),
            ),
        ]

    def start(self) -> None:
        """Create the qcow2 overlay of the raw disk and launch QEMU (returns once QEMU
        runs, before SSH is up)."""
        if self.proc is not None:
            raise LabVmError("VM already started")
        for path in (self.kernel, self.image, self.ssh_key):
            if not path.is_file():
                raise LabVmError(f"missing {path}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.overlay.unlink(missing_ok=True)
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                str(self.image.resolve()),
                str(self.overlay),
            ],
            check=True,
            capture_output=True,
        )
        last_error = ""
        for _attempt in range(5):
            self.port = free_port()
            self.console_log.write_text("")
            with self.qemu_log.open("wb") as qlog:
                self.proc = subprocess.Popen(
                    self.qemu_command(),
                    stdin=subprocess.DEVNULL,
                    stdout=qlog,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_set_pdeathsig,
                )
            self.boot_started = time.monotonic()
            time.sleep(0.5)
            if self.proc.poll() is None:
                return
            last_error = self.qemu_log.read_text(errors="replace")
            self.proc = None
            if "hostfwd" not in last_error and "Could not set up host forwarding" not in last_error:
                break
        raise LabVmError(f"qemu failed to start:\n{last_error}")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ssh(self, timeout: float = 300.0) -> float:
        """Wait until ``ssh root@vm true`` works; return seconds since QEMU started."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise LabVmError(
                    f"qemu exited before SSH came up\n--- qemu ---\n"
                    f"{_log_tail(self.qemu_log)}\n--- console ---\n{self.console_tail()}"
                )
            try:
                proc = subprocess.run(
                    self._ssh_argv("true", connect_timeout=5),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=20,
                    check=False,
                )
                if proc.returncode == 0:
                    self.boot_seconds = time.monotonic() - self.boot_started
                    return self.boot_seconds
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise LabVmError(
                    f"no SSH on port {self.port} after {timeout:.0f}s\n"
                    f"--- console ---\n{self.console_tail()}"
                )
            time.sleep(1.0)

    # -- ssh
    @property
    def control_path(self) -> Path:
        """SSH multiplexing socket: one TCP/key exchange per VM instead of per command."""
        path = self.workdir / "ssh.ctl"
        if len(str(path)) > 100:  # sun_path limit
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
            path = Path(tempfile.gettempdir()) / f"labvm-{digest}.ctl"
        return path

    def _ssh_base(self, connect_timeout: int = 10) -> list[str]:
        opts = [
            o if not o.startswith("ConnectTimeout=") else f"ConnectTimeout={connect_timeout}"
            for o in SSH_OPTIONS
        ]
        return [
            *opts,
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.control_path}",
            "-o",
            "ControlPersist=600",
            "-i",
            str(self.ssh_key),
        ]

    def _close_ssh_master(self) -> None:
        if self.port and self.control_path.exists():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    [
                        "ssh",
                        *self._ssh_base(),
                        "-p",
                        str(self.port),
                        "-O",
                        "exit",
                        "root@127.0.0.1",
                    ],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            self.control_path.unlink(missing_ok=True)

    def _ssh_argv(self, cmd: str, connect_timeout: int = 10) -> list[str]:
        return [
            "ssh",
            *self._ssh_base(connect_timeout),
            "-p",
            str(self.port),
            "root@127.0.0.1",
            cmd,
        ]

    def ssh(
        self, cmd: str, check: bool = True, input: str | None = None, timeout: float | None = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run *cmd* (a shell string) as root in the guest; text in, text out.

        With *check*, a non-zero exit raises :class:`subprocess.CalledProcessError`
        carrying the guest's stdout/stderr.
        """
        proc = subprocess.run(
            self._ssh_argv(cmd),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def scp_to(self, local: Path | str, remote: str) -> None:
        """Copy *local* (file or directory) to *remote* in the guest."""
        argv = [
            "scp",
            "-q",
            "-r",
            *self._ssh_base(),
            "-P",
            str(self.port),
            str(local),
            f"root@127.0.0.1:{remote}",
        ]
        proc = subprocess.run(
            argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=300
        )
        if proc.returncode != 0:
            raise LabVmError(f"scp {local} -> {remote} failed: {proc.stderr.strip()}")

    def inventory(self, path: Path | str, host: str = "labvm", group: str = "lab") -> Path:
        """Write an Ansible YAML inventory with this VM as *host* in *group*."""
        import yaml

        ssh_args = " ".join(
            SSH_OPTIONS[i] + " " + SSH_OPTIONS[i + 1] for i in range(0, len(SSH_OPTIONS), 2)
        )
        data = {
            "all": {
                "children": {
                    group: {
                        "hosts": {
                            host: {
                                "ansible_host": "127.0.0.1",
                                "ansible_port": self.port,
                                "ansible_user": "root",
                                "ansible_ssh_private_key_file": str(self.ssh_key),
                                "ansible_python_interpreter": "/usr/bin/python3",
                                "ansible_ssh_common_args": ssh_args,
                            }
                        }
                    }
                }
            }
        }
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(data, sort_keys=False))
        return out

    def stop(self, timeout: float = 60.0) -> None:
        """Power the guest off (ssh poweroff, then kill QEMU); free port and work dir."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    self._ssh_argv("systemctl poweroff --no-block || poweroff", connect_timeout=5),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=15,
                    check=False,
                )
            self._close_ssh_master()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.proc = None
        self._close_ssh_master()
        if self.port:
            deadline = time.monotonic() + 10
            while port_in_use(self.port) and time.monotonic() < deadline:
                time.sleep(0.2)
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LabVm:
        self.start()
        try:
            self.wait_ssh()
        except BaseException:
            self.stop(timeout=5)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def _timed(label: str, timings: dict[str, float]) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[label] = time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/labvm.py", description="Build and boot the damon-fleet lab VM."
    )
    parser.add_argument("stage", choices=("kernel", "image", "boot-smoke"))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument(
        "--accel",
        choices=("tcg", "kvm"),
        default=None,
        help="QEMU accelerator (default $DAMON_FLEET_ACCEL or tcg)",
    )
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    try:
        if args.stage in ("kernel", "boot-smoke"):
            with _timed("kernel", timings):
                kernel = build_kernel(args.cache_dir)
            print(f"kernel: {kernel}")
        if args.stage in ("image", "boot-smoke"):
            with _timed("image", timings):
                image = build_image(args.cache_dir)
            print(f"image: {image}")
            print(f"ssh key: {ssh_key_path(args.cache_dir)}")
        if args.stage == "boot-smoke":
            vm = LabVm(
                kernel,
                image,
                ssh_key=ssh_key_path(args.cache_dir),
                accel=args.accel,
                keep_workdir=args.keep_workdir,
            )
            try:
                with _timed("boot-to-ssh", timings):
                    vm.start()
                    vm.wait_ssh()
                print(f"uname -r: {vm.ssh('uname -r').stdout.strip()}")
                listing = vm.ssh("ls /sys/kernel/mm/damon/admin/kdamonds").stdout.split()
                print(f"kdamonds: {' '.join(listing)}")
            finally:
                with _timed("stop", timings):
                    vm.stop()
            if vm.keep_workdir:
                print(f"workdir: {vm.workdir}")
    except LabVmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for label, seconds in timings.items():
        print(f"time {label}: {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
