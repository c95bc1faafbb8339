"""kexec trial boot: can this host kexec, and the ``kexec -l`` command line of a GRUB entry.

Pure functions only (no file or process I/O); used by the ``kernel_install_kexec``
module and the tests.

* :func:`kexec_blocker`: why a host cannot start a kernel with kexec, from what its
  kernel shows (``/sys/kernel/kexec_loaded``, ``/proc/sys/kernel/kexec_load_disabled``,
  ``/sys/kernel/security/lockdown``) and whether the ``kexec`` tool was found; None when
  it can;
* :func:`load_argv`: the argv of ``kexec -l`` for a kernel, its initrd and the trial
  entry's command line (``panic=N`` included), every value checked first;
* :func:`boot_paths`: where the files a GRUB entry names are on the running system (a
  separate ``/boot`` partition makes GRUB's ``/vmlinuz-<release>`` the system's
  ``/boot/vmlinuz-<release>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

#: The trial boot's methods: firmware (reboot, GRUB boots the trial entry once) or kexec.
BOOT_METHODS = ("firmware", "kexec")
#: An absolute path of a kernel or initrd file (no spaces, no option-like first character).
BOOT_FILE = re.compile(r"/[A-Za-z0-9_.+~@/-]{1,254}")
#: One kernel argument of the command line kexec passes (as GRUB's trial entry accepts).
KERNEL_ARG = re.compile(r"[A-Za-z0-9_.,:/=+@%-]+")
#: Lockdown modes that refuse kexec_load (the unsigned load kexec -l does).
LOCKDOWN_BLOCKS = ("integrity", "confidentiality")
#: Codes of :func:`kexec_blocker`.
BLOCKERS = ("no_kexec", "disabled", "lockdown", "no_tool")


class KexecError(ValueError):
    """A kexec request that cannot be used; the message says why."""


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def lockdown_mode(text: str | None) -> str | None:
    """The selected mode of ``/sys/kernel/security/lockdown`` (``none [integrity]
    confidentiality`` -> ``integrity``); None when the file is absent or shows none."""
    if text is None:
        return None
    match = re.search(r"\[([a-z]+)\]", text)
    return match.group(1) if match else None


def kexec_blocker(
    kexec_loaded: str | None,
    load_disabled: str | None,
    lockdown: str | None,
    kexec_tool: str | None,
) -> tuple[str, str] | None:
    """(code, reason) of what keeps kexec from starting a kernel on this host, or None.

    *kexec_loaded* is the text of ``/sys/kernel/kexec_loaded`` (None: the file is missing,
    the kernel was built without kexec), *load_disabled* of
    ``/proc/sys/kernel/kexec_load_disabled`` (None: missing), *lockdown* of
    ``/sys/kernel/security/lockdown`` (None: missing), *kexec_tool* the path of the
    ``kexec`` program (None: not installed). The first blocker found counts; its code is
    one of :data:`BLOCKERS` (only ``no_tool`` can be cured, by installing kexec-tools).
    """
    if kexec_loaded is None:
        return (
            "no_kexec",
            "the running kernel has no kexec support (/sys/kernel/kexec_loaded is missing)",
        )
    if load_disabled is not None and load_disabled.strip() not in ("", "0"):
        return "disabled", "kexec is disabled (/proc/sys/kernel/kexec_load_disabled is 1)"
    mode = lockdown_mode(lockdown)
    if mode in LOCKDOWN_BLOCKS:
        return "lockdown", f"kernel lockdown ({mode}, e.g. Secure Boot) forbids kexec_load"
    if not kexec_tool:
        return "no_tool", "the kexec program (kexec-tools) is not installed"
    return None


def check_boot_file(what: str, path: object) -> str:
    """Refuse a kernel or initrd path that could be read as an option or break argv."""
    if not isinstance(path, str) or not BOOT_FILE.fullmatch(path) or "/../" in f"{path}/":
        raise KexecError(
            f"{what}: {_shown(path)} is not accepted (an absolute path of letters, digits "
            "and _ . + ~ @ / -, without '..', at most 255 characters)"
        )
    return path


def check_cmdline(args: Sequence[object]) -> list[str]:
    """The kernel arguments, each checked; a KexecError names the first bad one."""
    out: list[str] = []
    for arg in args:
        if not isinstance(arg, str) or not KERNEL_ARG.fullmatch(arg):
            raise KexecError(
                f"cmdline: kernel argument {_shown(arg)} is not accepted (letters, digits "
                "and _ . , : / = + @ % - only)"
            )
        out.append(arg)
    if not any(arg.startswith("panic=") for arg in out):
        raise KexecError(
            "cmdline: has no panic=N; without it a trial kernel that panics would never "
            "reboot into the previous kernel"
        )
    return out


def load_argv(kexec: str, kernel: str, initrd: str | None, cmdline: Sequence[object]) -> list[str]:
    """``kexec -l`` of *kernel* with *initrd* (None: none) and *cmdline*.

    Options first, then ``--`` and the kernel, so no value is read as an option.
    """
    check_boot_file("kexec", kexec)
    check_boot_file("kernel", kernel)
    args = check_cmdline(cmdline)
    argv = [kexec, "-l", f"--command-line={' '.join(args)}"]
    if initrd is not None:
        argv.append(f"--initrd={check_boot_file('initrd', initrd)}")
    return [*argv, "--", kernel]


def boot_paths(grub_path: str, exists: Callable[[str], bool]) -> str:
    """The running system's path of a file a GRUB entry names (*grub_path* is relative to
    the partition GRUB reads it from): itself when it exists, else under ``/boot`` (a
    separate boot partition). KexecError when neither exists."""
    check_boot_file("kernel or initrd", grub_path)
    for candidate in (grub_path, "/boot" + grub_path):
        if exists(candidate):
            return candidate
    raise KexecError(
        f"{grub_path} (from the trial entry) is neither at {grub_path} nor at /boot{grub_path}"
    )
