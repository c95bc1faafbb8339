# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab disk image: what goes into it, how it is keyed, and its boot sector layout.

Two cached stages, each keyed by a hash of its inputs:

* **rootfs** -- ``debootstrap --variant=minbase`` of Debian bookworm with
  :data:`LAB_IMAGE_PACKAGES`, the files of :data:`GUEST_FILES` and an SSH key pair whose
  public half is root's only credential.
* **disk** -- a copy of the rootfs with the lab kernel's Debian package(s) installed,
  ``update-grub`` run, filled into an ext4 partition of an MBR disk whose boot sector and
  embedding area carry GRUB (``boot.img`` + a ``core.img`` made by ``grub-mkimage``).
  The key adds the sha256 of every kernel package.

Pure functions only; the ``lab_image`` module runs the commands.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

#: The base packages of the lab root filesystem (:data:`LAB_IMAGE_PACKAGES` adds GRUB and
#: kexec-tools).
IMAGE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "python3",
    "systemd-sysv",
    "dbus",
    "udev",
    "iproute2",
    "procps",
    "kmod",
    "ca-certificates",
)

#: The lab fleet's disk adds GRUB (update-grub, grub-reboot, grub-editenv) and kexec-tools
#: (the kexec trial boot, kernel_install_boot_method: kexec; see :data:`KEXEC_SETUP`).
LAB_IMAGE_PACKAGES: tuple[str, ...] = (*IMAGE_PACKAGES, "grub-pc", "kexec-tools")

#: Files written into the guest root filesystem (path -> content; :data:`LAB_GUEST_FILES`
#: adds the fstab).  Part of the image keys, so editing any of them rebuilds the images.
GUEST_FILES: dict[str, str] = {
    "etc/hostname": "damon-lab\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tdamon-lab\n::1\tlocalhost ip6-localhost\n",
    # QEMU user-mode networking: DHCP on whatever the NIC is called.
    "etc/systemd/network/20-lab-dhcp.network": (
        "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n\n[DHCPv4]\nUseDomains=no\n"
    ),
    # slirp's DNS forwarder; no resolved in a minbase image.
    "etc/resolv.conf": "nameserver 10.0.2.3\n",
    "etc/ssh/sshd_config.d/lab.conf": (
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUseDNS no\n"
    ),
    # Do not wait for every link before multi-user: sshd only needs 10.0.2.15.
    "etc/systemd/system/systemd-networkd-wait-online.service.d/lab.conf": (
        "[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any "
        "--timeout=20\n"
    ),
    "etc/systemd/journald.conf.d/lab.conf": "[Journal]\nStorage=volatile\nForwardToConsole=no\n",
    "etc/profile.d/lab.sh": "export LC_ALL=C.UTF-8\n",
}

#: Shell run inside the chroot after debootstrap (by ``chroot ROOT sh -ec``).
GUEST_SETUP = r"""
systemctl enable systemd-networkd.service
systemctl enable serial-getty@ttyS0.service
systemctl set-default multi-user.target
passwd -l root
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
"""

# --------------------------------------------------------------------------- lab disk

#: Bump when the recipe changes in a way the keys cannot see.
ROOTFS_RECIPE = "lab-rootfs-1"
DISK_RECIPE = "lab-disk-1"

ROOT_DEVICE = "/dev/vda1"
FS_LABEL = "damon-lab"
#: Fixed identities, so the GRUB configuration made at build time names them.
FS_UUID = "5d2a6f3e-1d7b-4c1e-9a53-6c616264616d"
DISK_SIGNATURE = 0xDA3011AB
SECTOR = 512
PARTITION_START = 2048  # sectors: 1 MiB, room for GRUB's core.img
GRUB_PREFIX = "(hd0,msdos1)/boot/grub"
GRUB_CORE_MODULES: tuple[str, ...] = ("biosdisk", "part_msdos", "ext2")
#: Kernel arguments every boot entry gets (GRUB adds ``root=`` and ``ro``).
#: ``systemd.show_status=auto``: the console shows only units that fail or hang.
KERNEL_ARGS = "console=ttyS0,115200 net.ifnames=0 loglevel=4 systemd.show_status=auto"
#: ext4 features GRUB 2.06 cannot read are switched off explicitly.
MKFS_FEATURES = "^metadata_csum_seed,^orphan_file"

LAB_GUEST_FILES: dict[str, str] = {
    **GUEST_FILES,
    "etc/fstab": (
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        f"{ROOT_DEVICE}\t/\text4\trw,relatime,errors=remount-ro\t0\t0\n"
        "tmpfs\t/tmp\ttmpfs\tnosuid,nodev\t0\t0\n"
    ),
}

#: Files the disk stage writes before ``update-grub``: entries addressable by title (no
#: submenu), the saved entry as default (what grub-set-default and grub-reboot write), a
#: short menu on the serial console.
DISK_FILES: dict[str, str] = {
    "etc/default/grub": (
        "GRUB_DEFAULT=saved\n"
        "GRUB_SAVEDEFAULT=false\n"
        "GRUB_TIMEOUT=1\n"
        "GRUB_TIMEOUT_STYLE=menu\n"
        "GRUB_DISTRIBUTOR=Debian\n"
        'GRUB_CMDLINE_LINUX_DEFAULT=""\n'
        f'GRUB_CMDLINE_LINUX="{KERNEL_ARGS}"\n'
        "GRUB_TERMINAL=serial\n"
        'GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n'
        "GRUB_DISABLE_SUBMENU=y\n"
        "GRUB_DISABLE_RECOVERY=true\n"
        "GRUB_DISABLE_OS_PROBER=true\n"
        "GRUB_DISABLE_LINUX_UUID=true\n"
    ),
}

#: Lab additions to :data:`GUEST_SETUP`: e2scrub_reap only matters for LVM snapshots and
#: costs tens of seconds of every TCG boot.
LAB_GUEST_SETUP = GUEST_SETUP + "systemctl mask e2scrub_reap.service\n"

#: Debian's kexec-tools can take over every reboot (LOAD_KEXEC=true in /etc/default/kexec
#: loads the default kernel at shutdown and kexecs it), which would skip GRUB - its saved
#: default and one-shot entry - and the firmware. The lab's reboots must be firmware
#: reboots: the rollout's fallback and the rollback rely on GRUB. The debconf answer
#: covers a reconfiguration; the file is what the init scripts read; the grep fails the
#: image build when neither holds.
KEXEC_SETUP = r"""
echo 'kexec-tools kexec-tools/load_kexec boolean false' | debconf-set-selections
if [ -f /etc/default/kexec ]; then
  sed -i 's/^LOAD_KEXEC=.*/LOAD_KEXEC=false/' /etc/default/kexec
else
  echo 'LOAD_KEXEC=false' > /etc/default/kexec
fi
grep -qx 'LOAD_KEXEC=false' /etc/default/kexec
"""
LAB_GUEST_SETUP += KEXEC_SETUP

#: Stand-in for ``grub-probe`` while ``update-grub`` runs in the build chroot: the real
#: one would describe the build host's disk, not the lab disk the files end up on.
GRUB_PROBE_STUB = f"""#!/bin/sh
target=
while [ $# -gt 0 ]; do
  case "$1" in
    --target=*) target="${{1#--target=}}" ;;
    -t) shift; target="$1" ;;
  esac
  shift
done
case "$target" in
  device) echo {ROOT_DEVICE} ;;
  disk) echo /dev/vda ;;
  fs) echo ext2 ;;
  fs_uuid) echo {FS_UUID} ;;
  fs_label) echo {FS_LABEL} ;;
  partuuid) echo {DISK_SIGNATURE:08x}-01 ;;
  partmap) echo msdos ;;
  abstraction) ;;
  drive) echo '(hd0,msdos1)' ;;
  compatibility_hint) echo hd0,msdos1 ;;
  hints_string) echo '--hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1' ;;
  msdos_parttype) echo 83 ;;
  *) echo "grub-probe (lab image build): unsupported target $target" >&2; exit 1 ;;
esac
"""


class LabImageError(ValueError):
    """An input of the lab image is invalid."""


def sha256_of_parts(parts: Iterable[str]) -> str:
    """sha256 of *parts*, each followed by a NUL (so the boundaries count): the cache keys."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def rootfs_key(
    packages: Sequence[str] = LAB_IMAGE_PACKAGES,
    files: Mapping[str, str] = LAB_GUEST_FILES,
    setup: str = LAB_GUEST_SETUP,
    suite: str = SUITE,
) -> str:
    """Key of the root filesystem stage (the mirror is not part of it)."""
    return sha256_of_parts(
        [ROOTFS_RECIPE, suite, ",".join(packages), json.dumps(dict(files), sort_keys=True), setup]
    )[:20]


def disk_key(rootfs: str, package_sha256s: Mapping[str, str], size_mb: int) -> str:
    """Key of the disk stage: the rootfs key, every kernel package's sha256, the size."""
    pkgs = [f"{name}={digest}" for name, digest in sorted(package_sha256s.items())]
    return sha256_of_parts(
        [
            DISK_RECIPE,
            rootfs,
            str(size_mb),
            GRUB_PROBE_STUB,
            json.dumps(DISK_FILES, sort_keys=True),
            MKFS_FEATURES,
            *pkgs,
        ]
    )[:20]


def kernel_image_packages(paths: Iterable[str]) -> list[str]:
    """The ``linux-image-*`` packages among *paths* (no debug symbols), in order.

    A ``bindeb-pkg`` build also makes headers and libc-dev packages; the guest boots
    without them.
    """
    chosen = []
    for path in paths:
        base = path.rsplit("/", 1)[-1]
        if base.startswith("linux-image-") and base.endswith(".deb") and "-dbg_" not in base:
            chosen.append(path)
    return chosen


def release_from_package(filename: str) -> str | None:
    """The kernel release in a ``linux-image-<release>_<version>_<arch>.deb`` name."""
    match = re.match(r"^linux-image-(.+?)_[^_]+_[^_]+\.deb$", filename.rsplit("/", 1)[-1])
    return match[1] if match else None


def mbr(total_sectors: int, start: int = PARTITION_START, signature: int = DISK_SIGNATURE) -> bytes:
    """Bytes 440..511 of the MBR: disk signature, one bootable Linux partition, 0x55AA.

    The partition spans *start* to the end of the disk.  CHS fields are the LBA-only
    markers (``fe ff ff``).
    """
    if total_sectors <= start:
        raise LabImageError(f"disk of {total_sectors} sectors is too small")
    count = total_sectors - start
    if count > 0xFFFFFFFF:
        raise LabImageError("disk too large for an MBR partition table")
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, count)
    return struct.pack("<IH", signature, 0) + entry + bytes(48) + b"\x55\xaa"


def boot_sector(boot_img: bytes, total_sectors: int) -> bytes:
    """GRUB's ``boot.img`` code (first 440 bytes) followed by :func:`mbr`.

    ``boot.img`` loads the sector after the MBR (its default), where ``core.img`` goes;
    ``core.img``'s own block list defaults to the sectors after that.
    """
    if len(boot_img) != SECTOR:
        raise LabImageError(f"boot.img must be {SECTOR} bytes, not {len(boot_img)}")
    return boot_img[:440] + mbr(total_sectors)


def check_core_size(core_size: int, start: int = PARTITION_START) -> None:
    """``core.img`` must fit between the MBR and the partition."""
    if core_size > (start - 1) * SECTOR:
        raise LabImageError(f"core.img ({core_size} bytes) does not fit before the partition")


def grub_entries(grub_cfg: str) -> list[str]:
    """Top-level ``menuentry`` titles of a ``grub.cfg`` (what ``grub-reboot`` accepts)."""
    return re.findall(r"^menuentry\s+'([^']*)'", grub_cfg, flags=re.MULTILINE)


def mirror_from_sources(sources: Mapping[str, str]) -> str | None:
    """The first plain Debian mirror in apt sources (file name -> text), or None."""
    candidates: list[tuple[str, str]] = []  # (uri, suites)
    for name, text in sources.items():
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                    if match:
                        fields[match[1].lower()] = match[2]
                if "deb" in fields.get("types", "").split() and "uris" in fields:
                    for uri in fields["uris"].split():
                        candidates.append((uri, fields.get("suites", "")))
        elif name.endswith(".list"):
            for line in text.splitlines():
                match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match:
                    candidates.append((match[1], match[2]))
    for uri, suites in candidates:
        if not uri.startswith(("http://", "https://")):
            continue
        if "debian" not in uri:
            continue
        plain = [s for s in suites.split() if "-" not in s]
        if "security" not in uri and (plain or not suites):
            return uri.rstrip("/")
    return None
