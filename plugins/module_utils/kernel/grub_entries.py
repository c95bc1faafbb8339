"""GRUB boot entries for a kernel rollout: parse ``grub.cfg``, write a one-shot trial entry.

Pure functions only (no file or process I/O); used by the ``kernel_install_grub`` module
and the tests.

* :func:`parse_grub_cfg`: the menu entries of a generated ``grub.cfg`` (title, id, kernel,
  initrd, command line, the submenu they sit in) and the scripts that produced them;
* :func:`find_kernel_entry`: the regular (not recovery, not trial) entry of a release;
* :func:`parse_grubenv`: ``saved_entry`` / ``next_entry`` of ``grub-editenv list``;
* :func:`render_trial_script`: an ``/etc/grub.d`` script that emits a copy of the regular
  entry under a fixed id, with extra kernel arguments (``panic=N`` so a kernel that
  panics at boot reboots into the saved default);
* :func:`check_release`, :func:`check_extra_args`: the release and the extra arguments
  refused before they reach a title, a file name or the trial entry's command line;
* :func:`entry_ref`: the string ``grub-reboot`` / ``grub-set-default`` take for an entry
  (its id, prefixed by the submenu id when it sits in a submenu).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TRIAL_ID = "damon-fleet-trial"
TRIAL_TITLE_PREFIX = "damon-fleet trial"

_MENUENTRY = re.compile(r"^\s*menuentry\s+(?P<rest>.*)\{\s*$")
_SUBMENU = re.compile(r"^\s*submenu\s+(?P<rest>.*)\{\s*$")
_ID_OPTION = re.compile(r"(?:\$menuentry_id_option|--id)\s+(?P<id>'[^']*'|\"[^\"]*\"|\S+)")
_BEGIN = re.compile(r"^### BEGIN (?P<script>\S+) ###$")
_LINUX = re.compile(r"^\s*linux(?:efi|16)?\s+(?P<args>.*)$")
_INITRD = re.compile(r"^\s*initrd(?:efi|16)?\s+(?P<args>.*)$")
_SAFE_ARG = re.compile(r"[A-Za-z0-9_.,:/=+@%-]+")
# A kernel release as ``uname -r`` prints it (at most 64 characters, __NEW_UTS_LEN).
RELEASE = re.compile(r"[0-9][A-Za-z0-9._+~-]{0,63}")
# Kernel arguments the trial entry sets itself and that no extra argument may override:
# the kernel takes the last panic=, so panic=0 (wait forever) or a long timeout would keep
# a panicking trial kernel from rebooting into the saved default, the previous kernel.
# A negative value (reboot at once) still falls back, but the timeout has one input
# (panic_timeout), so every panic= is refused.
RESERVED_ARGS = ("panic",)


class GrubError(ValueError):
    """A grub.cfg, grubenv or request that cannot be used; the message says why."""


@dataclass(frozen=True)
class MenuEntry:
    """One ``menuentry`` of a ``grub.cfg``."""

    title: str
    entry_id: str | None
    submenu_id: str | None
    script: str | None
    kernel: str | None
    args: tuple[str, ...]
    initrd: tuple[str, ...]
    body: tuple[str, ...] = field(default=(), repr=False)

    @property
    def recovery(self) -> bool:
        return "recovery" in self.args or "(recovery mode)" in self.title

    def as_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "id": self.entry_id,
            "submenu_id": self.submenu_id,
            "script": self.script,
            "kernel": self.kernel,
            "args": list(self.args),
            "initrd": list(self.initrd),
            "recovery": self.recovery,
            "ref": entry_ref(self),
        }


def _first_word(rest: str) -> str:
    """The (quoted) title at the start of a menuentry/submenu line."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as exc:
        raise GrubError(f"cannot parse the menu line {rest!r}: {exc}") from exc
    if not words:
        raise GrubError(f"menu line without a title: {rest!r}")
    return words[0]


def _entry_id(rest: str) -> str | None:
    match = _ID_OPTION.search(rest)
    if match is None:
        return None
    return match["id"].strip("'\"")


def parse_grub_cfg(text: str) -> list[MenuEntry]:
    """Every menu entry of ``text`` (a generated grub.cfg), in file order."""
    entries: list[MenuEntry] = []
    script: str | None = None
    submenus: list[str | None] = []
    # Depth of braces opened by submenu lines still open (to know when one closes).
    stack: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        begin = _BEGIN.match(stripped)
        if begin:
            script = begin["script"]
        sub = _SUBMENU.match(line)
        entry = _MENUENTRY.match(line)
        if sub:
            submenus.append(_entry_id(sub["rest"]))
            stack.append("submenu")
        elif entry:
            title = _first_word(entry["rest"])
            body: list[str] = []
            depth = 1
            index += 1
            while index < len(lines) and depth > 0:
                inner = lines[index]
                depth += inner.count("{") - inner.count("}")
                if depth > 0:
                    body.append(inner)
                index += 1
            if depth > 0:
                raise GrubError(f"menuentry {title!r} is not closed")
            kernel: str | None = None
            args: tuple[str, ...] = ()
            initrd: tuple[str, ...] = ()
            for inner in body:
                linux = _LINUX.match(inner)
                if linux:
                    words = linux["args"].split()
                    kernel, args = words[0], tuple(words[1:])
                initrd_match = _INITRD.match(inner)
                if initrd_match:
                    initrd = tuple(initrd_match["args"].split())
            entries.append(
                MenuEntry(
                    title=title,
                    entry_id=_entry_id(entry["rest"]),
                    submenu_id=submenus[-1] if submenus else None,
                    script=script,
                    kernel=kernel,
                    args=args,
                    initrd=initrd,
                    body=tuple(body),
                )
            )
            continue
        elif stripped == "}" and stack:
            stack.pop()
            submenus.pop()
        index += 1
    return entries


def drop_script_section(text: str, script: str) -> str | None:
    """*text* (a grub.cfg) without the section that *script* (an /etc/grub.d path) made.

    ``grub-mkconfig`` runs every script of /etc/grub.d in turn and writes each one's
    output as ``\\n### BEGIN <script> ###\\n<output>### END <script> ###\\n``. Taking that
    section out gives what it would write once the script is gone, without running every
    other script again (on a small VM that takes seconds to tens of seconds). None when
    the text has no complete section of *script*.
    """
    begin = f"\n### BEGIN {script} ###\n"
    end = f"### END {script} ###\n"
    start = text.find(begin)
    if start < 0:
        return None
    stop = text.find(end, start + len(begin))
    if stop < 0:
        return None
    return text[:start] + text[stop + len(end) :]


_SECTION = re.compile(r"\n### BEGIN (?P<script>\S+) ###\n")


def put_script_section(text: str, script: str, output: str) -> str | None:
    """*text* (a grub.cfg) with *output* as the section of *script*, where
    ``grub-mkconfig`` would put it: in place of the script's section, else after the
    sections of the scripts whose names sort before it (it runs /etc/grub.d/* in name
    order). This is what it would write with the script added, given that the other
    scripts' output is current (the kernel package's own update-grub just ran). None
    when the text has no grub-mkconfig sections at all.
    """
    if output and not output.endswith("\n"):
        output += "\n"
    block = f"\n### BEGIN {script} ###\n{output}### END {script} ###\n"
    dropped = drop_script_section(text, script)
    if dropped is not None:
        text = dropped
    sections = []
    for match in _SECTION.finditer(text):
        end = f"### END {match.group('script')} ###\n"
        stop = text.find(end, match.end())
        if stop >= 0:
            sections.append((match.group("script"), match.start(), stop + len(end)))
    if not sections:
        return None
    name = script.rsplit("/", 1)[-1]
    before = [end for path, _, end in sections if path.rsplit("/", 1)[-1] < name]
    at = before[-1] if before else sections[0][1]
    return text[:at] + block + text[at:]


def kernel_release_of(entry: MenuEntry) -> str | None:
    """The release of the kernel an entry boots (``/boot/vmlinuz-<release>``)."""
    if not entry.kernel:
        return None
    name = entry.kernel.rsplit("/", 1)[-1]
    for prefix in ("vmlinuz-", "vmlinux-", "bzImage-"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return None


def find_kernel_entry(entries: Sequence[MenuEntry], release: str) -> MenuEntry:
    """The regular entry that boots ``release``: not recovery mode, not the trial entry.

    Raises :class:`GrubError` naming the releases that have entries when none matches.
    """
    candidates = [
        entry
        for entry in entries
        if kernel_release_of(entry) == release and not entry.recovery and entry.entry_id != TRIAL_ID
    ]
    if not candidates:
        known = sorted({r for r in (kernel_release_of(e) for e in entries) if r})
        raise GrubError(
            f"grub.cfg has no regular entry for kernel {release} "
            f"(entries for: {', '.join(known) or 'none'})"
        )
    # Prefer the per-version entry of 10_linux (id gnulinux-<release>-...) over the
    # "simple" first entry, whose id does not name the release and changes meaning
    # whenever another kernel sorts first.
    for entry in candidates:
        if entry.entry_id and release in entry.entry_id:
            return entry
    return candidates[0]


def entry_ref(entry: MenuEntry) -> str:
    """What ``grub-reboot`` / ``grub-set-default`` take for ``entry``.

    The id when there is one (``submenu>entry`` inside a submenu), else the title.
    """
    own = entry.entry_id or entry.title
    if entry.submenu_id:
        return f"{entry.submenu_id}>{own}"
    return own


def parse_grubenv(text: str) -> dict[str, str]:
    """``grub-editenv list`` output (or the grubenv file) as a mapping."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value
    return out


def entry_matches(entries: Iterable[MenuEntry], ref: str, entry: MenuEntry) -> bool:
    """Whether the saved/next reference ``ref`` designates ``entry``.

    GRUB accepts an id, a title, an index, or ``submenu>entry``; ``entries`` gives the
    menu order for numeric references.
    """
    if not ref:
        return False
    candidates = {entry_ref(entry), entry.title}
    if entry.entry_id:
        candidates.add(entry.entry_id)
    if entry.submenu_id:
        candidates.add(f"{entry.submenu_id}>{entry.title}")
    if ref in candidates:
        return True
    if ref.isdigit():
        top = [e for e in entries if e.submenu_id is None]
        position = int(ref)
        return position < len(top) and top[position] == entry
    return False


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_release(release: object) -> str:
    """Refuse a release that is not one ``uname -r`` could print (it goes into a menu
    title, file names and the trial script)."""
    if not isinstance(release, str) or not RELEASE.fullmatch(release):
        raise GrubError(
            f"release (kernel_install_release): {_shown(release)} is not accepted (a kernel "
            "release as uname -r prints it: a digit first, then letters, digits, "
            "'.', '_', '+', '~', '-'; at most 64 characters)"
        )
    return release


def check_extra_args(extra: Sequence[str]) -> None:
    """Refuse extra trial arguments with unsafe characters or that defeat the fallback."""
    for arg in extra:
        key = arg.split("=", 1)[0]
        if key in RESERVED_ARGS:
            raise GrubError(
                f"extra_args (kernel_install_trial_cmdline_extra): {_shown(arg)} is not "
                "accepted: the trial entry sets panic=N itself (panic_timeout, role input "
                "kernel_install_panic_timeout) so that a kernel that panics reboots into "
                "the previous one; another panic= would override it (panic=0 never reboots)"
            )
    check_args(extra)


def check_args(args: Sequence[str]) -> None:
    """Refuse kernel arguments that could break out of the generated script."""
    for arg in args:
        if not _SAFE_ARG.fullmatch(arg):
            raise GrubError(
                f"kernel argument {arg!r} has characters the trial entry does not accept "
                "(letters, digits and _ . , : / = + @ % - only)"
            )


def trial_args(base: Sequence[str], extra: Sequence[str], panic_timeout: int) -> list[str]:
    """The regular entry's arguments, ``panic=`` replaced, ``extra`` appended."""
    if panic_timeout < 1:
        raise GrubError("the panic timeout must be at least 1 second (panic=N reboots)")
    check_extra_args(extra)
    kept = [arg for arg in base if not arg.startswith("panic=")]
    return [*kept, f"panic={panic_timeout}", *extra]


def render_trial_entry(
    entry: MenuEntry, release: str, extra: Sequence[str], panic_timeout: int
) -> str:
    """The trial ``menuentry`` for ``release`` (what the trial script prints).

    The entry is the regular one's body with the ``linux`` line's arguments replaced by
    :func:`trial_args`, under title ``damon-fleet trial <release>`` and id
    :data:`TRIAL_ID`, so ``grub-reboot damon-fleet-trial`` boots it exactly once.
    """
    check_release(release)
    if entry.kernel is None:
        raise GrubError(f"entry {entry.title!r} has no linux line")
    check_args(entry.args)
    args = trial_args(entry.args, extra, panic_timeout)
    body: list[str] = []
    for line in entry.body:
        if _LINUX.match(line):
            indent = line[: len(line) - len(line.lstrip())]
            command = line.split()[0]
            body.append(f"{indent}{command}\t{entry.kernel} {' '.join(args)}")
        else:
            body.append(line)
    title = f"{TRIAL_TITLE_PREFIX} {release}"
    return "\n".join(
        [f"menuentry '{title}' --class gnu-linux --class os --id {TRIAL_ID} {{", *body, "}", ""]
    )


def render_trial_script(
    entry: MenuEntry, release: str, extra: Sequence[str], panic_timeout: int
) -> str:
    """An ``/etc/grub.d`` script whose output is :func:`render_trial_entry`."""
    lines = [
        "#!/bin/sh",
        "# Generated by damon-fleet (role kernel_install): boots the new kernel once, with",
        f"# panic={panic_timeout} so a kernel that panics reboots into the saved default.",
        "# Removed when the rollout of this host ends.",
        "set -e",
        "cat <<'DAMON_FLEET_EOF'",
        render_trial_entry(entry, release, extra, panic_timeout).rstrip("\n"),
        "DAMON_FLEET_EOF",
        "",
    ]
    return "\n".join(lines)
