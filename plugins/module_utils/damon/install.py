# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install files and directories idempotently: compare, then write only what differs.

Pure file logic of the ``damon_applier`` module (no Ansible, no systemd): each wanted
file is compared with what is on disk (content, mode, owner and group) and, unless in
check mode, written atomically (a temporary file beside it, then ``rename``) only when
it differs. Every input is checked before anything is written.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    SpecError,
    check_host_path,
    quote,
)

_MODE_RE = re.compile(r"0?[0-7]{3,4}", re.ASCII)
MAX_FILE_BYTES = 4 << 20  # one file of the applier: a few hundred KiB at most
MAX_DIFF_BYTES = 256 << 10  # larger files are compared, not shown in the diff
MODE_ACCEPTED = "an octal mode string such as '0644' or '0755'"


class InstallError(RuntimeError):
    """A file or directory could not be read or written."""


@dataclass(frozen=True)
class WantedFile:
    """A regular file with this exact content and mode."""

    path: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class WantedDir:
    """A directory with this mode (its missing parents are created with it too)."""

    path: str
    mode: int


@dataclass
class Change:
    """What was (or, in check mode, would be) done to one path."""

    path: str
    kind: str  # file | directory
    created: bool = False
    reasons: list[str] = field(default_factory=list)  # content, mode, owner, group
    before: str | None = None  # for the diff: the old content (text), or None
    after: str | None = None

    @property
    def changed(self) -> bool:
        return self.created or bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "changed": self.changed,
            "created": self.created,
            "reasons": list(self.reasons),
        }

    def diff(self) -> dict[str, str]:
        """An Ansible diff entry (``before``/``after`` with headers)."""
        if self.kind == "directory":
            return {
                "before_header": self.path,
                "after_header": self.path,
                "before": "" if self.created else f"{self.path}: {', '.join(self.reasons)}\n",
                "after": f"{self.path}: directory\n"
                if self.created
                else f"{self.path}: {', '.join(self.reasons)} set\n",
            }
        before = "" if self.created else (self.before if self.before is not None else "")
        after = self.after if self.after is not None else ""
        meta = [r for r in self.reasons if r != "content"]
        if meta and not self.created:
            before = before + f"# {self.path}: {', '.join(meta)} differ\n"
            after = after + f"# {self.path}: {', '.join(meta)} set\n"
        return {
            "before_header": self.path,
            "after_header": self.path,
            "before": before,
            "after": after,
        }


def parse_mode(value: Any, name: str) -> int:
    """``"0644"`` (a string of octal digits) -> 0o644; anything else is refused."""
    if isinstance(value, str) and _MODE_RE.fullmatch(value):
        return int(value, 8)
    raise SpecError([f"{name}: {quote(value)} is not {MODE_ACCEPTED}"])


def parse_wanted(
    directories: Sequence[Mapping[str, Any]], files: Sequence[Mapping[str, Any]]
) -> tuple[list[WantedDir], list[WantedFile]]:
    """Check every directory and file before anything is written (all problems at once)."""
    problems: list[str] = []
    dirs: list[WantedDir] = []
    wanted: list[WantedFile] = []
    seen: set[str] = set()
    for index, item in enumerate(directories):
        name = f"directories[{index}]"
        try:
            path = check_host_path(item.get("path"), f"{name}.path")
            mode = parse_mode(item.get("mode"), f"{name}.mode")
            dirs.append(WantedDir(path.rstrip("/") or "/", mode))
        except SpecError as err:
            problems.extend(err.problems)
    for index, item in enumerate(files):
        name = f"files[{index}]"
        try:
            path = check_host_path(item.get("path"), f"{name}.path")
            if path.endswith("/"):
                raise SpecError([f"{name}.path: {quote(path)} names a directory; expected a file"])
            if path in seen:
                raise SpecError([f"{name}.path: {quote(path)} is given twice"])
            seen.add(path)
            content = item.get("content")
            if not isinstance(content, str):
                raise SpecError(
                    [f"{name}.content: got {type(content).__name__}; expected the text of the file"]
                )
            data = content.encode("utf-8")
            if len(data) > MAX_FILE_BYTES:
                raise SpecError([f"{name}.content: larger than {MAX_FILE_BYTES} bytes"])
            wanted.append(WantedFile(path, data, parse_mode(item.get("mode"), f"{name}.mode")))
        except SpecError as err:
            problems.extend(err.problems)
    if problems:
        raise SpecError(problems)
    return dirs, wanted


def _oserror(err: OSError) -> str:
    return err.strerror or str(err)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InstallError(f"{path}: cannot stat: {_oserror(err)}") from None


def _owner_reasons(st: os.stat_result, uid: int | None, gid: int | None) -> list[str]:
    reasons = []
    if uid is not None and st.st_uid != uid:
        reasons.append("owner")
    if gid is not None and st.st_gid != gid:
        reasons.append("group")
    return reasons


def _chown(path: str, uid: int | None, gid: int | None) -> None:
    if uid is None and gid is None:
        return
    try:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as err:
        raise InstallError(f"{path}: cannot set owner/group: {_oserror(err)}") from None


def ensure_directory(
    wanted: WantedDir, uid: int | None, gid: int | None, check_mode: bool
) -> Change:
    """Create the directory (and missing parents) or fix its mode, owner and group."""
    change = Change(wanted.path, "directory")
    st = _lstat(wanted.path)
    if st is None:
        change.created = True
        if not check_mode:
            missing = []
            path = wanted.path
            while _lstat(path) is None:
                missing.append(path)
                path = os.path.dirname(path)
            for path in reversed(missing):
                try:
                    os.mkdir(path, wanted.mode)
                    os.chmod(path, wanted.mode)  # mkdir's mode is masked by the umask
                except OSError as err:
                    raise InstallError(f"{path}: cannot create: {_oserror(err)}") from None
                _chown(path, uid, gid)
        return change
    if not stat.S_ISDIR(st.st_mode):
        raise InstallError(f"{wanted.path}: exists and is not a directory")
    if stat.S_IMODE(st.st_mode) != wanted.mode:
        change.reasons.append("mode")
    change.reasons.extend(_owner_reasons(st, uid, gid))
    if change.reasons and not check_mode:
        try:
            os.chmod(wanted.path, wanted.mode)
        except OSError as err:
            raise InstallError(f"{wanted.path}: cannot set mode: {_oserror(err)}") from None
        _chown(wanted.path, uid, gid)
    return change


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InstallError(f"{path}: cannot read: {_oserror(err)}") from None


def _text(data: bytes) -> str | None:
    if len(data) > MAX_DIFF_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


def _write(wanted: WantedFile, uid: int | None, gid: int | None) -> None:
    directory = os.path.dirname(wanted.path)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(wanted.path)}.")
    except OSError as err:
        raise InstallError(f"{wanted.path}: cannot write: {_oserror(err)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(wanted.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, wanted.mode)
        _chown(tmp, uid, gid)
        os.replace(tmp, wanted.path)
    except OSError as err:
        raise InstallError(f"{wanted.path}: cannot write: {_oserror(err)}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def ensure_file(wanted: WantedFile, uid: int | None, gid: int | None, check_mode: bool) -> Change:
    """Write the file when its content differs (atomically); fix mode, owner and group."""
    change = Change(wanted.path, "file", after=_text(wanted.content))
    st = _lstat(wanted.path)
    if st is None:
        change.created = True
        if not check_mode:
            _write(wanted, uid, gid)
        return change
    if not stat.S_ISREG(st.st_mode):
        raise InstallError(f"{wanted.path}: exists and is not a regular file")
    current = _read(wanted.path)
    if current != wanted.content:
        change.reasons.append("content")
        change.before = _text(current)
    else:
        change.before = change.after
    if stat.S_IMODE(st.st_mode) != wanted.mode:
        change.reasons.append("mode")
    change.reasons.extend(_owner_reasons(st, uid, gid))
    if check_mode or not change.reasons:
        return change
    if "content" in change.reasons:
        _write(wanted, uid, gid)
        return change
    try:
        os.chmod(wanted.path, wanted.mode)
    except OSError as err:
        raise InstallError(f"{wanted.path}: cannot set mode: {_oserror(err)}") from None
    _chown(wanted.path, uid, gid)
    return change


def install(
    dirs: Sequence[WantedDir],
    files: Sequence[WantedFile],
    uid: int | None,
    gid: int | None,
    check_mode: bool,
) -> list[Change]:
    """The directories first, then the files, each in the given order."""
    changes = [ensure_directory(d, uid, gid, check_mode) for d in dirs]
    changes.extend(ensure_file(wanted, uid, gid, check_mode) for wanted in files)
    return changes
