"""Kernel build pipeline logic: series manifests, mbox pins, ``git am`` failures, configs.

Pure functions only (no file or process I/O): callers pass file contents in, and
anything that needs a tool (``git patch-id``) comes in as a callable.  Used by the
``kernel_series_check``, ``kernel_series_apply``, ``kernel_config_check`` and
``kernel_build_manifest`` modules and by the tests.

* series manifest (format 1, ``kernel-patches/README.md``): :func:`validate_manifest`,
  :func:`load_manifest`;
* mbox against the pins: :func:`split_mbox`, :func:`verify_mbox`;
* ``git am`` failure output -> (patch subject, conflicting files): :func:`parse_am_failure`;
* a ``.config`` against required options: :func:`parse_kconfig`, :func:`dropped_options`;
* inputs hash and ``LOCALVERSION``: :func:`inputs_hash`, :func:`localversion`;
* the build manifest (JSON): :func:`new_build_manifest`, :func:`build_is_current`,
  :func:`render_build_manifest`, :func:`parse_build_manifest`;
* values that reach git, make, b4 or a path (URLs, refs, make targets, series names):
  :func:`check_git_url`, :func:`check_git_ref`, :func:`check_make_target`,
  :func:`check_series_name`, :func:`check_arch`, :func:`check_package_name`,
  :func:`check_config_line`.
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1
BUILD_MANIFEST_FORMAT = 1
LAYOUTS = ("mainline", "rfc-v1", "rfc-v2", "rfc-v3")
SOURCE_TYPES = ("b4", "bundled", "mbox")
BASE_TYPES = ("debian-package", "git")
NO_SERIES = "none"
LOCALVERSION_HASH_LEN = 8
# The kernel release (uname -r) holds at most 64 characters; keep the name well below.
MAX_NAME_LEN = 40

HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
# A bare Message-ID (RFC 5322 msg-id without the angle brackets): never an option.
MESSAGE_ID = re.compile(r"[A-Za-z0-9][!#$%&'*+/=?^_`{|}~.A-Za-z0-9-]*@[A-Za-z0-9][A-Za-z0-9.-]*")
OPTION = re.compile(r"CONFIG_[A-Z0-9_]+")
SERIES_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]*")
# Git URLs: a scheme git runs no command for, or an absolute path, or scp-like
# user@host:path. Never a leading "-" (git would read an option such as --upload-pack).
GIT_URL = re.compile(
    # After "://" neither the user nor the host starts with "-" (ssh would read an option).
    r"(?:(?:https?|git|ssh|file)://(?!-)(?![^/@]*@-)[A-Za-z0-9._~%!$&'()*+,;=:@/\[\]-]+"
    r"|/[A-Za-z0-9._~%+,=:@/-]*"
    r"|[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9._~%+,=@/-]+)"
)
# A branch, tag or commit name (git check-ref-format, simplified): no leading "-" or ".".
GIT_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
# A make target of the kernel (defconfig, tinyconfig, kvm_guest.config, ...): no "=" (a
# variable), no leading "-" (an option such as --eval).
MAKE_TARGET = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
ARCH = re.compile(r"[a-z0-9_]+")
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]+")
CONFIG_LINE = re.compile(r"(CONFIG_[A-Za-z0-9_]+=[^$`\\\n]*|# CONFIG_[A-Za-z0-9_]+ is not set)")
MAX_VALUE_LEN = 4096

Exists = Callable[[str], bool]
PatchIds = Callable[[bytes], list[str]]


class SeriesError(ValueError):
    """A bad series, mbox, config or manifest; the message says what and what is accepted."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors) or [message]


# --------------------------------------------------------------------------- hostile values


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to *limit* characters: an error never quotes a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse(name: str, value: object, accepted: str) -> SeriesError:
    return SeriesError(f"{name}: {shown(value)} is not accepted ({accepted})")


def _check(name: str, value: object, pattern: re.Pattern[str], accepted: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_VALUE_LEN or not pattern.fullmatch(value):
        raise _refuse(name, value, accepted)
    return value


def check_git_url(name: str, value: object) -> str:
    """A git URL git runs no command for; raises :class:`SeriesError` naming *name*."""
    return _check(
        name,
        value,
        GIT_URL,
        "an https://, http://, git://, ssh:// or file:// URL, an absolute path or "
        "user@host:path; never a leading '-'",
    )


def check_git_ref(name: str, value: object) -> str:
    """A branch, tag or commit name (never an option, never a range)."""
    accepted = (
        "a branch, tag or commit: letters, digits, '.', '_', '/', '+', '-'; "
        "no leading '-' or '.', no '..'"
    )
    _check(name, value, GIT_REF, accepted)
    assert isinstance(value, str)
    if ".." in value or value.endswith((".lock", "/", ".")):
        raise _refuse(name, value, accepted)
    return value


def check_make_target(name: str, value: object) -> str:
    """A make target such as ``defconfig`` or ``kvm_guest.config`` (not an option or variable)."""
    return _check(
        name, value, MAKE_TARGET, "a make target: letters, digits, '_', '.', '-'; no leading '-'"
    )


def check_series_name(name: str, value: object) -> str:
    """A series folder name under kernel-patches/ (or ``none``): one path component."""
    if value == NO_SERIES:
        return NO_SERIES
    if isinstance(value, str) and len(value) > MAX_NAME_LEN:
        raise _refuse(name, value, f"at most {MAX_NAME_LEN} characters")
    return _check(
        name,
        value,
        SERIES_NAME,
        f"a folder name of kernel-patches/: lower-case letters, digits, '.', '+', '-', "
        f"starting with a letter or digit (no '/'), or {NO_SERIES!r}",
    )


def check_arch(name: str, value: object) -> str:
    """ARCH= for make (x86_64, arm64, ...), or empty."""
    if value == "":
        return ""
    return _check(name, value, ARCH, "a kernel architecture: lower-case letters, digits, '_'")


def check_package_name(name: str, value: object) -> str:
    """A Debian package name (``linux-source-6.12``), or empty."""
    if value == "":
        return ""
    return _check(
        name,
        value,
        PACKAGE_NAME,
        "a Debian package name: lower-case letters, digits, '.', '+', '-'",
    )


def check_config_line(name: str, value: object) -> str:
    """A line of a config fragment: ``CONFIG_X=value`` or ``# CONFIG_X is not set``."""
    return _check(
        name,
        value,
        CONFIG_LINE,
        "CONFIG_NAME=value (no '$', '`' or '\\') or '# CONFIG_NAME is not set', one line",
    )


# --------------------------------------------------------------------------- manifest

# key -> (accepted types, required, what to say when the type is wrong)
_Spec = dict[str, tuple[tuple[type, ...], bool, str]]

_STR = ((str,), "a string")
_INT = ((int,), "an integer")
_BOOL = ((bool,), "true or false")
_MAP = ((dict,), "a mapping")
_LIST = ((list,), "a list")
_STR_OR_NULL = ((str, type(None)), "a string or null")


def _spec(**keys: tuple[tuple[tuple[type, ...], str], bool]) -> _Spec:
    return {key: (kind[0], required, kind[1]) for key, (kind, required) in keys.items()}


TOP = _spec(
    format=(_INT, True),
    name=(_STR, True),
    description=(_STR, True),
    layout=(_STR, True),
    stand_in=(_BOOL, True),
    source=(_MAP, True),
    base=(_MAP, True),
    patches=(_LIST, True),
    pins=(_MAP, True),
    config=(_MAP, True),
)
SOURCE = {
    "b4": _spec(
        type=(_STR, True), message_id=(_STR, True), version=(_INT, True), previous=(_LIST, False)
    ),
    "mbox": _spec(type=(_STR, True), path=(_STR, True)),
    "bundled": _spec(type=(_STR, True), path=(_STR, True), cover=(_STR, False)),
}
PREVIOUS = _spec(version=(_INT, True), message_id=(_STR, True))
BASE = {
    "git": _spec(
        type=(_STR, True),
        url=(_STR, True),
        branch=(_STR, True),
        commit=(_STR_OR_NULL, True),
        notes=(_STR, False),
    ),
    "debian-package": _spec(
        type=(_STR, True),
        package=(_STR, True),
        tested_version=(_STR, True),
        kernel_version=(_STR, True),
        tarball=(_STR, True),
        notes=(_STR, False),
    ),
}
PATCH = _spec(subject=(_STR, True), patch_id=(_STR_OR_NULL, True))
PINS = _spec(mbox_sha256=(_STR_OR_NULL, True))
CONFIG = _spec(fragment=(_STR, True), required=(_LIST, True), notes=(_STR, False))


def _check_keys(where: str, data: object, spec: _Spec) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: expected a mapping, got {type(data).__name__}"]
    accepted = ", ".join(spec)
    errors = [
        f"{where}.{key}: unknown key (accepted keys: {accepted})" for key in data if key not in spec
    ]
    for key, (kinds, required, what) in spec.items():
        if key not in data:
            if required:
                errors.append(f"{where}.{key}: missing (required)")
            continue
        value = data[key]
        # bool is an int subclass: `format: true` must not pass as 1.
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            errors.append(f"{where}.{key}: is {type(value).__name__}, expected {what}")
    return errors


def _one_of(where: str, value: object, accepted: Sequence[str]) -> list[str]:
    if value in accepted:
        return []
    return [f"{where}: {value!r} is not accepted (one of: {', '.join(accepted)})"]


def validate_manifest(
    manifest: object, directory_name: str | None = None, exists: Exists | None = None
) -> list[str]:
    """Every format-1 violation of one manifest, each naming the key (empty: valid).

    *directory_name* is the series directory's name (``name`` must equal it);
    *exists(relative_path)* says whether a file the manifest names exists.
    """
    errors = _check_keys("manifest", manifest, TOP)
    if not isinstance(manifest, dict) or any(
        k in manifest and not isinstance(manifest[k], TOP[k][0]) for k in TOP
    ):
        return errors
    if manifest.get("format") not in (None, FORMAT):
        errors.append(f"manifest.format: {manifest['format']!r} is not accepted (only {FORMAT})")
    name = manifest.get("name")
    if name is not None:
        if directory_name is not None and name != directory_name:
            errors.append(
                f"manifest.name: {name!r} must equal the directory name {directory_name!r}"
            )
        if not SERIES_NAME.fullmatch(name) or name == NO_SERIES:
            errors.append(
                f"manifest.name: {name!r} is not accepted (lower-case letters, "
                f"digits, '.', '+', '-'; not {NO_SERIES!r})"
            )
    if "layout" in manifest:
        errors += _one_of("manifest.layout", manifest["layout"], LAYOUTS)
    if "description" in manifest and not manifest["description"].strip():
        errors.append("manifest.description: is empty")

    source = manifest.get("source", {})
    stype = source.get("type")
    if "source" in manifest:
        if stype not in SOURCE_TYPES:
            errors += _one_of("source.type", stype, SOURCE_TYPES)
        else:
            errors += _check_keys("source", source, SOURCE[stype])
            errors += _check_source(source, stype, exists)

    base = manifest.get("base", {})
    if "base" in manifest:
        btype = base.get("type")
        if btype not in BASE_TYPES:
            errors += _one_of("base.type", btype, BASE_TYPES)
        else:
            errors += _check_keys("base", base, BASE[btype])
            commit = base.get("commit")
            if btype == "git" and isinstance(commit, str) and not HEX40.fullmatch(commit):
                errors.append(f"base.commit: {commit!r} is not accepted (40 hex digits or null)")
            errors += _check_base_values(base, btype)

    patches = manifest.get("patches", [])
    if "patches" in manifest and not patches:
        errors.append("manifest.patches: is empty (at least one patch)")
    for i, patch in enumerate(patches):
        errors += _check_patch(i, patch)

    pins = manifest.get("pins", {})
    if "pins" in manifest:
        errors += _check_keys("pins", pins, PINS)
        sha = pins.get("mbox_sha256")
        if isinstance(sha, str) and not HEX64.fullmatch(sha):
            errors.append(
                f"pins.mbox_sha256: {sha!r} is not accepted (64 lower-case hex digits or null)"
            )
        if sha is None and stype == "bundled":
            errors.append("pins.mbox_sha256: is null, but a bundled series must be pinned")

    config = manifest.get("config", {})
    if "config" in manifest:
        errors += _check_keys("config", config, CONFIG)
        for option in (
            config.get("required", []) if isinstance(config.get("required"), list) else []
        ):
            if not isinstance(option, str) or not OPTION.fullmatch(option):
                errors.append(f"config.required: {option!r} is not accepted (a CONFIG_* name)")
        fragment = config.get("fragment")
        if isinstance(fragment, str) and exists is not None and not exists(fragment):
            errors.append(f"config.fragment: {fragment} does not exist")
    for key, section in (
        ("source.path", source),
        ("source.cover", source),
        ("config.fragment", config),
    ):
        value = section.get(key.split(".")[1]) if isinstance(section, dict) else None
        if isinstance(value, str) and not _inside(value):
            errors.append(
                f"{key}: {shown(value)} is not accepted (a relative path inside the series "
                "folder: no leading '/' or '-', no '..')"
            )
    return errors


def _inside(path: str) -> bool:
    """Whether *path* is a relative path that stays inside its folder."""
    parts = path.split("/")
    return bool(path) and not path.startswith(("/", "-")) and ".." not in parts and "\n" not in path


def _check_base_values(base: dict[str, Any], btype: str) -> list[str]:
    """The base values that reach git, apt, dpkg-query or tar as arguments."""
    checks: list[tuple[str, Callable[[str, object], str]]] = (
        [("url", check_git_url), ("branch", check_git_ref)]
        if btype == "git"
        else [("package", check_package_name)]
    )
    errors = []
    for key, check in checks:
        if isinstance(base.get(key), str):
            try:
                check(f"base.{key}", base[key])
            except SeriesError as exc:
                errors.append(str(exc))
    tarball = base.get("tarball")
    if btype == "debian-package" and isinstance(tarball, str) and not tarball.startswith("/"):
        errors.append(f"base.tarball: {shown(tarball)} is not accepted (an absolute path)")
    return errors


def _check_source(source: dict[str, Any], stype: str, exists: Exists | None) -> list[str]:
    errors: list[str] = []
    if stype == "b4":
        if not MESSAGE_ID.fullmatch(str(source.get("message_id"))):
            errors.append(
                f"source.message_id: {shown(source.get('message_id'))} is not accepted "
                "(a bare Message-ID, local@domain, starting with a letter or digit, "
                "no angle brackets)"
            )
        previous = source.get("previous", [])
        for i, prev in enumerate(previous if isinstance(previous, list) else []):
            errors += _check_keys(f"source.previous[{i}]", prev, PREVIOUS)
            if isinstance(prev, dict) and not MESSAGE_ID.fullmatch(str(prev.get("message_id"))):
                errors.append(f"source.previous[{i}].message_id: is not a bare Message-ID")
    elif stype == "bundled" and exists is not None:
        for key in ("path", "cover"):
            value = source.get(key)
            if isinstance(value, str) and not exists(value):
                errors.append(f"source.{key}: {value} does not exist")
    return errors


def _check_patch(i: int, patch: object) -> list[str]:
    errors = _check_keys(f"patches[{i}]", patch, PATCH)
    if not isinstance(patch, dict):
        return errors
    subject = patch.get("subject")
    if isinstance(subject, str):
        if not subject.strip():
            errors.append(f"patches[{i}].subject: is empty")
        elif subject.startswith("["):
            errors.append(
                f"patches[{i}].subject: {subject!r} is not accepted (leave the "
                "[PATCH ...] prefix out)"
            )
    pid = patch.get("patch_id")
    if isinstance(pid, str) and not HEX40.fullmatch(pid):
        errors.append(f"patches[{i}].patch_id: {pid!r} is not accepted (40 hex digits or null)")
    return errors


def load_manifest(
    data: object, directory_name: str | None = None, exists: Exists | None = None
) -> dict[str, Any]:
    """Return the parsed manifest *data* if it is valid, else raise :class:`SeriesError`."""
    errors = validate_manifest(data, directory_name, exists)
    if errors:
        where = f"series {directory_name!r}" if directory_name else "series manifest"
        raise SeriesError(f"{where}: invalid manifest: " + "; ".join(errors), errors)
    assert isinstance(data, dict)
    return data


# --------------------------------------------------------------------------- mbox

_FROM_LINE = re.compile(rb"^From \S+.*$", re.MULTILINE)
_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")


def split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox (``From `` separated), each without its ``From `` line."""
    starts = [m.start() for m in _FROM_LINE.finditer(data)]
    if not starts:
        return [data] if data.strip() else []
    messages = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[start:end]
        messages.append(chunk.split(b"\n", 1)[1] if b"\n" in chunk else b"")
    return messages


def clean_subject(raw: str) -> str:
    """Decode, unfold and strip the ``[PATCH ...]`` prefix of a Subject header."""
    decoded = str(email.header.make_header(email.header.decode_header(raw)))
    return _PREFIX.sub("", " ".join(decoded.split()))


def mbox_subjects(data: bytes) -> list[str]:
    """Patch subjects of an mbox, in order."""
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    subjects = []
    for message in split_mbox(data):
        headers = parser.parsebytes(message, headersonly=True)
        subjects.append(clean_subject(str(headers.get("Subject", ""))))
    return subjects


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class MboxReport:
    """What an mbox holds and how it compares with the manifest's pins."""

    sha256: str
    subjects: list[str]
    patch_ids: list[str] | None
    pinned: bool
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "subjects": self.subjects,
            "patch_ids": self.patch_ids,
            "pinned": self.pinned,
            "errors": self.errors,
        }


def verify_mbox(
    data: bytes,
    manifest: Mapping[str, Any],
    patch_ids: PatchIds | None = None,
    allow_unpinned: bool = False,
) -> MboxReport:
    """Check an mbox against ``pins.mbox_sha256``, the subjects and the ``patch_id``s.

    Raises :class:`SeriesError` naming every mismatch.  An unpinned series (null sha256
    or null patch ids) is refused unless *allow_unpinned*; the report then carries the
    values to pin.  *patch_ids(mbox)* returns ``git patch-id --stable`` ids in order.
    """
    digest = sha256_hex(data)
    subjects = mbox_subjects(data)
    ids = patch_ids(data) if patch_ids is not None else None
    name = manifest.get("name", "?")
    want_sha = manifest["pins"]["mbox_sha256"]
    patches = manifest["patches"]
    want_subjects = [p["subject"] for p in patches]
    errors: list[str] = []
    pinned = want_sha is not None and all(p["patch_id"] for p in patches)
    if want_sha is None:
        if not allow_unpinned:
            errors.append(
                f"pins.mbox_sha256 is null: pin it to {digest} after reviewing the "
                "mbox (or allow an unpinned series explicitly)"
            )
    elif digest != want_sha:
        errors.append(f"mbox sha256 {digest} does not match pins.mbox_sha256 {want_sha}")
    if subjects != want_subjects:
        errors.append(_subject_mismatch(subjects, want_subjects))
    if ids is not None:
        for i, (patch, got) in enumerate(zip(patches, ids, strict=False)):
            want = patch["patch_id"]
            if want is None:
                if not allow_unpinned:
                    errors.append(f"patches[{i}].patch_id is null: pin it to {got}")
            elif want != got:
                errors.append(
                    f"patches[{i}] {patch['subject']!r}: patch-id {got} does not "
                    f"match the pinned {want}"
                )
        if len(ids) != len(subjects):
            errors.append(
                f"git patch-id found {len(ids)} patches in an mbox of "
                f"{len(subjects)} messages (a message without a diff?)"
            )
        elif (
            want_sha is not None
            and digest != want_sha
            and len(errors) == 1
            and all(p["patch_id"] for p in patches)
        ):
            errors.append(
                "every patch-id and subject matches: the diffs are the pinned ones, the "
                "messages differ (trailers collected from replies, an edited commit message "
                "or header); review them and re-pin pins.mbox_sha256"
            )
    report = MboxReport(digest, subjects, ids, pinned, errors)
    if errors:
        raise SeriesError(
            f"series {name!r}: the mbox does not match the manifest: " + "; ".join(errors), errors
        )
    return report


def unpinned_keys(manifest: Mapping[str, Any], pin_base: bool = True) -> list[str]:
    """The pins *manifest* leaves null, by key: ``pins.mbox_sha256``, ``patches[i].patch_id``
    and, when *pin_base* (the build takes its base from the manifest), a git base's
    ``base.commit``."""
    keys = [] if manifest["pins"]["mbox_sha256"] else ["pins.mbox_sha256"]
    keys += [
        f"patches[{i}].patch_id" for i, p in enumerate(manifest["patches"]) if not p["patch_id"]
    ]
    base = manifest.get("base", {})
    if pin_base and base.get("type") == "git" and not base.get("commit"):
        keys.append("base.commit")
    return keys


def unpinned_message(
    manifest: Mapping[str, Any],
    manifest_path: str,
    mbox_path: str,
    report: MboxReport,
    keys: Sequence[str],
) -> str:
    """Why an unpinned series stops, and how to review and pin it (one line)."""
    source = manifest["source"]
    fetched = (
        f"b4 am fetched it by Message-ID {source['message_id']}"
        if source.get("type") == "b4"
        else "the mbox the build would apply"
    )
    pins = [f"pins.mbox_sha256: {report.sha256}"]
    if report.patch_ids is not None:
        pins += [f"patches[{i}].patch_id: {pid}" for i, pid in enumerate(report.patch_ids)]
    base = manifest.get("base", {})
    if "base.commit" in keys:
        pins.append(
            "base.commit: the commit you reviewed it on (`git ls-remote -- "
            f"{base['url']} refs/heads/{base['branch']}` gives the branch head)"
        )
    recorded = ["inputs.series.mbox_sha256", "inputs.series.patch_ids"]
    recorded += ["inputs.base.commit"] if "base.commit" in keys else []
    return (
        f"series {manifest.get('name', '?')!r} is not pinned: {manifest_path} has null "
        f"{', '.join(keys)}. Review {mbox_path} ({fetched}; read it, `git am` it on the "
        f"base), then pin it in {manifest_path} - {'; '.join(pins)}. Or build it once "
        "unpinned (allow_unpinned; kernel_build_allow_unpinned=true in the kernel_build "
        f"role): the build manifest records the values to pin ({', '.join(recorded)})"
    )


def _subject_mismatch(got: list[str], want: list[str]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"patch {i + 1} subject {g!r} is not the manifest's {w!r}"
    return f"the mbox has {len(got)} patches, the manifest lists {len(want)}"


def parse_patch_ids(output: str) -> list[str]:
    """The patch ids of ``git patch-id --stable`` output (``<patch-id> <commit-id>`` lines)."""
    return [line.split()[0] for line in output.splitlines() if line.strip()]


# --------------------------------------------------------------------------- git am

_APPLYING = re.compile(r"^Applying: (.+)$", re.MULTILINE)
_FAILED_AT = re.compile(r"^Patch failed at \d+ (.+)$", re.MULTILINE)
_FILE_PATTERNS = (
    re.compile(r"^CONFLICT \([^)]*\): Merge conflict in (.+)$", re.MULTILINE),
    re.compile(r"^CONFLICT \([^)]*\): (\S+) deleted in ", re.MULTILINE),
    re.compile(r"^error: patch failed: (.+):\d+$", re.MULTILINE),
    re.compile(r"^error: (.+): patch does not apply$", re.MULTILINE),
    re.compile(r"^error: (.+): does not exist in index$", re.MULTILINE),
    re.compile(r"^error: (.+): already exists in (?:index|working directory)$", re.MULTILINE),
    re.compile(r"^error: sha1 information is lacking or useless \((.+)\)\.$", re.MULTILINE),
)


@dataclass
class AmFailure:
    """The patch ``git am`` stopped at and the files it could not apply."""

    subject: str | None
    files: list[str]

    def message(self, series: str | None = None) -> str:
        where = f"series {series!r}: " if series else ""
        patch = repr(self.subject) if self.subject else "a patch"
        files = ", ".join(self.files) if self.files else "(git named no file)"
        return f"{where}patch {patch} does not apply; conflicting files: {files}"


def parse_am_failure(output: str) -> AmFailure:
    """Parse the (stdout+stderr) output of a failed ``git am -3`` run."""
    failed = _FAILED_AT.findall(output)
    applying = _APPLYING.findall(output)
    subject = (failed or applying or [None])[-1]
    files: list[str] = []
    for pattern in _FILE_PATTERNS:
        for name in pattern.findall(output):
            name = name.strip()
            if name not in files:
                files.append(name)
    return AmFailure(subject.strip() if subject else None, files)


def applied_count(log_subjects: Sequence[str], series_subjects: Sequence[str]) -> int:
    """How many series patches are already the newest commits (``git log`` order, newest
    first): ``len(series)`` when the whole series is on top, else 0."""
    n = len(series_subjects)
    if n and list(reversed(log_subjects[:n])) == list(series_subjects):
        return n
    return 0


# --------------------------------------------------------------------------- .config

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_kconfig(text: str) -> dict[str, str]:
    """A ``.config`` (or fragment) as ``{"CONFIG_X": "y" | "m" | "n" | value}``."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        match = _SET.match(line)
        if match:
            values[match[1]] = match[2]
            continue
        match = _UNSET.match(line)
        if match:
            values[match[1]] = "n"
    return values


def normalize_option(name: str) -> str:
    """``DAMON`` or ``CONFIG_DAMON`` -> ``CONFIG_DAMON``; refuses anything else."""
    option = name if name.startswith("CONFIG_") else f"CONFIG_{name}"
    if not OPTION.fullmatch(option):
        raise SeriesError(f"required option {name!r} is not accepted (a CONFIG_* name)")
    return option


def dropped_options(config_text: str, required: Sequence[str]) -> list[dict[str, str]]:
    """Required options that are not ``=y`` in *config_text*, with what they are instead."""
    values = parse_kconfig(config_text)
    dropped = []
    for name in required:
        option = normalize_option(name)
        value = values.get(option)
        if value != "y":
            dropped.append({"option": option, "value": "unset" if value is None else value})
    return dropped


def dropped_message(dropped: Sequence[Mapping[str, str]]) -> str:
    return "required kernel option(s) not =y after olddefconfig: " + ", ".join(
        f"{d['option']} (is {d['value']})" for d in dropped
    )


# --------------------------------------------------------------------------- inputs hash


def canonical_json(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def inputs_hash(inputs: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of every build input (values and file hashes)."""
    return sha256_hex(canonical_json(dict(inputs)).encode())


def localversion(name: str, digest: str, length: int = LOCALVERSION_HASH_LEN) -> str:
    """``-<name>-<short hash>``: valid in a kernel release and a Debian package name."""
    if not SERIES_NAME.fullmatch(name) or len(name) > MAX_NAME_LEN:
        raise SeriesError(
            f"localversion name {name!r} is not accepted (lower-case letters, "
            f"digits, '.', '+', '-', at most {MAX_NAME_LEN} characters)"
        )
    if not re.fullmatch(f"[0-9a-f]{{{length},}}", digest):
        raise SeriesError(f"hash {digest!r} is not a hex digest of at least {length} digits")
    return f"-{name}-{digest[:length]}"


# --------------------------------------------------------------------------- build manifest


def new_build_manifest(
    *,
    inputs: Mapping[str, Any],
    digest: str,
    localversion_value: str,
    kernel_release: str,
    config_sha256: str,
    required: Sequence[str],
    packages: Sequence[Mapping[str, Any]],
    built_at: str,
    build_seconds: float | None,
    build: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document a successful build leaves next to its packages."""
    return {
        "format": BUILD_MANIFEST_FORMAT,
        "inputs_hash": digest,
        "localversion": localversion_value,
        "kernel_release": kernel_release,
        "inputs": dict(inputs),
        "config": {"sha256": config_sha256, "required": list(required)},
        "packages": [dict(p) for p in sorted(packages, key=lambda p: str(p["file"]))],
        "built_at": built_at,
        "build_seconds": None if build_seconds is None else round(build_seconds, 1),
        "build": dict(build or {}),
    }


def render_build_manifest(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


_PACKAGE_FILE = re.compile(r"[A-Za-z0-9_+~][A-Za-z0-9._+~-]*")


def parse_build_manifest(text: str) -> dict[str, Any]:
    """Parse a build manifest; raise :class:`SeriesError` when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SeriesError(f"build manifest is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != BUILD_MANIFEST_FORMAT:
        raise SeriesError(f"build manifest: format is not {BUILD_MANIFEST_FORMAT}")
    for key in ("inputs_hash", "packages", "kernel_release"):
        if key not in data:
            raise SeriesError(f"build manifest: missing key {key!r}")
    for key in ("inputs_hash", "kernel_release", "localversion"):
        if key in data and not isinstance(data[key], str):
            raise SeriesError(f"build manifest: {key} is {type(data[key]).__name__}, not a string")
    packages = data["packages"]
    if not isinstance(packages, list):
        raise SeriesError(f"build manifest: packages is {type(packages).__name__}, not a list")
    for i, package in enumerate(packages):
        if not isinstance(package, dict):
            raise SeriesError(f"build manifest: packages[{i}] is not a mapping")
        name = package.get("file")
        # A package is a file of the build folder: a plain name, never a path.
        if not isinstance(name, str) or not _PACKAGE_FILE.fullmatch(name):
            raise SeriesError(
                f"build manifest: packages[{i}].file is {shown(name)}, not a file name"
            )
        if not isinstance(package.get("sha256"), str):
            raise SeriesError(f"build manifest: packages[{i}].sha256 is not a string")
    return data


def build_is_current(
    manifest: Mapping[str, Any] | None,
    digest: str,
    package_sha256: Callable[[str], str | None],
) -> tuple[bool, str]:
    """Whether a recorded build can be reused for inputs hashing to *digest*.

    *package_sha256(file)* hashes a recorded package (``None`` when missing).  Returns
    ``(current, reason)``; the reason says why a build is needed.
    """
    if manifest is None:
        return False, "no build manifest"
    if manifest.get("inputs_hash") != digest:
        return False, "inputs changed"
    packages = manifest.get("packages") or []
    if not packages:
        return False, "the manifest lists no package"
    for package in packages:
        got = package_sha256(str(package["file"]))
        if got is None:
            return False, f"package {package['file']} is missing"
        if got != package.get("sha256"):
            return False, f"package {package['file']} does not match its sha256"
    return True, "inputs unchanged and every package matches its sha256"
