"""The damon_apply contract, value by value: the value comparisons, the host look-ups
(over a /proc tree and a stand-in ``systemctl`` built under tmp_path), the confined sysfs
I/O, the evidence settings, the refusals of the engine, and the boot-time applier's exact
output.  The kernel is the fake sysfs (tests/unit/fake_damon_sysfs.py); time passes only
through it.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    HostResolver,
    KmsgLog,
    RealSysfs,
    host_max_sample_rate,
    parse_iomem_system_ram,
    running_release,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.applier import (
    MAX_CONFIG_BYTES,
    applier_main,
    load_config,
    spec_from_config,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    Applier,
    ApplyError,
    ApplyResult,
    EvidenceSettings,
    apply_spec,
    diff_text,
    evidence_settings,
    same_value,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    SpecError,
    parse_spec,
)
from damon_examples import EXAMPLE
from fake_damon_sysfs import FakeDamonSysfs

C = "kdamonds/0/contexts/0"
P3 = C + "/monitoring_attrs/sample/primitives/perf_events"
WINDOW = (
    "damon_perf_evidence_window: -1 is out of range; expected seconds as a number from 0 to "
    "60 (0: do not watch the counter)"
)


def apply(fake: FakeDamonSysfs, kdamonds: Any = (EXAMPLE,), **kwargs: Any) -> Any:
    kwargs.setdefault("settle_time", 0)
    kwargs.setdefault("sleep", fake.advance)
    log = kwargs.pop("log", fake.log)
    policy = kwargs.pop("policy", "fail")
    spec = parse_spec(list(kdamonds), no_event_policy=policy)
    return apply_spec(spec, fake, fake.root, log, **kwargs)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("path", "current", "wanted", "same"),
    [
        ("x/operations", " vaddr ", "vaddr", True),
        ("x/operations", "0x1", "1", False),  # a keyword file is not a number
        ("x/state", "on", "on", True),
        ("x/avail_operations", "paddr", "paddr", True),
        ("x/sample_phys_addr", "Y", "1", True),
        ("x/sample_phys_addr", "t", "yes", True),
        ("x/sample_phys_addr", "N", "0", True),
        ("x/sample_phys_addr", "f", "no", True),
        ("x/sample_phys_addr", "on", "1", True),
        ("x/sample_phys_addr", "off", "0", True),
        ("x/sample_phys_addr", "ON", "y", True),
        ("x/sample_phys_addr", "of", "n", True),
        ("x/sample_phys_addr", "on", "0", False),
        ("x/sample_phys_addr", "x", "x", False),  # not a boolean: never the same
        ("x/sample_phys_addr", "", "", False),
        ("x/sample_phys_addr", " 1 ", "1", True),
        ("x/sample_freq", " 010 ", "8", False),  # base 0 of Python: '010' is not a number
        ("x/sample_freq", "0o10", "8", True),
        ("x/sample_freq", "0x10", "16", True),
        ("x/config", "16", "0x10", True),
        ("x/sample_freq", "abc ", " abc", True),  # not numbers: compared as text
        ("x/sample_freq", "abc", "abd", False),
        ("x/sample_freq", "", "0", False),
    ],
)
def test_same_value(path: str, current: str, wanted: str, same: bool) -> None:
    assert same_value(path, current, wanted) is same


def test_diff_text() -> None:
    assert diff_text([]) == ""
    assert diff_text([("a/b", "1"), ("c", "on")]) == "a/b = 1\nc = on\n"


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("00001000-00001fff : System RAM\n", [(0x1000, 0x2000)]),
        ("00001000-00001fff :   System RAM  \n", [(0x1000, 0x2000)]),
        (
            "00000000-00000fff : Reserved\n 00001000-00001fff : System RAM\n"
            "00002000-00002fff : System RAM\n",
            [(0x2000, 0x3000)],
        ),
        (
            "00000000-00000000 : System RAM\n00001000-00001fff : System RAM\n",
            [(0, 1), (0x1000, 0x2000)],
        ),
        # A lab VM's kernel started by kexec: setup_data split out of System RAM (the
        # ranges the deploy's paddr plan got on it, which DAMON refused with EINVAL).
        (
            "00001000-0009fbff : System RAM\n00100000-003b0fff : System RAM\n"
            "003b1000-003b100f : System RAM\n003b1010-3ffddfff : System RAM\n",
            [(0x1000, 0x9FC00), (0x100000, 0x3FFDE000)],
        ),
    ],
)
def test_iomem_ranges(text: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_iomem_system_ram(text) == ranges


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no 'System RAM' range in /proc/iomem"),
        ("00001000-00001fff : Reserved\n", "no 'System RAM' range in /proc/iomem"),
        (
            "00000000-00000000 : System RAM\n00000000-00000000 : System RAM\n",
            "/proc/iomem shows zeroed addresses (needs root)",
        ),
    ],
)
def test_iomem_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_iomem_system_ram(text)
    assert str(info.value) == message


# --------------------------------------------------------------------------- settings


def test_evidence_settings() -> None:
    assert evidence_settings() == EvidenceSettings(3.0, "accessed_bits", False, True)
    assert evidence_settings(5, "fail", ["6.1-lab"], "6.1-lab", False) == EvidenceSettings(
        5.0, "fail", True, False
    )
    assert evidence_settings(0, stand_in_kernels=["6.1-lab"], release="6.2") == (
        EvidenceSettings(0.0, "accessed_bits", False, True)
    )
    assert evidence_settings(release=None).stand_in is False


def test_evidence_settings_problems() -> None:
    with pytest.raises(SpecError) as info:
        evidence_settings(-1, "x", 5, prefix="p_")
    assert info.value.problems == [
        WINDOW.replace("damon_perf_", "p_"),
        "p_fallback_policy: 'x' is not one of accessed_bits, fail",
        "p_stand_in_kernels: got int; expected a list of at most 64 kernel releases "
        "(uname -r: [A-Za-z0-9._+~-], at most 64 characters)",
    ]
    with pytest.raises(SpecError) as info:
        evidence_settings(-1)
    assert info.value.problems == [WINDOW]


def test_running_release_and_max_sample_rate(tmp_path: Path) -> None:
    release = tmp_path / "osrelease"
    release.write_text("6.12.0-lab\n")
    assert running_release(str(release)) == "6.12.0-lab"
    release.write_text("\n")
    assert running_release(str(release)) is None
    release.write_bytes("6.1-\u00e9\n".encode())  # read as ASCII: each byte replaced
    assert running_release(str(release)) == "6.1-\ufffd\ufffd"
    assert running_release(str(tmp_path / "none")) is None
    rate = tmp_path / "rate"
    rate.write_text(" 100000\n")
    assert host_max_sample_rate(str(rate)) == 100000
    rate.write_text("many\n")
    assert host_max_sample_rate(str(rate)) is None
    assert host_max_sample_rate(str(tmp_path / "none")) is None


# --------------------------------------------------------------------------- host look-ups


def _proc(tmp_path: Path, processes: dict[int, tuple[str, int]]) -> Path:
    """A /proc tree: pid -> (comm, start time in ticks)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()
    (proc / "iomem").write_text("00001000-00001fff : System RAM\n")
    for pid, (comm, start) in processes.items():
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "comm").write_text(comm + "\n")
        fields = ["S"] + ["0"] * 18 + [str(start)] + ["0"] * 10
        (proc / str(pid) / "stat").write_text(f"{pid} ({comm} x) " + " ".join(fields) + "\n")
    return proc


def test_pid_of_process_takes_the_oldest(tmp_path: Path) -> None:
    proc = _proc(
        tmp_path,
        {
            30: ("m", 500),
            20: ("m", 700),
            40: ("m", 600),
            10: ("other", 1),
            80: ("m2 ", 1),
            90: ("mX", 1),
        },
    )
    (proc / "50").mkdir()
    (proc / "50" / "comm").write_text("m\n")
    (proc / "50" / "stat").write_text("50 (m) S 1\n")  # too short: skipped
    (proc / "60").mkdir()  # no comm: skipped
    (proc / "70").mkdir()  # a name that is not UTF-8: matched with U+FFFD
    (proc / "70" / "comm").write_bytes(b"m\xff\n")
    (proc / "70" / "stat").write_bytes(
        b"70 (m\xff) " + " ".join(["S"] + ["0"] * 18 + ["9"]).encode() + b"\n"
    )
    resolver = HostResolver(proc=str(proc))
    assert resolver.pid_of_process("m\ufffd") == 70
    assert resolver.pid_of_process("m") == 30
    assert resolver.pid_of_process("other") == 10
    assert resolver.pid_of_process("m2 ") == 80  # only the newline is cut
    assert resolver.pid_of_process("mX") == 90
    # a name holding ')': the fields start after the last ')' of stat
    (tmp_path / "named").mkdir()
    named = _proc(tmp_path / "named", {11: ("x) y", 700), 12: ("x) y", 500)})
    assert HostResolver(proc=str(named)).pid_of_process("x) y") == 12
    with pytest.raises(LookupError) as info:
        resolver.pid_of_process("gone")
    assert str(info.value) == "no process named 'gone'"


def test_pid_of_pidfile(tmp_path: Path) -> None:
    proc = _proc(tmp_path, {42: ("m", 1)})
    resolver = HostResolver(proc=str(proc))
    pidfile = tmp_path / "m.pid"
    pidfile.write_text("  42 extra\n")
    assert resolver.pid_of_pidfile(str(pidfile)) == 42
    cases = {
        "": f"{pidfile} is empty",
        " \n": f"{pidfile} is empty",
        "x42\n": f"{pidfile} does not start with a pid (ASCII digits)",
        "12345678901\n": f"{pidfile} does not start with a pid (ASCII digits)",
        "43\n": f"pid 43 from {pidfile} is not running",
    }
    for content, message in cases.items():
        pidfile.write_text(content)
        with pytest.raises(ValueError) as info:
            resolver.pid_of_pidfile(str(pidfile))
        assert str(info.value) == message


def _systemctl(tmp_path: Path, stdout: str, rc: int = 0, stderr: str = "") -> str:
    """A stand-in systemctl that records its arguments and prints ``stdout``."""
    script = tmp_path / "systemctl"
    args = tmp_path / "args"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {args}\n'
        f'printf "%s\\n" "$LC_ALL" >> {args}\n'
        f"printf '{stdout}'\n"
        f"printf '{stderr}' >&2\n"
        f"exit {rc}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_pid_of_unit(tmp_path: Path) -> None:
    resolver = HostResolver(systemctl=_systemctl(tmp_path, "1234\\n"))
    assert resolver.pid_of_unit("m.service") == 1234
    assert (tmp_path / "args").read_text().splitlines() == [
        "show",
        "--property=MainPID",
        "--value",
        "--",
        "m.service",
        "C",
    ]


@pytest.mark.parametrize(
    ("stdout", "rc", "stderr", "message"),
    [
        ("0\\n", 0, "", "unit m.service has no main process (not running?)"),
        ("\\n", 0, "", "unit m.service has no main process (not running?)"),
        ("12a\\n", 0, "", "systemctl show gave no MainPID for m.service"),
        ("", 1, " no bus \\n", "systemctl show failed: no bus"),
    ],
)
def test_pid_of_unit_refusals(
    tmp_path: Path, stdout: str, rc: int, stderr: str, message: str
) -> None:
    resolver = HostResolver(systemctl=_systemctl(tmp_path, stdout, rc, stderr))
    with pytest.raises(ValueError) as info:
        resolver.pid_of_unit("m.service")
    assert str(info.value) == message


def test_system_ram_from_proc(tmp_path: Path) -> None:
    assert HostResolver(proc=str(_proc(tmp_path, {}))).system_ram() == [(0x1000, 0x2000)]


def test_host_resolver_defaults() -> None:
    resolver = HostResolver()
    assert (resolver.proc, resolver.systemctl) == ("/proc", "systemctl")


# --------------------------------------------------------------------------- sysfs I/O


def test_real_sysfs_reads_writes_and_confines(tmp_path: Path) -> None:
    root = tmp_path / "admin"
    (root / "kdamonds").mkdir(parents=True)
    (root / "kdamonds" / "state").write_text("  off \n")
    io = RealSysfs(str(root) + "/")
    assert io.root == str(root)
    assert io.read(str(root / "kdamonds" / "state")) == "off"
    (root / "kdamonds" / "w").write_text("")
    io.write(str(root / "kdamonds" / "w"), "on")
    assert (root / "kdamonds" / "w").read_text() == "on"
    assert io.exists(str(root)) and io.isdir(str(root))
    assert io.isdir(str(root / "kdamonds")) and not io.isdir(str(root / "kdamonds" / "state"))
    assert io.exists(str(root / "kdamonds" / "state"))
    assert not io.exists(str(root / "none")) and not io.isdir(str(root / "none"))
    assert not io.exists(str(tmp_path)) and not io.exists(str(root) + "x")
    with pytest.raises(IsADirectoryError):
        io.read(str(root))
    for outside in (str(tmp_path / "x"), str(root) + "x/y", str(root / "a" / ".." / ".." / "x")):
        with pytest.raises(PermissionError) as info:
            io.read(outside)
        assert info.value.errno == errno.EACCES
        assert info.value.strerror == f"outside {root}"
        assert info.value.filename == outside
    big = "x" * 70000
    (root / "kdamonds" / "big").write_text(big)
    assert io.read(str(root / "kdamonds" / "big")) == big


def test_kmsg_log_records_from_a_file(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("6,1,100,-;hello\n SUBSYSTEM=x\n")
    log = KmsgLog(str(kmsg))
    assert log.path == str(kmsg)
    assert log.messages_since(100) == ["hello"]
    assert log.messages_since(101) == []
    kmsg.write_text("6,1,x,-;hello\n")
    assert log.messages_since(0) == []
    with pytest.raises(OSError) as info:
        log.messages_since_mark()
    assert info.value.errno == errno.EBADF
    log.mark()
    assert log.messages_since_mark() == []  # the mark is at the end
    with pytest.raises(OSError):
        log.messages_since_mark()  # a mark is used once
    assert KmsgLog().path == "/dev/kmsg"
    assert log.process_start_us(os.getpid()) is not None
    assert log.process_start_us(1 << 30) is None


# --------------------------------------------------------------------------- the engine


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        ("", "not a relative DAMON sysfs path"),
        ("/kdamonds", "not a relative DAMON sysfs path"),
        ("kdamonds\x00", "not a relative DAMON sysfs path"),
        ("kdamonds\\0", "not a relative DAMON sysfs path"),
        ("kdamonds//0", "it leaves {root}"),
        ("kdamonds/../x", "it leaves {root}"),
        ("./kdamonds", "it leaves {root}"),
        ("kdamonds/", "it leaves {root}"),
    ],
)
def test_abspath_refusals(tmp_path: Path, rel: str, why: str) -> None:
    fake = FakeDamonSysfs(tmp_path)
    applier = Applier(fake, fake.root + "/")
    assert applier.root == fake.root
    assert applier.abspath("kdamonds/nr_kdamonds") == fake.root + "/kdamonds/nr_kdamonds"
    with pytest.raises(ApplyError) as info:
        applier.abspath(rel)
    assert str(info.value) == f"refusing path {rel!r}: " + why.format(root=fake.root)


def test_values_with_nul_or_newline_are_refused(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    applier = Applier(fake, fake.root)
    for value in ("1\n", "1\x00"):
        with pytest.raises(ApplyError) as info:
            applier._write("kdamonds/nr_kdamonds", value, "0")
        assert str(info.value) == (
            f"refusing value {value!r} for kdamonds/nr_kdamonds: one line expected"
        )
    assert applier.result.writes == [] and fake.writes == []


def test_unknown_layout_is_refused_before_anything(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    with pytest.raises(ApplyError) as info:
        apply(fake, layout="rfc-v9")
    assert (
        str(info.value)
        == "unknown layout 'rfc-v9'; known: auto, rfc-v3, rfc-v1, successor, mainline"
    )
    assert info.value.result is None
    assert fake.writes == []


def test_layout_mismatch_names_both(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    with pytest.raises(ApplyError) as info:
        apply(fake, layout="rfc-v1")
    assert str(info.value) == "expected DAMON sysfs layout rfc-v1 but the running kernel has rfc-v3"
    assert info.value.result.writes == [
        ("kdamonds/nr_kdamonds", "1"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
    ]


def test_zero_kdamonds_on_a_fresh_tree(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    result = apply(fake, [])
    assert result.as_dict() == {
        "changed": False,
        "layout": "mainline",
        "writes": [],
        "perf_effective": "no",
        "perf_evidence": {
            "reason": "no perf event configured (mainline layout); monitoring with accessed bits",
            "failures": [],
            "failure_count": 0,
            "total_reports": [],
            "window_s": None,
            "stand_in": False,
            "fallback": "accessed_bits",
        },
        "perf_summary": "no (no perf event configured (mainline layout); monitoring with "
        "accessed bits)",
        "perf_failures": [],
        "kdamonds": [],
        "warnings": [],
        "skipped": False,
        "diff": {"before": "", "after": ""},
    }
    assert apply(fake, [], layout="rfc-v3").layout == "rfc-v3"


def test_removing_every_kdamond(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    apply(fake)
    result = apply(fake, [])
    assert result.writes == [("kdamonds/0/state", "off"), ("kdamonds/nr_kdamonds", "0")]
    assert result.warnings == ["stopping kdamond 0: nr_kdamonds changes"]
    assert result.layout == "rfc-v3"


def test_check_mode_on_a_fresh_tree_with_the_layout_given(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    before = fake.snapshot()
    result = apply(fake, check_mode=True, layout="rfc-v3")
    assert fake.writes == [] and fake.snapshot() == before
    assert result.layout == "rfc-v3" and result.warnings == []
    # the leaves whose defaults already match are not written (operations vaddr, config2 0)
    real = apply(FakeDamonSysfs(tmp_path / "real"))
    assert result.writes == real.writes
    assert len(result.writes) == 15
    assert result.as_dict()["perf_summary"] == (
        "unknown (check mode: 15 writes pending, nothing measured)"
    )
    assert result.kdamonds == [{"index": 0, "state": "on", "pid": None}]
    assert fake.slept == []


def test_check_mode_two_kdamonds_stop_before_resize(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    apply(fake)
    second = dict(EXAMPLE, targets=[{"pid": 1235}])
    predicted = apply(fake, [EXAMPLE, second], check_mode=True)
    real = apply(fake, [EXAMPLE, second])
    assert predicted.writes == real.writes
    assert (
        predicted.warnings
        == real.warnings
        == [
            "stopping kdamond 0: nr_kdamonds changes (the kernel refuses it while any kdamond runs)"
        ]
    )
    assert predicted.writes[:2] == [("kdamonds/0/state", "off"), ("kdamonds/nr_kdamonds", "2")]
    assert predicted.writes[-1] == ("kdamonds/1/state", "on")
    # each kdamond's leaves, then its state, then the next kdamond's leaves
    on = real.writes.index(("kdamonds/0/state", "on"))
    assert real.writes[on + 1] == (
        "kdamonds/1/contexts/0/monitoring_attrs/intervals/sample_us",
        "5000000",
    )


def test_settle_time_and_window_are_slept(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    result = apply(fake, settle_time=2)
    assert fake.slept == [2, 3.0]
    assert result.as_dict()["perf_summary"] == (
        "yes (no perf event create failure in the kernel log since the 'on'/'commit' write; "
        "total_reports grew 400 -> 1000 over 3 s)"
    )
    fake.slept.clear()
    again = apply(fake, settle_time=2)  # nothing started: no settle time
    assert fake.slept == [3.0] and again.changed is False


def test_evidence_without_a_log_or_collection(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path / "a")
    result = apply(fake, log=None)
    assert result.as_dict()["perf_summary"] == (
        "unknown (cannot read the kernel log (no kernel log given); total_reports grew "
        "0 -> 600 over 3 s)"
    )
    fake = FakeDamonSysfs(tmp_path / "b")
    result = apply(fake, evidence=EvidenceSettings(collect=False))
    assert result.as_dict()["perf_summary"] == "unknown (not measured (evidence not collected))"
    assert fake.slept == []
    fake = FakeDamonSysfs(tmp_path / "c")
    result = apply(fake, evidence=EvidenceSettings(window=0))
    assert result.as_dict()["perf_summary"] == (
        "unknown (no perf event create failure in the kernel log since the 'on'/'commit' "
        "write; total_reports not watched (evidence window 0))"
    )
    assert fake.slept == []


def test_flat_counter_is_a_no_with_each_fallback_policy(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path / "a", reports_per_second=0)
    result = apply(fake)
    assert result.perf_effective == "no"
    assert result.warnings == [
        "perf_effective: no (total_reports stayed at 0 over 3 s); going on "
        "(damon_perf_fallback_policy is 'accessed_bits'; 'fail' fails the host instead)"
    ]
    fake = FakeDamonSysfs(tmp_path / "b", reports_per_second=0)
    with pytest.raises(ApplyError) as info:
        apply(fake, evidence=EvidenceSettings(fallback_policy="fail"))
    assert str(info.value) == (
        "perf_effective: no (total_reports stayed at 0 over 3 s) "
        "(damon_perf_fallback_policy is 'fail')"
    )
    assert info.value.result.perf_effective == "no"


def test_stand_in_is_reported(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    result = apply(fake, evidence=EvidenceSettings(stand_in=True))
    assert result.as_dict()["perf_evidence"]["stand_in"] is True


def test_skip_policy_leaves_damon_alone(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path, layout="mainline")
    result = apply(fake, policy="skip")
    assert result.skipped is True
    assert result.as_dict()["perf_summary"] == (
        "no (DAMON left alone (damon_perf_no_event_policy 'skip'))"
    )
    assert result.writes == [
        ("kdamonds/nr_kdamonds", "1"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
    ]
    assert result.warnings == [
        "damon_perf_kdamonds[0]: the running kernel's DAMON (mainline layout) has no "
        "perf_events directory; skipping DAMON on this host"
    ]


def test_sample_rate_is_checked_before_any_write(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    with pytest.raises(Exception) as info:
        apply(fake, max_sample_rate=4999)
    assert str(info.value) == (
        "damon_perf_kdamonds[0].perf_events[0].sample_freq: 5000 exceeds "
        "/proc/sys/kernel/perf_event_max_sample_rate (4999)"
    )
    assert fake.writes == []
    assert apply(fake, max_sample_rate=5000).changed is True


def test_missing_file_names_the_layout(tmp_path: Path) -> None:
    class NoConfig2(FakeDamonSysfs):
        def exists(self, path: str) -> bool:
            return not path.endswith("/config2") and super().exists(path)

    fake = NoConfig2(tmp_path)
    with pytest.raises(ApplyError) as info:
        apply(fake)
    assert str(info.value) == (
        f"{fake.root}/{P3}/0/config2 does not exist (symbolic links below {fake.root} are not "
        "followed); the kernel's DAMON sysfs differs from the rfc-v3 layout"
    )


def test_unreadable_and_unwritable_files(tmp_path: Path) -> None:
    class Failing(FakeDamonSysfs):
        fail_read = ""
        fail_write = ""

        def read(self, path: str) -> str:
            if self.fail_read and path.endswith(self.fail_read):
                raise OSError(errno.EIO, "Input/output error", path)
            return super().read(path)

        def write(self, path: str, value: str) -> None:
            if self.fail_write and path.endswith(self.fail_write):
                raise OSError(errno.EBUSY, "Device or resource busy", path)
            super().write(path, value)

    fake = Failing(tmp_path)
    fake.fail_read = "/nr_kdamonds"
    with pytest.raises(ApplyError) as info:
        apply(fake)
    assert str(info.value) == (
        f"cannot read {fake.root}/kdamonds/nr_kdamonds: EIO (Input/output error)"
    )
    fake.fail_read = ""
    for error, shown in ((OSError(999, "odd"), "999 (odd)"), (OSError("plain"), "None (plain)")):

        class Odd(FakeDamonSysfs):
            def read(self, path: str, error: OSError = error) -> str:
                raise error

        odd = Odd(tmp_path / shown.split()[0])
        with pytest.raises(ApplyError) as info:
            apply(odd)
        assert str(info.value) == f"cannot read {odd.root}/kdamonds/nr_kdamonds: {shown}"
    fake.fail_write = "/sample_us"
    with pytest.raises(ApplyError) as info:
        apply(fake)
    assert str(info.value) == (
        f"writing '5000000' to {fake.root}/{C}/monitoring_attrs/intervals/sample_us failed: "
        "EBUSY (Device or resource busy)"
    )
    assert info.value.result.writes[-1] == (C + "/monitoring_attrs/intervals/sample_us", "5000000")


def test_unavailable_vaddr_names_the_config(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path, avail_operations=("paddr",))
    with pytest.raises(ApplyError) as info:
        apply(fake)
    assert str(info.value) == (
        "damon_perf_kdamonds[0].operations: vaddr is not available on this kernel "
        "(avail_operations: paddr; needs CONFIG_DAMON_VADDR)"
    )


# --------------------------------------------------------------------------- config files


def test_load_config_refusals(tmp_path: Path) -> None:
    missing = tmp_path / "none.yml"
    with pytest.raises(SpecError) as info:
        load_config(str(missing))
    assert info.value.problems == [f"{missing}: cannot read: ENOENT (No such file or directory)"]
    big = tmp_path / "big.yml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(SpecError) as info:
        load_config(str(big))
    assert info.value.problems == [f"{big}: larger than 1048576 bytes"]
    exact = tmp_path / "exact.yml"
    body = b'{"damon_perf_kdamonds": []}\n'
    exact.write_bytes(b"#" * (MAX_CONFIG_BYTES - len(body) - 1) + b"\n" + body)
    assert load_config(str(exact)).spec.kdamonds == ()
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"# caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_config(str(latin))
    assert info.value.problems == [f"{latin}: not UTF-8 text (byte 5)"]


def test_spec_from_config() -> None:
    assert spec_from_config({"damon_perf_kdamonds": [EXAMPLE]}) == parse_spec([EXAMPLE])
    with pytest.raises(SpecError) as info:
        spec_from_config({})
    assert info.value.problems == [
        "config: damon_perf_kdamonds is missing; give the kdamonds to run "
        "([] to remove every kdamond)"
    ]


def test_applier_main_applies_and_reports(tmp_path: Path, capsys: Any) -> None:
    fake = FakeDamonSysfs(tmp_path / "tree", reports_per_second=0)
    apply(fake)  # the kdamond runs; the applier finds nothing to write
    fake.slept.clear()
    config = tmp_path / "damon.json"
    config.write_text(json.dumps({"damon_perf_kdamonds": [EXAMPLE], "damon_perf_settle_time": 0}))
    rc = applier_main(["--config", str(config), "--root", fake.root], fake.log, fake.advance)
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 0
    assert out["changed"] is False and out["layout"] == "rfc-v3" and out["writes"] == []
    assert captured.out.startswith('{\n  "changed": false,\n  "diff": {')  # sorted, indented
    assert out["perf_evidence"]["reason"] == "total_reports stayed at 0 over 3 s"
    assert captured.err == (
        f"damon-fleet-apply: warning: perf_effective: no ({out['perf_evidence']['reason']}); "
        "going on (damon_perf_fallback_policy is 'accessed_bits'; 'fail' fails the host "
        "instead)\n"
        f"damon-fleet-apply: perf_effective no ({out['perf_evidence']['reason']})\n"
    )
    assert fake.slept == [3.0]


def test_applier_main_settle_time_option(tmp_path: Path, capsys: Any) -> None:
    fake = FakeDamonSysfs(tmp_path / "tree")
    apply(fake)
    fake.slept.clear()
    config = tmp_path / "damon.json"
    config.write_text(json.dumps({"damon_perf_kdamonds": [EXAMPLE]}))
    args = ["--config", str(config), "--root", fake.root]
    assert applier_main([*args, "--settle-time", "2.5"], fake.log, fake.advance) == 0
    assert fake.slept == [3.0]  # nothing started: no settle time
    capsys.readouterr()
    assert applier_main([*args, "--settle-time", "x"], fake.log, fake.advance) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "failed": True,
        "msg": "--settle-time: 'x' is not seconds as a number from 0 to 600",
    }
    assert captured.err == (
        "damon-fleet-apply: error: --settle-time: 'x' is not seconds as a number from 0 to 600\n"
    )


def test_applier_main_failure_keeps_the_partial_result(tmp_path: Path, capsys: Any) -> None:
    fake = FakeDamonSysfs(tmp_path / "tree", reports_per_second=0)
    apply(fake)
    config = tmp_path / "damon.json"
    config.write_text(
        json.dumps(
            {
                "damon_perf_kdamonds": [EXAMPLE],
                "damon_perf_settle_time": 0,
                "damon_perf_fallback_policy": "fail",
            }
        )
    )
    rc = applier_main(["--config", str(config), "--root", fake.root], fake.log, fake.advance)
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 1
    reason = out["perf_evidence"]["reason"]
    assert reason == "total_reports stayed at 0 over 3 s"
    message = f"perf_effective: no ({reason}) (damon_perf_fallback_policy is 'fail')"
    assert out["failed"] is True and out["msg"] == message
    assert out["changed"] is False and out["perf_effective"] == "no"
    assert captured.out.startswith('{\n  "changed": false,\n  "diff": {\n    "after": ""')
    assert list(json.loads(captured.out)) == sorted(out)
    assert captured.err == f"damon-fleet-apply: error: {message}\n"


def test_apply_result_defaults() -> None:
    result = ApplyResult()
    assert result.perf_effective == "unknown"
    assert result.as_dict()["perf_summary"] == ("unknown (not measured: the run stopped before it)")


def test_kdamond_without_a_pid_is_not_running(tmp_path: Path) -> None:
    class NoPid(FakeDamonSysfs):
        def read(self, path: str) -> str:
            return "-1" if path.endswith("/pid") else super().read(path)

    fake = NoPid(tmp_path)
    with pytest.raises(ApplyError) as info:
        apply(fake)
    assert str(info.value) == (
        "kdamond 0 is not running after 'on' (state on, pid -1); a target process may have exited"
    )
    assert info.value.result.kdamonds == [{"index": 0, "state": "on", "pid": None}]
    with pytest.raises(ApplyError) as info:
        apply(fake)
    assert str(info.value) == (
        "kdamond 0 is not running after 'apply' (state on, pid -1); a target process may have "
        "exited"
    )
    assert info.value.result.writes == []
    two = NoPid(tmp_path / "two")
    with pytest.raises(ApplyError) as info:
        apply(two, [EXAMPLE, EXAMPLE])
    assert str(info.value) == (
        "kdamond 0 is not running after 'on' (state on, pid -1); a target process may have "
        "exited; kdamond 1 is not running after 'on' (state on, pid -1); a target process may "
        "have exited"
    )


def test_kdamond_without_a_state_is_off(tmp_path: Path) -> None:
    class NoState(FakeDamonSysfs):
        def read(self, path: str) -> str:
            return "" if path.endswith("/state") else super().read(path)

    fake = NoState(tmp_path)
    with pytest.raises(ApplyError) as info:
        apply(fake)
    pid = fake.running[0]
    assert str(info.value) == (
        f"kdamond 0 is not running after 'on' (state off, pid {pid}); a target process may "
        "have exited"
    )


def test_applier_help(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as info:
        applier_main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: damon-fleet-apply [-h] --config CONFIG [--check]")
    assert "\nApply a damon-fleet DAMON configuration to the running kernel.\n" in out
    assert "  --config CONFIG       rendered config (JSON/YAML)\n" in out
    assert "  --check               show what would change\n" in out
    with pytest.raises(SystemExit) as info:
        applier_main([])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "damon-fleet-apply: error: the following arguments are required: --config\n"
    )


def test_default_settle_time_is_one_second(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path / "a")
    Applier(fake, fake.root, fake.log, sleep=fake.advance).run(parse_spec([EXAMPLE]))
    assert fake.slept == [1.0, 3.0]
    fake = FakeDamonSysfs(tmp_path / "b")
    apply_spec(parse_spec([EXAMPLE]), fake, fake.root, fake.log, sleep=fake.advance)
    assert fake.slept == [1.0, 3.0]


def test_a_file_that_is_not_there_shows_as_absent(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path)
    applier = Applier(fake, fake.root, check_mode=True)
    applier._write("kdamonds/nr_kdamonds", "1", None)
    applier._write("kdamonds/0/state", "commit", "on")
    assert applier.result.as_dict()["diff"] == {
        "before": "kdamonds/nr_kdamonds = (absent)\nkdamonds/0/state = on\n",
        "after": "kdamonds/nr_kdamonds = 1\nkdamonds/0/state = commit\n",
    }
    assert fake.writes == []
