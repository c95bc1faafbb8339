#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: build the lab fleet's Debian root filesystem or GRUB-booted disk image."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_image
short_description: Build the lab fleet's Debian root filesystem or its GRUB-booted disk image
version_added: "0.1.0"
description:
  - V(rootfs) runs C(debootstrap --variant=minbase) for Debian bookworm with the lab
    packages (OpenSSH, Python, systemd, dbus, GRUB), writes the lab configuration files and
    an SSH key pair whose public half is root's only credential. Cached in
    C(<cache_dir>/rootfs-<key>/) by a hash of its inputs.
  - V(disk) copies that root filesystem, installs the kernel package(s), runs
    C(update-grub) (C(GRUB_DEFAULT=saved), no submenu, serial terminal), fills an ext4
    partition with C(mkfs.ext4 -d) and writes GRUB's boot sector and C(core.img) in front of
    it - a raw MBR disk C(<cache_dir>/disk-<key>/disk.img) that boots through GRUB. The key
    adds the sha256 of every kernel package. No loop device or mount is used.
  - Nothing is done when the cached result exists. Needs root (debootstrap, chroot).
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports whether the stage would be built and builds nothing.
  diff_mode:
    support: none
options:
  stage:
    description: Which stage to build.
    type: str
    choices: [rootfs, disk]
    required: true
  cache_dir:
    description: Directory holding the cached stages.
    type: path
    required: true
  mirror:
    description:
      - Debian mirror for debootstrap and the guest's apt sources. Empty - the first plain
        Debian mirror of this machine's apt sources, else deb.debian.org.
    type: str
    default: ""
  kernel_packages:
    description:
      - Kernel Debian packages (a C(bindeb-pkg) build's output) for V(disk); the
        C(linux-image-*) ones (without debug symbols) are installed.
    type: list
    elements: path
    default: []
  size_mb:
    description: Size of the disk in MiB (the ext4 partition takes all but the first MiB).
    type: int
    default: 3072
  timeout:
    description: Seconds debootstrap may take.
    type: int
    default: 1200
"""

EXAMPLES = r"""
- name: Build the root filesystem
  lab_image:
    stage: rootfs
    cache_dir: /root/.cache/damon-fleet/lab-images

- name: Build the disk with the lab kernel
  lab_image:
    stage: disk
    cache_dir: /root/.cache/damon-fleet/lab-images
    kernel_packages: "{{ kernel_build_result.packages }}"
"""

RETURN = r"""
key:
  description: The cache key of the stage.
  returned: always
  type: str
rootfs_key:
  description: The key of the root filesystem stage.
  returned: always
  type: str
rootfs:
  description: The cached root filesystem directory.
  returned: always
  type: str
ssh_key:
  description: Private key that logs in as root.
  returned: always
  type: str
disk:
  description: The disk image (raw, MBR, GRUB). Only for V(disk).
  returned: when stage is disk
  type: str
kernel_image:
  description:
    - A copy of the installed kernel image (for a KVM probe boot). Only for V(disk).
  returned: when stage is disk
  type: str
kernel_release:
  description: The release of the installed kernel. Only for V(disk).
  returned: when stage is disk
  type: str
grub_entries:
  description: Menu entry titles of the disk's grub.cfg.
  returned: when stage is disk
  type: list
  elements: str
seconds:
  description: Seconds the build took (0 when cached).
  returned: always
  type: float
"""

import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.image import (
    DEFAULT_MIRROR,
    DISK_FILES,
    FS_LABEL,
    FS_UUID,
    GRUB_CORE_MODULES,
    GRUB_PREFIX,
    GRUB_PROBE_STUB,
    LAB_GUEST_FILES,
    LAB_GUEST_SETUP,
    LAB_IMAGE_PACKAGES,
    MKFS_FEATURES,
    PARTITION_START,
    SECTOR,
    SUITE,
    LabImageError,
    boot_sector,
    check_core_size,
    disk_key,
    grub_entries,
    kernel_image_packages,
    mirror_from_sources,
    release_from_package,
    rootfs_key,
)

CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "DEBIAN_FRONTEND": "noninteractive",
}


class StageError(Exception):
    """A build step failed; the message names it and carries its output."""


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _host_mirror() -> str:
    sources: dict[str, str] = {}
    paths = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                sources[path] = handle.read()
        except OSError:
            continue
    return str(mirror_from_sources(sources) or DEFAULT_MIRROR)


class Builder:
    def __init__(self, module: AnsibleModule, log_path: str) -> None:
        self.module = module
        self.log_path = log_path

    def run(self, argv: list[str], env: dict[str, str] | None = None, **kw: Any) -> str:
        rc, out, err = self.module.run_command(argv, environ_update=env or {}, **kw)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(argv)}\n{out}{err}\n")
        if rc != 0:
            tail = "\n".join((out + err).splitlines()[-30:])
            raise StageError(f"{' '.join(argv)} failed ({rc}):\n{tail}")
        return str(out)

    def chroot(self, root: str, script: str) -> str:
        return self.run(["chroot", root, "sh", "-ec", script], env=CHROOT_ENV)


def _write_files(root: str, files: dict[str, str]) -> None:
    for rel, content in files.items():
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)  # resolv.conf may be a symlink
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(content)


def build_rootfs(builder: Builder, dest: str, mirror: str, timeout: int) -> None:
    key = os.path.join(dest, "id_ed25519")
    for stale in (key, key + ".pub"):
        if os.path.exists(stale):
            os.unlink(stale)
    builder.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "damon-fleet-lab", "-f", key])
    tmp_root = os.path.join(dest, "root.tmp")
    if os.path.exists(tmp_root):
        shutil.rmtree(tmp_root)
    builder.run(
        [
            "timeout",
            str(timeout),
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(LAB_IMAGE_PACKAGES),
            SUITE,
            tmp_root,
            mirror,
        ],
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    _write_files(tmp_root, LAB_GUEST_FILES)
    with open(os.path.join(tmp_root, "etc/apt/sources.list"), "w", encoding="utf-8") as handle:
        handle.write(f"deb {mirror} {SUITE} main\n")
    ssh_dir = os.path.join(tmp_root, "root/.ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    auth = os.path.join(ssh_dir, "authorized_keys")
    shutil.copyfile(key + ".pub", auth)
    os.chmod(auth, 0o600)
    builder.chroot(tmp_root, LAB_GUEST_SETUP)
    os.replace(tmp_root, os.path.join(dest, "root"))


def build_disk(
    builder: Builder, rootfs: str, dest: str, packages: list[str], size_mb: int
) -> tuple[str, list[str]]:
    """Build ``dest/disk.img``; return the kernel release and the GRUB entries."""
    work = tempfile.mkdtemp(prefix="disk-", dir=dest)
    try:
        root = os.path.join(work, "root")
        builder.run(["cp", "-a", "--reflink=auto", os.path.join(rootfs, "root"), root])
        probe = os.path.join(root, "usr/sbin/grub-probe")
        os.replace(probe, probe + ".lab-real")
        with open(probe, "w", encoding="utf-8") as handle:
            handle.write(GRUB_PROBE_STUB)
        os.chmod(probe, 0o755)
        debs_dir = os.path.join(root, "tmp/lab-kernel")
        os.makedirs(debs_dir)
        names = []
        for pkg in packages:
            shutil.copy(pkg, debs_dir)
            names.append("/tmp/lab-kernel/" + os.path.basename(pkg))
        builder.run(["chroot", root, "dpkg", "-i", *names], env=CHROOT_ENV)
        _write_files(root, DISK_FILES)
        shutil.rmtree(debs_dir)
        builder.chroot(
            root,
            "mkdir -p /boot/grub\n"
            "update-grub\n"
            "grub-editenv /boot/grub/grubenv create\n"
            "rm -rf /boot/grub/i386-pc\n"
            "cp -a /usr/lib/grub/i386-pc /boot/grub/i386-pc\n"
            f"grub-mkimage -O i386-pc -o /boot/grub/i386-pc/core.img -p '{GRUB_PREFIX}' "
            + " ".join(GRUB_CORE_MODULES)
            + "\n",
        )
        os.replace(probe + ".lab-real", probe)
        releases = [
            os.path.basename(p)[len("vmlinuz-") :]
            for p in sorted(glob.glob(os.path.join(root, "boot/vmlinuz-*")))
        ]
        with open(os.path.join(root, "boot/grub/grub.cfg"), encoding="utf-8") as handle:
            entries = grub_entries(handle.read())
        if not entries:
            raise StageError("update-grub made no menu entry (no kernel in /boot?)")
        with open(os.path.join(root, "usr/lib/grub/i386-pc/boot.img"), "rb") as handle:
            boot_img = handle.read()
        with open(os.path.join(root, "boot/grub/i386-pc/core.img"), "rb") as handle:
            core_img = handle.read()
        check_core_size(len(core_img))
        total = size_mb * 1024 * 1024 // SECTOR
        part_blocks = (total - PARTITION_START) * SECTOR // 4096
        tmp_disk = os.path.join(work, "disk.img")
        builder.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-b",
                "4096",
                "-L",
                FS_LABEL,
                "-U",
                FS_UUID,
                "-O",
                MKFS_FEATURES,
                "-E",
                f"offset={PARTITION_START * SECTOR}",
                "-d",
                root,
                tmp_disk,
                str(part_blocks),
            ]
        )
        with open(tmp_disk, "r+b") as handle:
            handle.truncate(total * SECTOR)
            handle.seek(0)
            handle.write(boot_sector(boot_img, total))
            handle.seek(SECTOR)
            handle.write(core_img)
        os.replace(tmp_disk, os.path.join(dest, "disk.img"))
        release = releases[-1] if releases else ""
        if release:
            shutil.copyfile(
                os.path.join(root, "boot", f"vmlinuz-{release}"), os.path.join(dest, "vmlinuz")
            )
        return release, entries
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "stage": {"type": "str", "choices": ["rootfs", "disk"], "required": True},
            "cache_dir": {"type": "path", "required": True},
            "mirror": {"type": "str", "default": ""},
            "kernel_packages": {"type": "list", "elements": "path", "default": []},
            "size_mb": {"type": "int", "default": 3072},
            "timeout": {"type": "int", "default": 1200},
        },
        supports_check_mode=True,
    )
    params = module.params
    cache_dir: str = params["cache_dir"]
    rkey = rootfs_key()
    rootfs = os.path.join(cache_dir, f"rootfs-{rkey}")
    result: dict[str, Any] = {
        "changed": False,
        "rootfs_key": rkey,
        "rootfs": rootfs,
        "ssh_key": os.path.join(rootfs, "id_ed25519"),
        "seconds": 0.0,
    }
    rootfs_done = os.path.join(rootfs, "rootfs.done")
    started = time.monotonic()
    try:
        if params["stage"] == "rootfs":
            result["key"] = rkey
            if os.path.isfile(rootfs_done):
                module.exit_json(**result)
            result["changed"] = True
            if module.check_mode:
                module.exit_json(**result)
            if os.geteuid() != 0:
                module.fail_json(msg="building the lab root filesystem needs root", **result)
            os.makedirs(rootfs, exist_ok=True)
            builder = Builder(module, os.path.join(rootfs, "build.log"))
            build_rootfs(builder, rootfs, params["mirror"] or _host_mirror(), params["timeout"])
            with open(rootfs_done, "w", encoding="utf-8") as handle:
                handle.write(f"{time.monotonic() - started:.1f}\n")
        else:
            if not os.path.isfile(rootfs_done):
                module.fail_json(msg=f"no root filesystem in {rootfs}: build stage rootfs first")
            packages = kernel_image_packages(params["kernel_packages"])
            if not packages:
                module.fail_json(
                    msg="no linux-image-*.deb among kernel_packages: "
                    + ", ".join(params["kernel_packages"])
                )
            missing = [p for p in packages if not os.path.isfile(p)]
            if missing:
                module.fail_json(msg="missing kernel package(s): " + ", ".join(missing))
            sums = {os.path.basename(p): _sha256_file(p) for p in packages}
            key = disk_key(rkey, sums, params["size_mb"])
            dest = os.path.join(cache_dir, f"disk-{key}")
            disk = os.path.join(dest, "disk.img")
            meta_path = os.path.join(dest, "disk.json")
            result.update(key=key, disk=disk, kernel_image=os.path.join(dest, "vmlinuz"))
            releases = [release_from_package(p) or "" for p in packages]
            if all(os.path.isfile(p) for p in (disk, meta_path, result["kernel_image"])):
                with open(meta_path, encoding="utf-8") as handle:
                    meta = json.load(handle)
                result.update(
                    kernel_release=meta.get("kernel_release", ""),
                    grub_entries=meta.get("grub_entries", []),
                )
                module.exit_json(**result)
            result["changed"] = True
            result["kernel_release"] = releases[-1]
            if module.check_mode:
                result["grub_entries"] = []
                module.exit_json(**result)
            os.makedirs(dest, exist_ok=True)
            builder = Builder(module, os.path.join(dest, "build.log"))
            release, entries = build_disk(builder, rootfs, dest, packages, params["size_mb"])
            result.update(kernel_release=release, grub_entries=entries)
            with open(meta_path, "w", encoding="utf-8") as handle:
                json.dump(
                    {
                        "kernel_release": release,
                        "grub_entries": entries,
                        "packages": sums,
                        "rootfs_key": rkey,
                    },
                    handle,
                    indent=2,
                    sort_keys=True,
                )
    except (StageError, LabImageError, OSError) as exc:
        module.fail_json(msg=f"lab_image {params['stage']}: {exc}", **result)
    result["seconds"] = round(time.monotonic() - started, 1)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
