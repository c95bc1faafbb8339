"""Real-kernel facts about the lab kernel and the mainline DAMON sysfs interface.

These run against Linux 6.12 (Debian's linux-source-6.12) in the QEMU lab VM.
The exact strings and errnos asserted here are what the unit tests' fake sysfs
must reproduce; keep the two in sync.

Every read returns the raw file content (values end in ``\\n``); every write is a
single ``write(2)`` whose outcome is reported as ``"ok"`` or the errno name.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import (
    kernel_facts as facts,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import parse_kconfig
from labvm import LabVm

pytestmark = pytest.mark.vm

ADMIN = "/sys/kernel/mm/damon/admin"
KD = f"{ADMIN}/kdamonds"
K0 = f"{KD}/0"
C0 = f"{K0}/contexts/0"
T0 = f"{C0}/targets/0"
INTERVALS = f"{C0}/monitoring_attrs/intervals"
NR_REGIONS = f"{C0}/monitoring_attrs/nr_regions"

# Runs in the guest: executes a JSON list of operations, prints a JSON list of results.
GUEST_IO = r"""
import errno, json, os, re, sys, time

def largest_ram():
    best = (0, 0)
    with open("/proc/iomem") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$", line.strip())
            if m:
                s, e = int(m[1], 16), int(m[2], 16) + 1
                if e - s > best[1] - best[0]:
                    best = (s, e)
    return list(best)

out = []
for op in json.loads(sys.argv[1]):
    kind = op[0]
    if kind == "r":
        try:
            with open(op[1], "rb") as f:
                out.append(f.read().decode())
        except OSError as e:
            out.append("!" + errno.errorcode[e.errno])
    elif kind == "w":
        try:
            fd = os.open(op[1], os.O_WRONLY)
        except OSError as e:
            out.append(errno.errorcode[e.errno])
            continue
        try:
            os.write(fd, op[2].encode())
            out.append("ok")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
        finally:
            os.close(fd)
    elif kind == "exists":
        out.append(os.path.exists(op[1]))
    elif kind == "ls":
        out.append(sorted(os.listdir(op[1])))
    elif kind == "until":  # ["until", path, content, timeout_s] -> seconds waited or None
        start = time.monotonic()
        while True:
            with open(op[1], "rb") as f:
                if f.read().decode() == op[2]:
                    out.append(round(time.monotonic() - start, 2))
                    break
            if time.monotonic() - start > op[3]:
                out.append(None)
                break
            time.sleep(0.1)
    elif kind == "sleep":
        time.sleep(op[1])
        out.append(None)
    elif kind == "ram":
        out.append(largest_ram())
    else:
        raise SystemExit("bad op %r" % (op,))
print(json.dumps(out))
"""


class GuestSysfs:
    """Batched sysfs reads/writes in the guest, one SSH round trip per batch."""

    def __init__(self, vm: LabVm) -> None:
        self.vm = vm
        vm.ssh("cat > /root/sysfs_io.py", input=GUEST_IO)

    def batch(self, ops: list[list[Any]]) -> list[Any]:
        proc = self.vm.ssh(f"python3 /root/sysfs_io.py {shlex.quote(json.dumps(ops))}")
        result: list[Any] = json.loads(proc.stdout)
        return result

    def read(self, path: str) -> str:
        value: str = self.batch([["r", path]])[0]
        return value

    def write(self, path: str, value: str) -> str:
        outcome: str = self.batch([["w", path, value]])[0]
        return outcome

    def reset(self) -> None:
        """Stop any kdamond and drop all kdamond directories."""
        if self.read(f"{KD}/nr_kdamonds") != "0\n":
            if self.read(f"{K0}/state") == "on\n":
                self.write(f"{K0}/state", "off")
            assert self.write(f"{KD}/nr_kdamonds", "0") == "ok"

    def setup_paddr(self, start: int, end: int) -> None:
        """nr_kdamonds=1, nr_contexts=1, operations=paddr, one target with one region."""
        results = self.batch(
            [
                ["w", f"{KD}/nr_kdamonds", "1"],
                ["w", f"{K0}/contexts/nr_contexts", "1"],
                ["w", f"{C0}/operations", "paddr"],
                ["w", f"{C0}/targets/nr_targets", "1"],
                ["w", f"{T0}/regions/nr_regions", "1"],
                ["w", f"{T0}/regions/0/start", str(start)],
                ["w", f"{T0}/regions/0/end", str(end)],
            ]
        )
        assert results == ["ok"] * 7


@pytest.fixture(scope="module")
def guest_sysfs(lab_vm: LabVm) -> GuestSysfs:
    return GuestSysfs(lab_vm)


@pytest.fixture()
def sysfs(guest_sysfs: GuestSysfs) -> Iterator[GuestSysfs]:
    guest_sysfs.reset()
    yield guest_sysfs
    guest_sysfs.reset()


@pytest.fixture(scope="module")
def system_ram(guest_sysfs: GuestSysfs) -> tuple[int, int]:
    start, end = guest_sysfs.batch([["ram"]])[0]
    assert 0 < start < end
    return int(start), int(end)


# --------------------------------------------------------------------------- kernel


def test_kernel_is_6_12(lab_vm: LabVm) -> None:
    release = lab_vm.ssh("uname -r").stdout.strip()
    # The kernel_build role's LOCALVERSION: -<name>-<first 8 hex digits of the inputs hash>.
    assert re.fullmatch(r"6\.12\.\d+-lab-[0-9a-f]{8}", release), release
    assert release.endswith(lab_vm.kernel.parent.name[:8])
    assert lab_vm.ssh("uname -m").stdout.strip() == "x86_64"


def test_built_config_has_damon(lab_vm: LabVm) -> None:
    config = parse_kconfig((lab_vm.kernel.parent / "config").read_text())
    for option in (
        "CONFIG_DAMON",
        "CONFIG_DAMON_VADDR",
        "CONFIG_DAMON_PADDR",
        "CONFIG_DAMON_SYSFS",
        "CONFIG_PERF_EVENTS",
    ):
        assert config.get(option) == "y", option
    # The deprecated debugfs interface is not built (the lab kernel has no debugfs at all,
    # so the option does not even appear): sysfs is the only admin path.
    assert config.get("CONFIG_DEBUG_FS") == "n"
    assert config.get("CONFIG_DAMON_DBGFS_DEPRECATED") in (None, "n")


def test_guest_is_healthy(lab_vm: LabVm) -> None:
    state = lab_vm.ssh("systemctl is-system-running", check=False).stdout.strip()
    assert state == "running", lab_vm.ssh("systemctl --failed", check=False).stdout
    assert lab_vm.ssh("python3 -c 'print(1)'").stdout == "1\n"


# --------------------------------------------------------------------------- layout


def test_damon_sysfs_root(sysfs: GuestSysfs) -> None:
    exists, top, admin, kdamonds, nr = sysfs.batch(
        [
            ["exists", f"{KD}/nr_kdamonds"],
            ["ls", "/sys/kernel/mm/damon"],
            ["ls", ADMIN],
            ["ls", KD],
            ["r", f"{KD}/nr_kdamonds"],
        ]
    )
    assert exists is True
    assert top == ["admin"]
    assert admin == ["kdamonds"]
    assert kdamonds == ["nr_kdamonds"]
    assert nr == "0\n"
    # DAMON_RECLAIM and DAMON_LRU_SORT are built in and expose module parameters.
    assert sysfs.batch(
        [
            ["r", "/sys/module/damon_reclaim/parameters/enabled"],
            ["r", "/sys/module/damon_lru_sort/parameters/enabled"],
        ]
    ) == ["N\n", "N\n"]


def test_directory_tree_and_defaults(sysfs: GuestSysfs) -> None:
    r = sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["ls", KD],
            ["ls", K0],
            ["r", f"{K0}/state"],
            ["r", f"{K0}/pid"],
            ["r", f"{K0}/contexts/nr_contexts"],
            ["ls", f"{K0}/contexts"],
        ]
    )
    assert r == [
        "ok",
        ["0", "nr_kdamonds"],
        ["contexts", "pid", "state"],
        "off\n",
        "-1\n",
        "0\n",
        ["nr_contexts"],
    ]
    r = sysfs.batch(
        [
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["ls", C0],
            ["r", f"{C0}/avail_operations"],
            ["r", f"{C0}/operations"],
            ["ls", f"{C0}/monitoring_attrs"],
            ["r", f"{INTERVALS}/sample_us"],
            ["r", f"{INTERVALS}/aggr_us"],
            ["r", f"{INTERVALS}/update_us"],
            ["r", f"{NR_REGIONS}/min"],
            ["r", f"{NR_REGIONS}/max"],
            ["r", f"{C0}/targets/nr_targets"],
            ["r", f"{C0}/schemes/nr_schemes"],
        ]
    )
    assert r == [
        "ok",
        ["avail_operations", "monitoring_attrs", "operations", "schemes", "targets"],
        "vaddr\nfvaddr\npaddr\n",  # one per line, in this order
        "vaddr\n",  # default operations set
        ["intervals", "nr_regions"],
        "5000\n",
        "100000\n",
        "60000000\n",
        "10\n",
        "1000\n",
        "0\n",
        "0\n",
    ]
    r = sysfs.batch(
        [
            ["w", f"{C0}/targets/nr_targets", "1"],
            ["ls", T0],
            ["r", f"{T0}/pid_target"],
            ["r", f"{T0}/regions/nr_regions"],
            ["w", f"{T0}/regions/nr_regions", "1"],
            ["ls", f"{T0}/regions/0"],
            ["r", f"{T0}/regions/0/start"],
            ["r", f"{T0}/regions/0/end"],
        ]
    )
    assert r == [
        "ok",
        ["pid_target", "regions"],
        "0\n",
        "0\n",
        "ok",
        ["end", "start"],
        "0\n",
        "0\n",
    ]


# --------------------------------------------------------------------------- on / off


def test_paddr_monitoring_on_off(
    lab_vm: LabVm, sysfs: GuestSysfs, system_ram: tuple[int, int]
) -> None:
    start, end = system_ram
    sysfs.setup_paddr(start, end)
    assert sysfs.batch([["r", f"{T0}/regions/0/start"], ["r", f"{T0}/regions/0/end"]]) == [
        f"{start}\n",
        f"{end}\n",
    ]

    assert sysfs.write(f"{K0}/state", "on") == "ok"
    state, pid = sysfs.batch([["r", f"{K0}/state"], ["r", f"{K0}/pid"]])
    assert state == "on\n"
    assert re.fullmatch(r"[1-9][0-9]*\n", pid), pid
    comm = lab_vm.ssh(f"cat /proc/{int(pid)}/comm").stdout
    assert comm == "kdamond.0\n"

    # While running: a second "on" is EBUSY and so is resizing kdamonds (even to
    # the same count); online commands work.
    assert sysfs.batch(
        [
            ["w", f"{K0}/state", "on"],
            ["w", f"{KD}/nr_kdamonds", "2"],
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/state", "commit"],
            ["w", f"{K0}/state", "update_schemes_stats"],
            ["w", f"{K0}/state", "update_schemes_tried_bytes"],
            ["w", f"{K0}/state", "update_schemes_tried_regions"],
            ["w", f"{K0}/state", "clear_schemes_tried_regions"],
            ["w", f"{K0}/state", "update_schemes_effective_quotas"],
            # added after 6.12: unknown here
            ["w", f"{K0}/state", "update_tuned_intervals"],
            ["r", f"{K0}/state"],
        ]
    ) == ["EBUSY", "EBUSY", "EBUSY", "ok", "ok", "ok", "ok", "ok", "ok", "EINVAL", "on\n"]

    assert sysfs.write(f"{K0}/state", "off") == "ok"
    assert sysfs.batch([["r", f"{K0}/state"], ["r", f"{K0}/pid"]]) == ["off\n", "-1\n"]
    # Stopping a context that already stopped: EPERM (from damon_stop()).
    assert sysfs.write(f"{K0}/state", "off") == "EPERM"
    assert lab_vm.ssh(f"test -e /proc/{int(pid)}", check=False).returncode != 0


def test_paddr_without_regions_starts(sysfs: GuestSysfs) -> None:
    """paddr with a target but no regions is accepted by 6.12 (no region check)."""
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{C0}/operations", "paddr"],
            ["w", f"{C0}/targets/nr_targets", "1"],
            ["w", f"{K0}/state", "on"],
            ["r", f"{K0}/state"],
            ["w", f"{K0}/state", "off"],
        ]
    ) == ["ok", "ok", "ok", "ok", "ok", "on\n", "ok"]


@pytest.mark.parametrize(("start", "end"), [(4096, 4096), (8192, 4096)])
def test_empty_or_inverted_region_refused_at_on(sysfs: GuestSysfs, start: int, end: int) -> None:
    # Region files accept anything; the check happens when turning on.
    sysfs.setup_paddr(start, end)
    assert sysfs.batch(
        [
            ["w", f"{K0}/state", "on"],
            ["r", f"{K0}/state"],
            ["r", f"{K0}/pid"],
        ]
    ) == ["EINVAL", "off\n", "-1\n"]


def test_state_errors_when_off(sysfs: GuestSysfs) -> None:
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            # No context yet.
            ["w", f"{K0}/state", "on"],
            # Never started: off / commit / update_* are EINVAL, not EPERM.
            ["w", f"{K0}/state", "off"],
            ["w", f"{K0}/state", "commit"],
            ["w", f"{K0}/state", "update_schemes_stats"],
            ["w", f"{K0}/state", "foo"],
            ["w", f"{K0}/state", "ON"],
            ["r", f"{K0}/state"],
        ]
    ) == ["ok", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "off\n"]


def test_kdamond_exit_on_its_own(lab_vm: LabVm, sysfs: GuestSysfs) -> None:
    """vaddr target exits: kdamond stops, state reads off, writing off gives EPERM."""
    pid = lab_vm.ssh("sleep 3 >/dev/null 2>&1 & echo $!").stdout.strip()
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{C0}/targets/nr_targets", "1"],
            ["w", f"{T0}/pid_target", pid],
            ["w", f"{K0}/state", "on"],
            ["r", f"{K0}/state"],
        ]
    ) == ["ok"] * 5 + ["on\n"]
    waited = sysfs.batch([["until", f"{K0}/state", "off\n", 20]])[0]
    assert waited is not None, "kdamond did not stop after its only target exited"
    assert sysfs.batch([["r", f"{K0}/pid"], ["w", f"{K0}/state", "off"]]) == ["-1\n", "EPERM"]


# --------------------------------------------------------------------------- value parsing


def test_nr_contexts_above_one_refused(sysfs: GuestSysfs) -> None:
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "2"],
            ["w", f"{K0}/contexts/nr_contexts", "-1"],
            ["w", f"{K0}/contexts/nr_contexts", "abc"],
            ["r", f"{K0}/contexts/nr_contexts"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["r", f"{K0}/contexts/nr_contexts"],
        ]
    ) == ["ok", "EINVAL", "EINVAL", "EINVAL", "0\n", "ok", "1\n"]


def test_nr_kdamonds_parsing(sysfs: GuestSysfs) -> None:
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "abc"],
            ["w", f"{KD}/nr_kdamonds", "-1"],
            ["r", f"{KD}/nr_kdamonds"],
            ["w", f"{KD}/nr_kdamonds", "0x2"],
            ["r", f"{KD}/nr_kdamonds"],
            ["ls", KD],
        ]
    ) == ["EINVAL", "EINVAL", "0\n", "ok", "2\n", ["0", "1", "nr_kdamonds"]]


@pytest.mark.parametrize(
    ("written", "outcome", "reads"),
    [
        ("0x10", "ok", "16\n"),  # kstrtoul base 0: hex
        ("010", "ok", "8\n"),  # ... and octal
        ("0", "ok", "0\n"),
        ("42\n", "ok", "42\n"),  # one trailing newline is fine (echo)
        ("18446744073709551615", "ok", "18446744073709551615\n"),  # ULONG_MAX
        ("18446744073709551616", "ERANGE", "5000\n"),
        ("99999999999999999999999", "ERANGE", "5000\n"),
        ("-5", "EINVAL", "5000\n"),
        (" 7", "EINVAL", "5000\n"),
        ("7 ", "EINVAL", "5000\n"),
        ("1e3", "EINVAL", "5000\n"),
        ("abc", "EINVAL", "5000\n"),
    ],
)
def test_interval_integer_parsing(
    sysfs: GuestSysfs, written: str, outcome: str, reads: str
) -> None:
    r = sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{INTERVALS}/sample_us", written],
            ["r", f"{INTERVALS}/sample_us"],
        ]
    )
    assert r == ["ok", "ok", outcome, reads]


def test_nr_regions_bounds_not_checked_on_write(sysfs: GuestSysfs) -> None:
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{NR_REGIONS}/min", "0x20"],
            ["r", f"{NR_REGIONS}/min"],
            ["w", f"{NR_REGIONS}/min", "2000"],  # above max: accepted here
            ["w", f"{NR_REGIONS}/max", "5"],
            ["r", f"{NR_REGIONS}/min"],
            ["r", f"{NR_REGIONS}/max"],
        ]
    ) == ["ok", "ok", "ok", "32\n", "ok", "ok", "2000\n", "5\n"]


def test_operations_parsing(sysfs: GuestSysfs) -> None:
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{C0}/operations", "foo"],
            ["w", f"{C0}/operations", "PADDR"],
            ["r", f"{C0}/operations"],
            ["w", f"{C0}/operations", "paddr\n"],
            ["r", f"{C0}/operations"],
            ["w", f"{C0}/operations", "fvaddr"],
            ["r", f"{C0}/operations"],
        ]
    ) == ["ok", "ok", "EINVAL", "EINVAL", "vaddr\n", "ok", "paddr\n", "ok", "fvaddr\n"]


def test_region_addresses_accept_hex(sysfs: GuestSysfs) -> None:
    assert sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{C0}/targets/nr_targets", "1"],
            ["w", f"{T0}/regions/nr_regions", "1"],
            ["w", f"{T0}/regions/0/start", "0x100000"],
            ["r", f"{T0}/regions/0/start"],
        ]
    ) == ["ok", "ok", "ok", "ok", "ok", "1048576\n"]


# --------------------------------------------------------------------------- the facts table


def test_every_default_matches_the_facts_table(sysfs: GuestSysfs) -> None:
    """Every file of the mainline tree reads, right after its directory is created, what
    plugins/module_utils/damon/kernel_facts.py says (the planner and the unit fake use
    that table); the 6.12 state rules the table records hold here too."""
    numbers = {"<K>": "0", "<C>": "0", "<T>": "0", "<R>": "0"}

    def concrete(key: str) -> str:
        for placeholder, number in numbers.items():
            key = key.replace(placeholder, number)
        return f"{ADMIN}/{key}"

    keys = sorted(facts.MAINLINE_DEFAULTS)
    results = sysfs.batch(
        [
            ["w", f"{KD}/nr_kdamonds", "1"],
            ["w", f"{K0}/contexts/nr_contexts", "1"],
            ["w", f"{C0}/targets/nr_targets", "1"],
            ["w", f"{T0}/regions/nr_regions", "1"],
        ]
        + [["r", concrete(key)] for key in keys]
    )
    assert results[:4] == ["ok"] * 4
    read = dict(zip(keys, results[4:], strict=True))
    written = {
        "kdamonds/nr_kdamonds": "1\n",
        "kdamonds/<K>/contexts/nr_contexts": "1\n",
        "kdamonds/<K>/contexts/<C>/targets/nr_targets": "1\n",
        "kdamonds/<K>/contexts/<C>/targets/<T>/regions/nr_regions": "1\n",
    }
    expected = {key: written.get(key, facts.MAINLINE_DEFAULTS[key] + "\n") for key in keys}
    assert read == expected
    assert facts.parse_avail_operations(read["kdamonds/<K>/contexts/<C>/avail_operations"]) == list(
        facts.AVAIL_OPERATIONS_ORDER
    )
    # Never started: off is the errno the table records; unknown keywords too.
    assert sysfs.batch(
        [
            ["w", f"{K0}/state", "off"],
            ["w", f"{K0}/state", "update_tuned_intervals"],
        ]
    ) == [errno_name(facts.OFF_WHEN_NEVER_STARTED), errno_name(facts.UNKNOWN_STATE_COMMAND)]


def errno_name(code: int) -> str:
    import errno as errno_module

    return errno_module.errorcode[code]
