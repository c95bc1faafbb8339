"""Lab fleet helpers (QEMU argv, ports, pidfiles, state, image layout) and module main()s."""

from __future__ import annotations

import os
import shlex
import socket
import stat
import struct
from pathlib import Path
from unittest import mock

import lab_accel
import lab_image
import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.image import (
    DISK_FILES,
    FS_UUID,
    GRUB_PROBE_STUB,
    LAB_GUEST_FILES,
    PARTITION_START,
    LabImageError,
    boot_sector,
    check_core_size,
    disk_key,
    grub_entries,
    kernel_image_packages,
    mbr,
    mirror_from_sources,
    release_from_package,
    rootfs_key,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import (
    LabQemuError,
    VmSpec,
    VmState,
    choose_accel,
    choose_port,
    cmdline_is_vm,
    format_table,
    free_port,
    kvm_probe_argv,
    kvm_probe_ok,
    list_vms,
    parse_pidfile,
    parse_state,
    port_in_use,
    qemu_argv,
    running_pid,
    ssh_common_args,
    vm_names,
    vm_status,
)
from module_harness import run_module

# --------------------------------------------------------------------------- qemu argv


def _spec(tmp_path: Path, **kw) -> VmSpec:
    base = {"name": "lab1", "directory": str(tmp_path / "lab1"), "ssh_port": 2222}
    return VmSpec(**{**base, **kw})


def test_qemu_argv_boots_the_overlay_through_grub(tmp_path):
    argv = qemu_argv(_spec(tmp_path))
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-kernel" not in argv  # the disk's own GRUB boots it
    assert "-no-reboot" not in argv  # guest reboots reset the machine
    assert argv[-1] == "-daemonize"
    assert f"file={tmp_path}/lab1/disk.qcow2,if=virtio,format=qcow2" in joined
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in joined
    assert argv[argv.index("-serial") + 1] == f"file:{tmp_path}/lab1/console.log"
    assert argv[argv.index("-pidfile") + 1] == f"{tmp_path}/lab1/qemu.pid"
    assert argv[argv.index("-accel") + 1] == "tcg,tb-size=256"
    assert "-cpu" not in argv


def test_qemu_argv_kvm_and_foreground(tmp_path):
    argv = qemu_argv(_spec(tmp_path, accel="kvm", cpus=4, memory_mb=2048), daemonize=False)
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"
    assert argv[argv.index("-smp") + 1] == "4"
    assert argv[argv.index("-m") + 1] == "2048"
    assert "-daemonize" not in argv


@pytest.mark.parametrize(
    "kw",
    [
        {"name": "Lab1"},
        {"name": "lab 1"},
        {"accel": "hvf"},
        {"ssh_port": 0},
        {"ssh_port": 70000},
        {"memory_mb": 64},
        {"cpus": 0},
        {"directory": "/tmp/a,b"},
    ],
)
def test_qemu_argv_refuses_bad_specs(tmp_path, kw):
    with pytest.raises(LabQemuError):
        qemu_argv(_spec(tmp_path, **kw))


def test_vm_names():
    assert vm_names(3) == ["lab1", "lab2", "lab3"]
    assert vm_names(0) == []
    assert vm_names(1, "node") == ["node1"]
    with pytest.raises(LabQemuError):
        vm_names(-1)
    with pytest.raises(LabQemuError):
        vm_names(1, "Bad_")


def test_kvm_probe_argv_and_markers(tmp_path):
    fw = kvm_probe_argv(str(tmp_path / "out"))
    assert "isa-debugcon,iobase=0x402,chardev=dbg" in fw
    assert "-no-reboot" in fw
    kernel = kvm_probe_argv(str(tmp_path / "out"), kernel="/k/vmlinuz")
    assert kernel[kernel.index("-kernel") + 1] == "/k/vmlinuz"
    assert "panic=-1" in kernel[kernel.index("-append") + 1]
    assert kvm_probe_ok("SeaBIOS (version 1.16)")
    assert not kvm_probe_ok("")
    assert not kvm_probe_ok("SeaBIOS (version 1.16)", kernel=True)
    assert kvm_probe_ok("[1.7] Kernel panic - not syncing: VFS: Unable", kernel=True)


@pytest.mark.parametrize(
    ("requested", "usable", "expected"),
    [("auto", True, "kvm"), ("auto", False, "tcg"), ("auto", None, "tcg"), ("tcg", True, "tcg")],
)
def test_choose_accel(requested, usable, expected):
    assert choose_accel(requested, usable) == expected


def test_choose_accel_refuses_unknown():
    with pytest.raises(LabQemuError):
        choose_accel("xen", True)


def test_ssh_common_args():
    args = ssh_common_args()
    assert "-o StrictHostKeyChecking=no" in args
    assert "-o UserKnownHostsFile=/dev/null" in args


# --------------------------------------------------------------------------- ports


def test_ports():
    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_in_use(port)
        assert choose_port(port) != port
    assert choose_port(port) == port
    assert choose_port(port, taken=[port]) != port
    assert choose_port(0) > 0


# --------------------------------------------------------------------------- pids, state


@pytest.mark.parametrize(
    ("text", "pid"), [("1234\n", 1234), ("", None), ("abc", None), ("0", None), (" 7 ", 7)]
)
def test_parse_pidfile(text, pid):
    assert parse_pidfile(text) == pid


def test_cmdline_is_vm():
    good = b"qemu-system-x86_64\0-m\x001024\0-pidfile\0/s/lab1/qemu.pid\0-daemonize\0"
    assert cmdline_is_vm(good, "/s/lab1/qemu.pid")
    assert not cmdline_is_vm(good, "/s/lab2/qemu.pid")
    assert not cmdline_is_vm(b"bash\0-pidfile\0/s/lab1/qemu.pid\0", "/s/lab1/qemu.pid")
    assert not cmdline_is_vm(b"", "/s/lab1/qemu.pid")


def test_running_pid_checks_the_process(tmp_path):
    proc_root = tmp_path / "proc"
    pidfile = str(tmp_path / "qemu.pid")
    assert running_pid(pidfile, str(proc_root)) is None
    Path(pidfile).write_text("4242\n")
    assert running_pid(pidfile, str(proc_root)) is None  # no such process
    (proc_root / "4242").mkdir(parents=True)
    (proc_root / "4242" / "cmdline").write_bytes(
        b"qemu-system-x86_64\0-pidfile\0" + pidfile.encode()
    )
    (proc_root / "4242" / "stat").write_text("4242 (qemu-system-x86) S 1 ...")
    assert running_pid(pidfile, str(proc_root)) == 4242
    (proc_root / "4242" / "stat").write_text("4242 (qemu-system-x86) Z 1 ...")
    assert running_pid(pidfile, str(proc_root)) is None  # exited, not reaped
    (proc_root / "4242" / "stat").write_text("4242 (sleep) S 1 ...")
    (proc_root / "4242" / "cmdline").write_bytes(b"sleep\x00100\0")
    assert running_pid(pidfile, str(proc_root)) is None  # pid reused


def test_state_round_trip_and_garbage():
    state = VmState(name="lab1", ssh_port=2222, pid=5, accel="tcg", argv=["q"])
    assert parse_state(state.to_json(), "lab1") == state
    assert parse_state("{not json", "lab1") == VmState(name="lab1")
    assert parse_state("[1]", "lab1") == VmState(name="lab1")
    assert parse_state('{"ssh_port": "x", "future": 1}', "lab1").ssh_port == 0
    assert parse_state('{"name": "other", "ssh_port": 1}', "lab1").name == "lab1"


def test_list_vms_and_status(tmp_path):
    for name in ("lab10", "lab2", "lab1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "vm.json").write_text(VmState(name=name, ssh_port=1).to_json())
    (tmp_path / "junk").mkdir()  # no vm.json
    (tmp_path / "fleet.json").write_text("{}")
    assert list_vms(str(tmp_path)) == ["lab1", "lab2", "lab10"]
    assert list_vms(str(tmp_path / "missing")) == []
    status = vm_status(str(tmp_path), "lab1")
    assert status["state"] == "stopped"
    assert status["pid"] is None
    assert status["ssh_port"] == 1


def test_format_table():
    rows = [{"name": "lab1", "pid": 12, "kernel": None}, {"name": "lab10", "pid": None}]
    text = format_table(rows, ("name", "pid", "kernel"))
    assert text.splitlines() == ["NAME   PID  KERNEL", "lab1   12   -", "lab10  -    -"]


# --------------------------------------------------------------------------- image layout


def test_mbr_partition_table():
    total = 3072 * 2048
    tail = mbr(total)
    assert len(tail) == 72
    signature, _zero = struct.unpack_from("<IH", tail)
    assert signature != 0
    status, ptype, start, count = (tail[6], tail[10], *struct.unpack_from("<II", tail, 14))
    assert (status, ptype) == (0x80, 0x83)
    assert (start, count) == (PARTITION_START, total - PARTITION_START)
    assert tail[22:70] == bytes(48)
    assert tail[-2:] == b"\x55\xaa"
    with pytest.raises(LabImageError):
        mbr(PARTITION_START)


def test_boot_sector_keeps_grub_code_and_adds_the_table():
    boot = bytes(range(256)) * 2
    sector = boot_sector(boot, 4096)
    assert len(sector) == 512
    assert sector[:440] == boot[:440]
    assert sector[440:] == mbr(4096)
    with pytest.raises(LabImageError):
        boot_sector(b"short", 4096)


def test_core_img_must_fit_the_gap():
    check_core_size(40 * 1024)
    with pytest.raises(LabImageError):
        check_core_size(PARTITION_START * 512)


def test_keys_follow_their_inputs():
    key = rootfs_key()
    assert key == rootfs_key()
    assert key != rootfs_key(packages=("openssh-server",))
    assert key != rootfs_key(files={**LAB_GUEST_FILES, "etc/hostname": "x\n"})
    assert key == rootfs_key(files=LAB_GUEST_FILES)  # GRUB settings are in the disk stage
    disk = disk_key(key, {"linux-image-a.deb": "00"}, 3072)
    assert disk != disk_key(key, {"linux-image-a.deb": "01"}, 3072)
    assert disk != disk_key(key, {"linux-image-a.deb": "00"}, 4096)
    assert disk != disk_key("other", {"linux-image-a.deb": "00"}, 3072)


def test_guest_grub_defaults():
    grub = DISK_FILES["etc/default/grub"]
    for line in (
        "GRUB_DEFAULT=saved",
        "GRUB_TIMEOUT=1",
        "GRUB_DISABLE_SUBMENU=y",
        "GRUB_TERMINAL=serial",
    ):
        assert line in grub.splitlines()
    assert "console=ttyS0" in grub
    assert LAB_GUEST_FILES["etc/fstab"].split("\n")[1].startswith("/dev/vda1\t/\text4")


def test_grub_probe_stub(tmp_path):
    stub = tmp_path / "grub-probe"
    stub.write_text(GRUB_PROBE_STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)

    def probe(*args: str) -> str:
        return os.popen(shlex.join([str(stub), *args])).read().strip()

    assert probe("--target=device", "/") == "/dev/vda1"
    assert probe("--device", "/dev/vda1", "--target=fs_uuid") == FS_UUID
    assert probe("-t", "fs", "/boot") == "ext2"
    assert probe("--target=abstraction", "/") == ""
    assert probe("--target=nonsense", "/") == ""


def test_kernel_packages_and_release():
    debs = [
        "/b/linux-headers-6.12.1-lab-1_6.12.1-1_amd64.deb",
        "/b/linux-image-6.12.1-lab-1_6.12.1-1_amd64.deb",
        "/b/linux-image-6.12.1-lab-1-dbg_6.12.1-1_amd64.deb",
        "/b/linux-libc-dev_6.12.1-1_amd64.deb",
    ]
    assert kernel_image_packages(debs) == ["/b/linux-image-6.12.1-lab-1_6.12.1-1_amd64.deb"]
    assert release_from_package(debs[1]) == "6.12.1-lab-1"
    assert release_from_package("kernel.rpm") is None


def test_grub_entries():
    cfg = (
        "menuentry 'Debian GNU/Linux, with Linux 6.12.1-lab' --class debian {\n}\n"
        "  menuentry 'nested' {\n}\n"
        "menuentry 'Debian GNU/Linux, with Linux 6.12.1-rfc' --class debian {\n}\n"
    )
    assert grub_entries(cfg) == [
        "Debian GNU/Linux, with Linux 6.12.1-lab",
        "Debian GNU/Linux, with Linux 6.12.1-rfc",
    ]


def test_mirror_from_sources():
    sources = {
        "/etc/apt/sources.list.d/google.list": "deb https://packages.example/apt sdk main\n",
        "/etc/apt/sources.list.d/debian.sources": (
            "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm "
            "bookworm-updates\nComponents: main\n\n"
            "Types: deb\nURIs: http://mirror.example/debian-security\n"
            "Suites: bookworm-security\n"
        ),
    }
    assert mirror_from_sources(sources) == "http://mirror.example/debian"
    assert mirror_from_sources({"/x.list": "deb file:/srv/debian bookworm main\n"}) is None
    assert mirror_from_sources({}) is None


# --------------------------------------------------------------------------- modules


def test_lab_accel_as_requested_and_without_kvm():
    done = run_module(lab_accel.main, {"accel": "tcg"})
    assert done.result["accel"] == "tcg"
    with mock.patch.object(lab_accel.os, "access", return_value=False):
        probed = run_module(lab_accel.main, {"accel": "auto"})
    assert probed.result["accel"] == "tcg"
    assert "/dev/kvm" in probed.result["reason"]


def test_lab_image_check_mode_and_missing_rootfs(tmp_path):
    check = run_module(
        lab_image.main,
        {"stage": "rootfs", "cache_dir": str(tmp_path), "_ansible_check_mode": True},
    )
    assert check.result["changed"]
    assert check.result["key"] == rootfs_key()
    assert list(tmp_path.iterdir()) == []
    disk = run_module(lab_image.main, {"stage": "disk", "cache_dir": str(tmp_path)})
    assert disk.failed
    assert "rootfs first" in disk.result["msg"]


def test_lab_image_disk_needs_a_kernel_image_package(tmp_path):
    rootfs = tmp_path / f"rootfs-{rootfs_key()}"
    rootfs.mkdir()
    (rootfs / "rootfs.done").write_text("1\n")
    headers = tmp_path / "linux-headers-6.12.1_1_amd64.deb"
    headers.write_bytes(b"x")
    done = run_module(
        lab_image.main,
        {"stage": "disk", "cache_dir": str(tmp_path), "kernel_packages": [str(headers)]},
    )
    assert done.failed
    assert "linux-image" in done.result["msg"]
