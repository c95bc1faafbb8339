"""The lab series kernel (kernel-patches/lab-perf-events-abi) for real, in one VM.

One session VM boots the kernel the kernel_build role makes of the lab series (the
build ``deploy.yml`` and ``test_kernel_build.py`` make too, so it is usually cached) and
checks, against ``docs/damon-perf-abi.md`` (RFC v3 layout):

* the context tree file by file, defaults and value rules;
* the failure path: the PEBS load-latency event (type 4, config 0x1cd) has no PMU under
  TCG, the kernel logs ``perf event create on CPU 0 failed with -2``, ``on`` still
  succeeds and ``total_reports`` stays flat (accessed-bit monitoring);
* the success path: a software event (type 1, config 0, cpu-clock) samples and
  ``total_reports`` grows; ``commit`` rebuilds the events, ``off`` releases them;
* ``tools/testing/selftests/damon/sysfs.sh`` of the same kernel source passes.
"""

from __future__ import annotations

import re
import shlex
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labvm import LabVm

ADMIN = "/sys/kernel/mm/damon/admin"
KDAMOND = f"{ADMIN}/kdamonds/0"
CTX = f"{KDAMOND}/contexts/0"
ATTRS = f"{CTX}/monitoring_attrs"
SAMPLE = f"{ATTRS}/sample"
PERF = f"{SAMPLE}/primitives/perf_events"
FILTERS = f"{SAMPLE}/filters"
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
SYSFS_SH = "tools/testing/selftests/damon/sysfs.sh"
FAILURE = re.compile(r"perf event create on CPU (\d+) failed with (-?\d+)")
#: The RFC cover letter's event: damo --perf_event 5000 0 0x4 0x1cd 0x1f 0.
PEBS = {"sample_freq": "5000", "type": "0x4", "config": "0x1cd", "config1": "0x1f"}
CPU_CLOCK = {"sample_freq": "100", "type": "1", "config": "0"}

pytestmark = pytest.mark.skipif(not TARBALL.is_file(), reason="needs linux-source-6.12")


# --------------------------------------------------------------------------- guest I/O


def read(vm: LabVm, *paths: str) -> list[str]:
    """Contents of *paths* (one line each), in one SSH round trip."""
    script = "".join(f"printf '%s\\n' \"$(cat {shlex.quote(p)})\"\n" for p in paths)
    lines = vm.ssh(script).stdout.split("\n")
    return lines[: len(paths)]


def write(vm: LabVm, pairs: list[tuple[str, str]]) -> list[str]:
    """Write each value to its path in order; per write ``ok`` or the shell's error text."""
    script = "".join(
        f"if printf '%s\\n' {shlex.quote(value)} 2>/tmp/werr > {shlex.quote(path)}; "
        'then echo ok; else echo "err $(cat /tmp/werr)"; fi\n'
        for path, value in pairs
    )
    lines = vm.ssh(script).stdout.splitlines()
    assert len(lines) == len(pairs), lines
    return lines


def write_ok(vm: LabVm, pairs: list[tuple[str, str]]) -> None:
    results = write(vm, pairs)
    failed = [(pair, res) for pair, res in zip(pairs, results, strict=True) if res != "ok"]
    assert failed == []


def kernel_log_mark(vm: LabVm, name: str) -> str:
    """Write a unique marker into the kernel log; return it."""
    marker = f"damon-fleet-test {name} {time.monotonic_ns()}"
    vm.ssh(f"printf '%s\\n' {shlex.quote(marker)} > /dev/kmsg")
    return marker


def kernel_log_since(vm: LabVm, marker: str) -> list[str]:
    """Kernel log messages (without timestamps) written after *marker*."""
    lines = vm.ssh("dmesg").stdout.splitlines()
    index = max(i for i, line in enumerate(lines) if marker in line)
    return [re.sub(r"^\[\s*\d+\.\d+\]\s?", "", line) for line in lines[index + 1 :]]


def total_reports(vm: LabVm) -> int:
    return int(read(vm, f"{KDAMOND}/total_reports")[0])


def setup_kdamond(vm: LabVm, event: dict[str, str] | None) -> None:
    """One kdamond, vaddr on pid 1, and *event* as its only perf event (if any)."""
    pairs = [
        (f"{ADMIN}/kdamonds/nr_kdamonds", "1"),
        (f"{KDAMOND}/contexts/nr_contexts", "1"),
        (f"{CTX}/operations", "vaddr"),
        (f"{ATTRS}/intervals/sample_us", "5000"),
        (f"{ATTRS}/intervals/aggr_us", "100000"),
        (f"{CTX}/targets/nr_targets", "1"),
        (f"{CTX}/targets/0/pid_target", "1"),
        (f"{PERF}/nr_perf_events", "1" if event else "0"),
    ]
    pairs += [(f"{PERF}/0/{name}", value) for name, value in (event or {}).items()]
    write_ok(vm, pairs)


@pytest.fixture
def vm(lab_series_vm: LabVm) -> Iterator[LabVm]:
    """The shared VM with no kdamond before and after each test (other test files share
    it and may leave DAMON configured, as the benchmark's tests do)."""
    _no_kdamond(lab_series_vm)
    yield lab_series_vm
    _no_kdamond(lab_series_vm)


def _no_kdamond(vm: LabVm) -> None:
    vm.ssh(
        f'if [ -e {KDAMOND}/state ] && [ "$(cat {KDAMOND}/state)" = on ]; '
        f"then echo off > {KDAMOND}/state; fi; echo 0 > {ADMIN}/kdamonds/nr_kdamonds",
        check=False,
    )


# --------------------------------------------------------------------------- (a) tree


def test_context_tree_has_every_v3_file_with_its_default(vm: LabVm) -> None:
    write_ok(vm, [(f"{ADMIN}/kdamonds/nr_kdamonds", "1"), (f"{KDAMOND}/contexts/nr_contexts", "1")])
    files = vm.ssh(f"cd {ATTRS} && find . -type f | sort").stdout.split()
    assert files == [
        "./intervals/aggr_us",
        "./intervals/sample_us",
        "./intervals/update_us",
        "./nr_regions/max",
        "./nr_regions/min",
        "./sample/filters/nr_filters",
        "./sample/primitives/page_fault",
        "./sample/primitives/page_table",
        "./sample/primitives/perf_events/nr_perf_events",
    ]
    dirs = vm.ssh(f"cd {ATTRS}/sample && find . -type d | sort").stdout.split()
    assert dirs == [".", "./filters", "./primitives", "./primitives/perf_events"]
    assert read(
        vm,
        f"{SAMPLE}/primitives/page_table",
        f"{SAMPLE}/primitives/page_fault",
        f"{PERF}/nr_perf_events",
        f"{FILTERS}/nr_filters",
        f"{KDAMOND}/total_reports",
        f"{KDAMOND}/state",
    ) == ["Y", "N", "0", "0", "0", "off"]
    modes = vm.ssh(
        f"stat -c '%a %n' {KDAMOND}/total_reports {SAMPLE}/primitives/page_table "
        f"{PERF}/nr_perf_events {FILTERS}/nr_filters"
    ).stdout.split("\n")
    assert [m.split()[0] for m in modes if m] == ["400", "600", "600", "600"]


def test_primitives_take_booleans(vm: LabVm) -> None:
    write_ok(vm, [(f"{ADMIN}/kdamonds/nr_kdamonds", "1"), (f"{KDAMOND}/contexts/nr_contexts", "1")])
    table, fault = f"{SAMPLE}/primitives/page_table", f"{SAMPLE}/primitives/page_fault"
    results = write(vm, [(table, "n"), (fault, "1"), (table, "maybe"), (fault, "")])
    assert results[:2] == ["ok", "ok"]
    assert results[2].startswith("err") and "Invalid argument" in results[2]
    assert results[3].startswith("err") and "Invalid argument" in results[3]
    assert read(vm, table, fault) == ["N", "Y"]
    write_ok(vm, [(table, "Y"), (fault, "off")])
    assert read(vm, table, fault) == ["Y", "N"]


def test_perf_event_files_parse_and_read_back_as_the_abi_says(vm: LabVm) -> None:
    write_ok(
        vm,
        [
            (f"{ADMIN}/kdamonds/nr_kdamonds", "1"),
            (f"{KDAMOND}/contexts/nr_contexts", "1"),
            (f"{PERF}/nr_perf_events", "2"),
        ],
    )
    names = ["type", "config", "config1", "config2", "sample_phys_addr", "sample_freq"]
    assert vm.ssh(f"ls {PERF}/0").stdout.split() == sorted(names)
    assert vm.ssh(f"ls {PERF}").stdout.split() == ["0", "1", "nr_perf_events"]
    assert read(vm, *(f"{PERF}/1/{n}" for n in names)) == ["0x0"] * 4 + ["0", "0"]

    # Base auto-detection on write, hex on read: 0x1cd == 461 == 0715.
    cases = [
        ("type", "0x4", "0x4"),
        ("type", "4", "0x4"),
        ("config", "0x1cd", "0x1cd"),
        ("config", "461", "0x1cd"),
        ("config", "0715", "0x1cd"),
        ("config1", "0x1f", "0x1f"),
        ("config2", "0", "0x0"),
        ("config", "0xffffffffffffffff", "0xffffffffffffffff"),
        ("sample_phys_addr", "y", "1"),
        ("sample_phys_addr", "0", "0"),
        ("sample_phys_addr", "1", "1"),
        ("sample_freq", "010", "10"),
        ("sample_freq", "5000", "5000"),
    ]
    script = "".join(
        f"printf '%s\\n' {shlex.quote(value)} > {PERF}/0/{name} && cat {PERF}/0/{name}\n"
        for name, value, _shown in cases
    )
    shown_now = vm.ssh(script).stdout.splitlines()
    assert shown_now == [shown for _name, _value, shown in cases]

    refused = [
        ("type", "0x100000000"),
        ("type", "pebs"),
        ("config", "-1"),
        ("sample_phys_addr", "2"),
        ("sample_freq", "0x10"),
        ("sample_freq", "-5"),
    ]
    results = write(vm, [(f"{PERF}/0/{n}", v) for n, v in refused])
    for (name, value), result in zip(refused, results, strict=True):
        assert result.startswith("err"), (name, value, result)
        assert "Invalid argument" in result or "Numerical result out of range" in result
    assert read(vm, f"{PERF}/0/type", f"{PERF}/0/sample_freq") == ["0x4", "5000"]

    # Rewriting nr_perf_events recreates every directory, zeroed.
    write_ok(vm, [(f"{PERF}/nr_perf_events", "1")])
    assert vm.ssh(f"ls {PERF}").stdout.split() == ["0", "nr_perf_events"]
    assert read(vm, *(f"{PERF}/0/{n}" for n in names)) == ["0x0"] * 4 + ["0", "0"]
    assert write(vm, [(f"{PERF}/nr_perf_events", "-1")])[0].startswith("err")


def test_filters_files_have_v3_defaults_and_rules(vm: LabVm) -> None:
    write_ok(
        vm,
        [
            (f"{ADMIN}/kdamonds/nr_kdamonds", "1"),
            (f"{KDAMOND}/contexts/nr_contexts", "1"),
            (f"{FILTERS}/nr_filters", "2"),
        ],
    )
    assert vm.ssh(f"ls {FILTERS}").stdout.split() == ["0", "1", "nr_filters"]
    files = ["type", "matching", "allow", "cpumask"]
    assert vm.ssh(f"ls {FILTERS}/1").stdout.split() == sorted(files)
    assert read(vm, *(f"{FILTERS}/1/{f}" for f in files)) == ["cpumask", "N", "N", ""]

    f0 = f"{FILTERS}/0"
    write_ok(
        vm,
        [
            (f"{f0}/type", "cpumask"),
            (f"{f0}/matching", "Y"),
            (f"{f0}/allow", "yes"),
            (f"{f0}/cpumask", "0,1"),
        ],
    )
    assert read(vm, *(f"{f0}/{f}" for f in files)) == ["cpumask", "Y", "Y", "0-1"]
    write_ok(vm, [(f"{f0}/cpumask", "1"), (f"{f0}/matching", "0")])
    assert read(vm, f"{f0}/cpumask", f"{f0}/matching") == ["1", "N"]

    refused = [("type", "threads"), ("type", "anon"), ("matching", "maybe"), ("cpumask", "x")]
    results = write(vm, [(f"{f0}/{n}", v) for n, v in refused])
    for (name, value), result in zip(refused, results, strict=True):
        assert result.startswith("err") and "Invalid argument" in result, (name, value, result)
    assert read(vm, f"{f0}/type", f"{f0}/cpumask") == ["cpumask", "1"]

    write_ok(vm, [(f"{FILTERS}/nr_filters", "1")])
    assert read(vm, *(f"{FILTERS}/0/{f}" for f in files)) == ["cpumask", "N", "N", ""]
    write_ok(vm, [(f"{FILTERS}/nr_filters", "0")])
    assert vm.ssh(f"ls {FILTERS}").stdout.split() == ["nr_filters"]


def test_total_reports_is_read_only(vm: LabVm) -> None:
    write_ok(vm, [(f"{ADMIN}/kdamonds/nr_kdamonds", "1")])
    result = write(vm, [(f"{KDAMOND}/total_reports", "5")])[0]
    assert result.startswith("err") and "Permission denied" in result
    assert total_reports(vm) == 0


# --------------------------------------------------------------------------- (b), (c)


def wait_growth(vm: LabVm, start: int, window: float) -> tuple[int, float]:
    """Poll ``total_reports`` until it exceeds *start* or *window* seconds pass."""
    began = time.monotonic()
    value = start
    while time.monotonic() - began < window:
        value = total_reports(vm)
        if value > start:
            break
        time.sleep(0.5)
    return value, time.monotonic() - began


def test_pebs_event_fails_is_logged_and_falls_back_to_accessed_bits(vm: LabVm) -> None:
    setup_kdamond(vm, PEBS)
    marker = kernel_log_mark(vm, "pebs")
    write_ok(vm, [(f"{KDAMOND}/state", "on")])
    state, pid = read(vm, f"{KDAMOND}/state", f"{KDAMOND}/pid")
    assert state == "on"
    assert read(vm, f"/proc/{pid}/comm") == ["kdamond.0"]

    log = kernel_log_since(vm, marker)
    failures = [line for line in log if FAILURE.search(line)]
    # The event is dropped at its first failure: one line, for the first online CPU.
    assert failures == ["perf event create on CPU 0 failed with -2"], log
    # The values still read back as written.
    assert read(vm, f"{PERF}/0/type", f"{PERF}/0/config", f"{PERF}/0/config1") == [
        "0x4",
        "0x1cd",
        "0x1f",
    ]
    # No counter exists: nothing reports, while the kdamond keeps monitoring.
    time.sleep(3)
    assert total_reports(vm) == 0
    assert read(vm, f"{KDAMOND}/state") == ["on"]
    print(f"\nPEBS event: {failures[0]!r}; total_reports 0 after 3s, kdamond pid {pid}")


def test_software_event_samples_and_total_reports_grows(vm: LabVm) -> None:
    setup_kdamond(vm, CPU_CLOCK)
    marker = kernel_log_mark(vm, "cpu-clock")
    write_ok(vm, [(f"{KDAMOND}/state", "on")])
    assert read(vm, f"{KDAMOND}/state") == ["on"]
    first, waited = wait_growth(vm, 0, window=10)
    assert first > 0, f"total_reports stayed 0 for {waited:.1f}s"
    time.sleep(2)
    second = total_reports(vm)
    assert second > first
    assert [line for line in kernel_log_since(vm, marker) if FAILURE.search(line)] == []
    print(f"\ncpu-clock at 100 Hz: total_reports {first} after {waited:.1f}s, {second} 2s later")

    # commit rebuilds the events from the new values, and keeps the count.
    marker = kernel_log_mark(vm, "commit-pebs")
    write_ok(vm, [(f"{PERF}/0/{name}", value) for name, value in PEBS.items()])
    write_ok(vm, [(f"{KDAMOND}/state", "commit")])
    failures = [line for line in kernel_log_since(vm, marker) if FAILURE.search(line)]
    assert failures == ["perf event create on CPU 0 failed with -2"]
    after_commit = total_reports(vm)
    assert after_commit >= second
    time.sleep(2)
    assert total_reports(vm) == after_commit

    write_ok(vm, [(f"{PERF}/0/{name}", value) for name, value in CPU_CLOCK.items()])
    write_ok(vm, [(f"{KDAMOND}/state", "commit")])
    grown, waited = wait_growth(vm, after_commit, window=10)
    assert grown > after_commit, f"no sample {waited:.1f}s after commit"

    # off releases the counters: the count stays where it was.
    write_ok(vm, [(f"{KDAMOND}/state", "off")])
    stopped = total_reports(vm)
    time.sleep(2)
    assert total_reports(vm) == stopped
    assert read(vm, f"{KDAMOND}/state") == ["off"]

    # on starts counting from zero again.
    write_ok(vm, [(f"{KDAMOND}/state", "on")])
    restarted, waited = wait_growth(vm, 0, window=10)
    assert 0 < restarted < stopped, (restarted, stopped)


def test_sample_freq_above_the_perf_limit_is_refused_at_creation(vm: LabVm) -> None:
    limit = int(read(vm, "/proc/sys/kernel/perf_event_max_sample_rate")[0])
    setup_kdamond(vm, {**CPU_CLOCK, "sample_freq": str(limit + 1)})
    marker = kernel_log_mark(vm, "freq-limit")
    write_ok(vm, [(f"{KDAMOND}/state", "on")])
    failures = [line for line in kernel_log_since(vm, marker) if FAILURE.search(line)]
    assert failures == ["perf event create on CPU 0 failed with -22"]
    time.sleep(2)
    assert total_reports(vm) == 0


# --------------------------------------------------------------------------- (d)


def sysfs_sh_source(build: dict[str, Any], dest: Path) -> Path:
    """sysfs.sh of the build's own tree (kept by the role), else of the source tarball."""
    kept = Path(build["build_dir"]) / "src" / SYSFS_SH
    if kept.is_file():
        return kept
    member = f"linux-source-6.12/{SYSFS_SH}"
    with tarfile.open(TARBALL) as tar:
        handle = tar.extractfile(member)
        assert handle is not None, member
        out = dest / "sysfs.sh"
        out.write_bytes(handle.read())
    return out


def test_selftest_sysfs_sh_passes(
    vm: LabVm, lab_series_build: dict[str, Any], tmp_path: Path
) -> None:
    script = sysfs_sh_source(lab_series_build, tmp_path)
    vm.scp_to(script, "/root/sysfs.sh")
    # The script runs thousands of short commands. Without address space randomisation
    # each new process maps its code where the last one did, so QEMU's TCG reuses its
    # translated code instead of translating it again for every process. DAMON sysfs
    # behaves the same either way; the setting is restored after.
    randomize = read(vm, "/proc/sys/kernel/randomize_va_space")[0]
    vm.ssh("echo 0 > /proc/sys/kernel/randomize_va_space")
    started = time.monotonic()
    try:
        proc = vm.ssh("bash /root/sysfs.sh", check=False, timeout=900)
    finally:
        vm.ssh(f"echo {shlex.quote(randomize)} > /proc/sys/kernel/randomize_va_space")
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"\nsysfs.sh ({script}): exit 0 in {seconds:.1f}s")


def test_guest_runs_the_series_kernel(vm: LabVm, lab_series_build: dict[str, Any]) -> None:
    assert vm.ssh("uname -r").stdout.strip() == lab_series_build["kernel_release"]
