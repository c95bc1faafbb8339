"""kexec trial boot: the blockers, the ``kexec -l`` argv, and the ``kernel_install_kexec``
module against a kernel-like sysfs and a kexec program that behaves like the real one
(loading sets ``/sys/kernel/kexec_loaded`` to 1, ``-u`` back to 0)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import kernel_install_kexec
import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.kexec_boot import (
    KexecError,
    boot_paths,
    kexec_blocker,
    load_argv,
    lockdown_mode,
)

from tests.unit.module_harness import run_module

REL = "6.12.117-lab-perf-events-abi-0c853a0d"
ARGS = ["root=/dev/vda1", "ro", "console=ttyS0,115200", "net.ifnames=0", "panic=10"]


# ------------------------------------------------------------------------------- blockers


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("[none] integrity confidentiality\n", "none"),
        ("none [integrity] confidentiality\n", "integrity"),
        ("none integrity [confidentiality]\n", "confidentiality"),
        (None, None),
        ("", None),
    ],
)
def test_lockdown_mode_reads_the_selected_mode(text, mode):
    assert lockdown_mode(text) == mode


@pytest.mark.parametrize(
    ("loaded", "disabled", "lockdown", "tool", "expected"),
    [
        ("0\n", "0\n", "[none] integrity confidentiality\n", "/usr/sbin/kexec", None),
        ("0\n", None, None, "/usr/sbin/kexec", None),
        (
            None,
            "0\n",
            None,
            "/usr/sbin/kexec",
            (
                "no_kexec",
                "the running kernel has no kexec support (/sys/kernel/kexec_loaded is missing)",
            ),
        ),
        (
            "0\n",
            "1\n",
            None,
            "/usr/sbin/kexec",
            ("disabled", "kexec is disabled (/proc/sys/kernel/kexec_load_disabled is 1)"),
        ),
        (
            "0\n",
            "0\n",
            "none [integrity] confidentiality\n",
            "/usr/sbin/kexec",
            ("lockdown", "kernel lockdown (integrity, e.g. Secure Boot) forbids kexec_load"),
        ),
        (
            "0\n",
            "0\n",
            "none integrity [confidentiality]\n",
            None,
            (
                "lockdown",
                "kernel lockdown (confidentiality, e.g. Secure Boot) forbids kexec_load",
            ),
        ),
        (
            "0\n",
            "0\n",
            "[none] integrity confidentiality\n",
            None,
            ("no_tool", "the kexec program (kexec-tools) is not installed"),
        ),
    ],
)
def test_the_first_blocker_counts(loaded, disabled, lockdown, tool, expected):
    assert kexec_blocker(loaded, disabled, lockdown, tool) == expected


# ---------------------------------------------------------------------------------- argv


def test_load_argv_puts_options_first_and_the_kernel_after_double_dash():
    argv = load_argv("/usr/sbin/kexec", f"/boot/vmlinuz-{REL}", f"/boot/initrd.img-{REL}", ARGS)
    assert argv == [
        "/usr/sbin/kexec",
        "-l",
        "--command-line=root=/dev/vda1 ro console=ttyS0,115200 net.ifnames=0 panic=10",
        f"--initrd=/boot/initrd.img-{REL}",
        "--",
        f"/boot/vmlinuz-{REL}",
    ]


def test_load_argv_without_initrd():
    argv = load_argv("/sbin/kexec", f"/boot/vmlinuz-{REL}", None, ["ro", "panic=5"])
    assert argv == ["/sbin/kexec", "-l", "--command-line=ro panic=5", "--", f"/boot/vmlinuz-{REL}"]


@pytest.mark.parametrize(
    ("kernel", "initrd", "args", "message"),
    [
        (
            "vmlinuz",
            None,
            ARGS,
            "kernel: 'vmlinuz' is not accepted (an absolute path of letters, digits and "
            "_ . + ~ @ / -, without '..', at most 255 characters)",
        ),
        (
            "/boot/../etc/shadow",
            None,
            ARGS,
            "kernel: '/boot/../etc/shadow' is not accepted (an absolute path of letters, "
            "digits and _ . + ~ @ / -, without '..', at most 255 characters)",
        ),
        (
            "/boot/vmlinuz",
            "/boot/initrd img",
            ARGS,
            "initrd: '/boot/initrd img' is not accepted (an absolute path of letters, "
            "digits and _ . + ~ @ / -, without '..', at most 255 characters)",
        ),
        (
            "/boot/vmlinuz",
            None,
            ["ro", "init=/bin/sh;reboot", "panic=5"],
            "cmdline: kernel argument 'init=/bin/sh;reboot' is not accepted (letters, digits "
            "and _ . , : / = + @ % - only)",
        ),
        (
            "/boot/vmlinuz",
            None,
            ["ro", "quiet"],
            "cmdline: has no panic=N; without it a trial kernel that panics would never "
            "reboot into the previous kernel",
        ),
    ],
)
def test_bad_values_are_refused_before_kexec_runs(kernel, initrd, args, message):
    with pytest.raises(KexecError) as caught:
        load_argv("/usr/sbin/kexec", kernel, initrd, args)
    assert str(caught.value) == message


def test_boot_paths_looks_under_boot_for_a_separate_boot_partition():
    present = {f"/boot/vmlinuz-{REL}"}
    assert boot_paths(f"/boot/vmlinuz-{REL}", present.__contains__) == f"/boot/vmlinuz-{REL}"
    assert boot_paths(f"/vmlinuz-{REL}", present.__contains__) == f"/boot/vmlinuz-{REL}"
    with pytest.raises(KexecError) as caught:
        boot_paths("/vmlinuz-1.0", present.__contains__)
    assert str(caught.value) == (
        "/vmlinuz-1.0 (from the trial entry) is neither at /vmlinuz-1.0 nor at /boot/vmlinuz-1.0"
    )


# -------------------------------------------------------------------------------- module

FAKE_KEXEC = """#!/bin/sh
# Behaves like kexec-tools' kexec for -l and -u: the kernel's kexec_loaded follows.
echo "$@" >> "{log}"
case "$1" in
  -l) for last; do :; done
      [ -f "$last" ] || {{ echo "Cannot open \\`$last': No such file or directory" >&2; exit 1; }}
      echo 1 > "{loaded}" ;;
  -u) echo 0 > "{loaded}" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host with kexec in its kernel, no lockdown, a trial entry in grub.cfg and (when
    the test asks) a kexec program."""
    sysfs = tmp_path / "sys"
    sysfs.mkdir()
    loaded = sysfs / "kexec_loaded"
    loaded.write_text("0\n")
    disabled = sysfs / "kexec_load_disabled"
    disabled.write_text("0\n")
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / f"vmlinuz-{REL}").write_bytes(b"MZ")
    grub = tmp_path / "grub.cfg"
    grub.write_text(
        "### BEGIN /etc/grub.d/42_damon_fleet_trial ###\n"
        f"menuentry 'damon-fleet trial {REL}' --class gnu-linux --id damon-fleet-trial {{\n"
        "\tinsmod ext2\n"
        f"\tlinux\t{boot}/vmlinuz-{REL} root=/dev/vda1 ro console=ttyS0,115200 panic=5 "
        "init=/nonexistent\n"
        "}\n"
        "### END /etc/grub.d/42_damon_fleet_trial ###\n"
    )
    monkeypatch.setattr(kernel_install_kexec, "KEXEC_LOADED", str(loaded))
    monkeypatch.setattr(kernel_install_kexec, "LOAD_DISABLED", str(disabled))
    monkeypatch.setattr(kernel_install_kexec, "LOCKDOWN", str(sysfs / "lockdown"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    return {"tmp": tmp_path, "loaded": loaded, "grub": grub, "bin": bindir, "boot": boot}


def install_kexec(host) -> Path:
    log = host["tmp"] / "kexec.log"
    program = host["bin"] / "kexec"
    program.write_text(FAKE_KEXEC.format(log=log, loaded=host["loaded"]))
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return log


def test_probe_without_the_program_names_kexec_tools(host):
    done = run_module(kernel_install_kexec.main, {"action": "probe"})
    assert not done.failed
    assert done.result["possible"] is False
    assert done.result["blocker"] == "no_tool"
    assert done.result["reason"] == "the kexec program (kexec-tools) is not installed"
    assert done.result["loaded"] is False


def test_load_runs_kexec_with_the_trial_entry_and_unload_undoes_it(host):
    log = install_kexec(host)
    done = run_module(kernel_install_kexec.main, {"action": "load", "grub_cfg": str(host["grub"])})
    assert not done.failed, done.result
    kernel = f"{host['boot']}/vmlinuz-{REL}"
    assert done.result["argv"] == [
        str(host["bin"] / "kexec"),
        "-l",
        "--command-line=root=/dev/vda1 ro console=ttyS0,115200 panic=5 init=/nonexistent",
        "--",
        kernel,
    ]
    assert done.result["changed"] is True and done.result["loaded"] is True
    assert host["loaded"].read_text() == "1\n"
    again = run_module(kernel_install_kexec.main, {"action": "unload"})
    assert again.result["changed"] is True and again.result["loaded"] is False
    assert host["loaded"].read_text() == "0\n"
    nothing = run_module(kernel_install_kexec.main, {"action": "unload"})
    assert nothing.result["changed"] is False
    assert log.read_text().splitlines() == [
        "-l --command-line=root=/dev/vda1 ro console=ttyS0,115200 panic=5 init=/nonexistent "
        f"-- {kernel}",
        "-u",
    ]


def test_load_of_a_missing_image_fails_with_kexecs_words(host):
    install_kexec(host)
    os.unlink(host["boot"] / f"vmlinuz-{REL}")
    done = run_module(kernel_install_kexec.main, {"action": "load", "grub_cfg": str(host["grub"])})
    assert done.failed
    kernel = f"{host['boot']}/vmlinuz-{REL}"
    assert done.result["msg"] == (
        f"kernel_install_kexec (load): {kernel} (from the trial entry) is neither at "
        f"{kernel} nor at /boot{kernel}"
    )
    assert host["loaded"].read_text() == "0\n"


def test_load_where_kexec_is_disabled_fails_and_runs_nothing(host):
    log = install_kexec(host)
    Path(kernel_install_kexec.LOAD_DISABLED).write_text("1\n")
    done = run_module(kernel_install_kexec.main, {"action": "load", "grub_cfg": str(host["grub"])})
    assert done.failed
    assert done.result["msg"] == (
        "kernel_install_kexec (load): cannot kexec: kexec is disabled "
        "(/proc/sys/kernel/kexec_load_disabled is 1)"
    )
    assert done.result["blocker"] == "disabled"
    assert not log.exists()


def test_load_without_a_trial_entry_fails(host):
    install_kexec(host)
    host["grub"].write_text("menuentry 'Debian' --id gnulinux-simple {\n}\n")
    done = run_module(kernel_install_kexec.main, {"action": "load", "grub_cfg": str(host["grub"])})
    assert done.failed
    assert done.result["msg"] == (
        f"kernel_install_kexec (load): {host['grub']} has no entry damon-fleet-trial "
        "with a linux line"
    )


def test_check_mode_load_runs_nothing(host):
    log = install_kexec(host)
    done = run_module(
        kernel_install_kexec.main,
        {"action": "load", "grub_cfg": str(host["grub"]), "_ansible_check_mode": True},
    )
    assert not done.failed
    assert done.result["changed"] is True and done.result["loaded"] is False
    assert not log.exists()
