"""The host side of applying DAMON: sysfs, the kernel log and target look-ups.

* :class:`SysfsIO` and :class:`RealSysfs` - ``read``/``write``/``exists``/``isdir`` on
  absolute paths, confined to the DAMON admin root without following links;
* :class:`KernelLog` and :class:`KmsgLog` - the kernel messages from ``/dev/kmsg`` after a
  mark (taken just before the ``on``/``commit`` write) or since a kdamond started, used to
  see the silent perf-event fallback (``perf event create on CPU N failed with E``);
* :class:`HostResolver` - targets on the host: a pidfile, a systemd unit's ``MainPID``
  (``systemctl show``, no shell), a process by name, ``System RAM`` of ``/proc/iomem``;
* :func:`host_max_sample_rate` and :func:`running_release` - read from ``/proc/sys``.

The engine (``damon.engine``) works over the two Protocols, so the real kernel and the
fake sysfs of the unit tests run the very same code.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
import subprocess
from collections.abc import Sequence
from typing import Protocol

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import ADMIN_ROOT


class SysfsIO(Protocol):
    def read(self, path: str) -> str: ...

    def write(self, path: str, value: str) -> None: ...

    def exists(self, path: str) -> bool: ...

    def isdir(self, path: str) -> bool: ...


class KernelLog(Protocol):
    def mark(self) -> None:
        """Remember the end of the log now; OSError if the log cannot be opened."""
        ...

    def messages_since_mark(self) -> list[str]:
        """Kernel messages logged after :meth:`mark` (at most a bounded number); OSError
        if unreadable."""
        ...

    def messages_since(self, since_us: int) -> list[str]:
        """Kernel messages logged at or after ``since_us`` (microseconds since boot, the
        log's own clock; at most a bounded number); OSError if unreadable."""
        ...

    def process_start_us(self, pid: int) -> int | None:
        """When process ``pid`` started, on the same clock; None if unknown."""
        ...


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class RealSysfs:
    """File I/O confined to ``root``; each write is one ``write(2)`` so sysfs sees one value.

    Every path is opened relative to a file descriptor of ``root``, one component
    at a time, with ``O_NOFOLLOW`` (and ``O_DIRECTORY`` for directories): a
    symbolic link anywhere below ``root``, even one swapped in between a check
    and the write, makes the operation fail with ``ELOOP``/``ENOTDIR`` instead of
    reaching a file outside ``root``.  ``root`` itself is opened as given.
    """

    def __init__(self, root: str = ADMIN_ROOT) -> None:
        self.root = posixpath.normpath(root)

    def _parts(self, path: str) -> list[str]:
        norm = posixpath.normpath(path)
        if norm == self.root:
            return []
        prefix = self.root.rstrip("/") + "/"
        if not norm.startswith(prefix):
            raise PermissionError(errno.EACCES, f"outside {self.root}", path)
        parts = norm[len(prefix) :].split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise PermissionError(errno.EACCES, f"outside {self.root}", path)
        return parts

    def _open_dir(self, parts: Sequence[str]) -> int:
        """A descriptor of ``root/parts...``, walking without following links."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            for part in parts:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open(self, path: str, flags: int) -> int:
        parts = self._parts(path)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        dir_fd = self._open_dir(parts[:-1])
        try:
            return os.open(parts[-1], flags | _NOFOLLOW, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def read(self, path: str) -> str:
        fd = self._open(path, os.O_RDONLY)
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode("ascii", "replace").strip()

    def write(self, path: str, value: str) -> None:
        fd = self._open(path, os.O_WRONLY)
        try:
            os.write(fd, value.encode("ascii"))
        finally:
            os.close(fd)

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            parts = self._parts(path)
            if not parts:
                return os.stat(self.root)
            dir_fd = self._open_dir(parts[:-1])
            try:
                return os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            finally:
                os.close(dir_fd)
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return self._lstat(path) is not None

    def isdir(self, path: str) -> bool:
        info = self._lstat(path)
        return info is not None and stat.S_ISDIR(info.st_mode)


class KmsgLog:
    """The kernel log from ``/dev/kmsg`` (records ``prio,seq,usec,flags;text``).

    :meth:`mark` opens the device and seeks to its end (``SEEK_END``), so
    :meth:`messages_since_mark` returns exactly the records the kernel logged after
    the mark, whatever the clocks say.  :meth:`messages_since` (used when nothing was
    written, to look since a kdamond started) compares the record's timestamp.  Both
    read at most :attr:`max_records` records, without blocking.
    """

    max_records = 20000

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        self._fd: int | None = None

    def mark(self) -> None:
        self._close()
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            os.lseek(fd, 0, os.SEEK_END)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def messages_since_mark(self) -> list[str]:
        if self._fd is None:
            raise OSError(errno.EBADF, "no mark taken", self.path)
        try:
            return [text for _, text in self._records(self._fd)]
        finally:
            self._close()

    def messages_since(self, since_us: int) -> list[str]:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            return [text for usec, text in self._records(fd) if usec >= since_us]
        finally:
            os.close(fd)

    def _records(self, fd: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for _ in range(self.max_records):
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.EPIPE:  # overwritten records: skip ahead
                    continue
                raise
            if not record:
                break
            head, _, text = record.decode("utf-8", "replace").partition(";")
            parts = head.split(",")
            if len(parts) >= 3 and parts[2].isdigit():
                out.append((int(parts[2]), text.split("\n", 1)[0]))
        return out

    def process_start_us(self, pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        try:
            ticks = int(fields[19])  # field 22 of stat: starttime
        except (IndexError, ValueError):
            return None
        return ticks * 1000000 // os.sysconf("SC_CLK_TCK")


class HostResolver:
    """Resolves targets on the managed host, without a shell."""

    def __init__(self, proc: str = "/proc", systemctl: str = "systemctl") -> None:
        self.proc = proc
        self.systemctl = systemctl

    def pid_of_pidfile(self, path: str) -> int:
        words = _read_text(path)[:4096].split()
        if not words:
            raise ValueError(f"{path} is empty")
        if not re.fullmatch(r"[0-9]{1,10}", words[0], re.ASCII):
            raise ValueError(f"{path} does not start with a pid (ASCII digits)")
        pid = int(words[0], 10)
        if not os.path.isdir(posixpath.join(self.proc, str(pid))):
            raise ValueError(f"pid {pid} from {path} is not running")
        return pid

    def pid_of_unit(self, unit: str) -> int:
        proc = subprocess.run(
            [self.systemctl, "show", "--property=MainPID", "--value", "--", unit],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=dict(os.environ, LC_ALL="C"),
        )
        if proc.returncode != 0:
            raise ValueError(f"systemctl show failed: {proc.stderr.strip()}")
        text = proc.stdout.strip() or "0"
        if not re.fullmatch(r"[0-9]{1,10}", text, re.ASCII):
            raise ValueError(f"systemctl show gave no MainPID for {unit}")
        pid = int(text, 10)
        if pid <= 0:
            raise ValueError(f"unit {unit} has no main process (not running?)")
        return pid

    def pid_of_process(self, name: str) -> int:
        """The oldest process whose ``comm`` is ``name`` (the parent of forked workers)."""
        found: list[tuple[int, int]] = []
        for entry in os.listdir(self.proc):
            if not entry.isdigit():
                continue
            try:
                with open(
                    posixpath.join(self.proc, entry, "comm"), encoding="utf-8", errors="replace"
                ) as handle:
                    if handle.read().rstrip("\n") != name:
                        continue
                with open(
                    posixpath.join(self.proc, entry, "stat"), encoding="utf-8", errors="replace"
                ) as handle:
                    start = int(handle.read().rpartition(")")[2].split()[19])
            except (OSError, ValueError, IndexError):
                continue
            found.append((start, int(entry)))
        if not found:
            raise LookupError(f"no process named {name!r}")
        return min(found)[1]

    def system_ram(self) -> list[tuple[int, int]]:
        return parse_iomem_system_ram(_read_text(posixpath.join(self.proc, "iomem")))


def _read_text(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


def parse_iomem_system_ram(text: str) -> list[tuple[int, int]]:
    """Top-level ``System RAM`` ranges of /proc/iomem as ``(start, end)``, end exclusive."""
    ranges: list[tuple[int, int]] = []
    for line in text.splitlines():
        if line[:1].isspace():
            continue
        span, _, name = line.partition(" : ")
        if name.strip() != "System RAM":
            continue
        low, _, high = span.strip().partition("-")
        start, end = int(low, 16), int(high, 16) + 1
        ranges.append((start, end))
    if ranges and all(s == 0 and e == 1 for s, e in ranges):
        raise ValueError("/proc/iomem shows zeroed addresses (needs root)")
    if not ranges:
        raise ValueError("no 'System RAM' range in /proc/iomem")
    # Adjacent ranges are one region: a kernel started by kexec shows its boot
    # setup_data split out of System RAM (a 16-byte range between two others), which as
    # a region of its own is smaller than DAMON accepts (EINVAL when turned on).
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def host_max_sample_rate(path: str = "/proc/sys/kernel/perf_event_max_sample_rate") -> int | None:
    try:
        return int(_read_text(path).strip())
    except (OSError, ValueError):
        return None


def running_release(path: str = "/proc/sys/kernel/osrelease") -> str | None:
    """The running kernel's release (``uname -r``); None if unreadable."""
    try:
        return _read_text(path).strip() or None
    except OSError:
        return None
