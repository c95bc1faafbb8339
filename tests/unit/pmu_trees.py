"""Fake ``/sys/bus/event_source/devices`` trees for the PMU reader's tests.

Every tree here is BUILT from documented values (docs/perf-mem-vv.md, and the kernel's
arch/x86/events format/event/caps attribute definitions), not captured from a host.
Dynamic PMU type numbers (anything but 1, 2, 4 and 5) are plausible choices, except
``cpu_atom`` = 10 and ``ibs_op`` = 11, which are the values seen in the documented logs.

Layout as on a real kernel: the PMU directory lives at ``<sys>/devices/<name>`` and
``<sys>/bus/event_source/devices/<name>`` is a relative symlink to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

INTEL_CORE_FORMATS = {
    "event": "config:0-7",
    "umask": "config:8-15",
    "edge": "config:18",
    "pc": "config:19",
    "any": "config:21",
    "inv": "config:23",
    "cmask": "config:24-31",
    "in_tx": "config:32",
    "in_tx_cp": "config:33",
    "offcore_rsp": "config1:0-63",
    "ldlat": "config1:0-15",
    "frontend": "config1:0-23",
}

INTEL_CORE_EVENTS = {
    "branch-instructions": "event=0xc4",
    "branch-misses": "event=0xc5",
    "bus-cycles": "event=0x3c,umask=0x01",
    "cache-misses": "event=0x2e,umask=0x41",
    "cache-references": "event=0x2e,umask=0x4f",
    "cpu-cycles": "event=0x3c",
    "instructions": "event=0xc0",
    "ref-cycles": "event=0x00,umask=0x03",
    "slots": "event=0x00,umask=0x4",
    "topdown-retiring": "event=0x00,umask=0x80",
    "cycles-t": "event=0x3c,in_tx=1",
    "cycles-ct": "event=0x3c,in_tx=1,in_tx_cp=1",
}

ICELAKE_MEM_EVENTS = {
    "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
    "mem-stores": "event=0xd0,umask=0x82",
}

SPR_MEM_EVENTS = {
    "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
    "mem-stores": "event=0xcd,umask=0x2",
    "mem-loads-aux": "event=0x03,umask=0x82",
}

ATOM_MEM_EVENTS = {
    "mem-loads": "event=0xd0,umask=0x5,ldlat=3",
    "mem-stores": "event=0xd0,umask=0x6",
}

AMD_CORE_FORMATS = {
    "event": "config:0-7,32-35",
    "umask": "config:8-15",
    "edge": "config:18",
    "inv": "config:23",
    "cmask": "config:24-31",
}

AMD_CORE_EVENTS = {
    "cpu-cycles": "event=0x76",
    "instructions": "event=0xc0",
    "cache-references": "event=0x60,umask=0xff",
    "cache-misses": "event=0x64,umask=0x09",
    "branch-instructions": "event=0xc2",
    "branch-misses": "event=0xc3",
    "stalled-cycles-frontend": "event=0xa9",
}

IBS_OP_FORMATS = {
    "cnt_ctl": "config:19",
    "l3missonly": "config:16",
    "ldlat": "config1:0-11",
    "swfilt": "config2:0",
}

IBS_FETCH_FORMATS = {
    "rand_en": "config:57",
    "l3missonly": "config:59",
    "fetchlat": "config1:0-10",
    "swfilt": "config2:0",
}

MSR_EVENTS = {
    "tsc": "event=0x00",
    "aperf": "event=0x01",
    "mperf": "event=0x02",
    "pperf": "event=0x03",
    "smi": "event=0x04",
}

INTEL_PT_FORMATS = {
    "pt": "config:0",
    "cyc": "config:1",
    "mtc": "config:9",
    "tsc": "config:10",
    "noretcomp": "config:11",
    "branch": "config:13",
    "mtc_period": "config:14-17",
    "psb_period": "config:24-27",
}


def make_pmu(
    sysfs: Path,
    name: str,
    pmu_type: int,
    *,
    formats: Mapping[str, str] | None = None,
    events: Mapping[str, str] | None = None,
    caps: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Create ``<sysfs>/devices/<name>`` and its ``bus/event_source/devices`` symlink.

    ``events`` may hold ``<alias>.scale``/``.unit`` entries too; ``files`` are extra
    attributes in the PMU directory (``cpumask``, ``rdpmc``...).
    """
    pmu_dir = sysfs / "devices" / name
    pmu_dir.mkdir(parents=True)
    (pmu_dir / "type").write_text(f"{pmu_type}\n")
    (pmu_dir / "perf_event_mux_interval_ms").write_text("4\n")
    (pmu_dir / "uevent").write_text("")
    groups: dict[str, Mapping[str, str] | None] = {
        "format": formats,
        "events": events,
        "caps": caps,
    }
    for group, values in groups.items():
        if values is None:
            continue
        group_dir = pmu_dir / group
        group_dir.mkdir()
        for attr, value in values.items():
            (group_dir / attr).write_text(f"{value}\n")
    for attr, value in (files or {}).items():
        (pmu_dir / attr).write_text(f"{value}\n")
    bus = sysfs / "bus" / "event_source" / "devices"
    bus.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.join("..", "..", "..", "devices", name), bus / name)
    return pmu_dir


def _common(sysfs: Path, *, kprobe: int = 6, uprobe: int = 7) -> None:
    make_pmu(sysfs, "software", 1)
    make_pmu(sysfs, "tracepoint", 2)
    make_pmu(sysfs, "breakpoint", 5)
    make_pmu(sysfs, "kprobe", kprobe, formats={"retprobe": "config:0"})
    make_pmu(
        sysfs,
        "uprobe",
        uprobe,
        formats={"retprobe": "config:0", "ref_ctr_offset": "config:32-63"},
    )


def _intel_core(
    sysfs: Path,
    name: str,
    pmu_type: int,
    pmu_name: str,
    mem_events: Mapping[str, str],
    *,
    max_precise: int = 3,
) -> None:
    make_pmu(
        sysfs,
        name,
        pmu_type,
        formats=INTEL_CORE_FORMATS,
        events={**INTEL_CORE_EVENTS, **mem_events},
        caps={"pmu_name": pmu_name, "max_precise": str(max_precise), "branches": "32"},
        files={"rdpmc": "1", "freeze_on_smi": "0"},
    )


def _intel_uncore_and_msr(sysfs: Path, *, msr: int, power: int, imc: int) -> None:
    make_pmu(sysfs, "msr", msr, formats={"event": "config:0-63"}, events=MSR_EVENTS)
    make_pmu(
        sysfs,
        "power",
        power,
        formats={"event": "config:0-7"},
        events={
            "energy-pkg": "event=0x02",
            "energy-pkg.scale": "2.3283064365386962890625e-10",
            "energy-pkg.unit": "Joules",
            "energy-ram": "event=0x03",
            "energy-ram.scale": "2.3283064365386962890625e-10",
            "energy-ram.unit": "Joules",
        },
        files={"cpumask": "0,40"},
    )
    make_pmu(
        sysfs,
        "uncore_imc_0",
        imc,
        formats={
            "event": "config:0-7",
            "umask": "config:8-15",
            "edge": "config:18",
            "inv": "config:23",
            "thresh": "config:24-31",
        },
        events={
            "cas_count_read": "event=0x04,umask=0x0f",
            "cas_count_read.scale": "6.103515625e-5",
            "cas_count_read.unit": "MiB",
            "clockticks": "event=0x00,umask=0x00",
        },
        files={"cpumask": "0,40"},
    )


def build_icelake_server(root: Path) -> Path:
    """An Ice Lake server, BUILT from documented values (not captured from a host).

    ``cpu`` type 4, caps pmu_name ``icelake``, max_precise 3, mem-loads
    ``event=0xcd,umask=0x1,ldlat=3``, mem-stores ``event=0xd0,umask=0x82``; plus
    intel_pt, msr, power and one uncore_imc PMU.  Returns the sysfs root.
    """
    sysfs = root / "sys"
    _common(sysfs)
    _intel_core(sysfs, "cpu", 4, "icelake", ICELAKE_MEM_EVENTS)
    make_pmu(
        sysfs,
        "intel_pt",
        8,
        formats=INTEL_PT_FORMATS,
        caps={"mtc": "1", "psb_cyc": "1"},
    )
    _intel_uncore_and_msr(sysfs, msr=9, power=10, imc=14)
    return sysfs


def build_sapphire_rapids(root: Path) -> Path:
    """A Sapphire Rapids server, BUILT from documented values (not captured from a host).

    Like Ice Lake, but caps pmu_name ``sapphire_rapids``, mem-stores
    ``event=0xcd,umask=0x2`` and mem-loads-aux ``event=0x03,umask=0x82``.
    """
    sysfs = root / "sys"
    _common(sysfs)
    _intel_core(sysfs, "cpu", 4, "sapphire_rapids", SPR_MEM_EVENTS)
    _intel_uncore_and_msr(sysfs, msr=9, power=10, imc=15)
    return sysfs


def build_hybrid(root: Path) -> Path:
    """An Alder Lake-like hybrid, BUILT from documented values (not captured from a host).

    ``cpu_core`` type 4 with the Sapphire Rapids style memory events (mem-loads-aux
    included) and ``cpu_atom`` type 10 with mem-loads ``event=0xd0,umask=0x5,ldlat=3``
    and mem-stores ``event=0xd0,umask=0x6``.  No PMU is called ``cpu``.
    """
    sysfs = root / "sys"
    _common(sysfs)
    _intel_core(sysfs, "cpu_core", 4, "alderlake_hybrid", SPR_MEM_EVENTS)
    atom_formats = {
        k: v for k, v in INTEL_CORE_FORMATS.items() if k not in ("any", "in_tx", "in_tx_cp")
    }
    make_pmu(
        sysfs,
        "cpu_atom",
        10,
        formats=atom_formats,
        events={
            "cpu-cycles": "event=0x3c",
            "instructions": "event=0xc0",
            "ref-cycles": "event=0x00,umask=0x03",
            **ATOM_MEM_EVENTS,
        },
        caps={"pmu_name": "alderlake_hybrid", "max_precise": "3", "branches": "32"},
        files={"cpus": "16-23"},
    )
    make_pmu(sysfs, "msr", 11, formats={"event": "config:0-63"}, events=MSR_EVENTS)
    return sysfs


def build_amd_zen(root: Path) -> Path:
    """An AMD Zen 5-like host, BUILT from documented values (not captured from a host).

    Core ``cpu`` type 4 (format event ``config:0-7,32-35``, no memory events, no
    caps/pmu_name), ``ibs_fetch`` type 10 and ``ibs_op`` type 11 (formats cnt_ctl,
    l3missonly, ldlat, swfilt; caps ldlat/zen4_ibs_extensions), no memory event aliases.
    """
    sysfs = root / "sys"
    _common(sysfs)
    make_pmu(
        sysfs,
        "cpu",
        4,
        formats=AMD_CORE_FORMATS,
        events=AMD_CORE_EVENTS,
        caps={"max_precise": "0"},
        files={"rdpmc": "1"},
    )
    make_pmu(
        sysfs,
        "ibs_fetch",
        10,
        formats=IBS_FETCH_FORMATS,
        caps={"zen4_ibs_extensions": "1", "fetchlat": "1"},
    )
    make_pmu(
        sysfs,
        "ibs_op",
        11,
        formats=IBS_OP_FORMATS,
        caps={"zen4_ibs_extensions": "1", "ldlat": "1", "dtlb_pgsize": "1"},
    )
    make_pmu(
        sysfs,
        "msr",
        8,
        formats={"event": "config:0-63"},
        events={"tsc": "event=0x00", "aperf": "event=0x01", "mperf": "event=0x02"},
    )
    return sysfs


def build_vm(root: Path) -> Path:
    """A KVM guest without PEBS, BUILT from documented values (not captured from a host).

    Only ``software`` (1), ``tracepoint`` (2), ``cpu`` (4, generic events, max_precise 0,
    no memory events) and ``breakpoint`` (5).
    """
    sysfs = root / "sys"
    make_pmu(sysfs, "software", 1)
    make_pmu(sysfs, "tracepoint", 2)
    make_pmu(sysfs, "breakpoint", 5)
    make_pmu(
        sysfs,
        "cpu",
        4,
        formats={k: v for k, v in INTEL_CORE_FORMATS.items() if k != "ldlat"},
        events=INTEL_CORE_EVENTS,
        caps={"pmu_name": "icelake", "max_precise": "0", "branches": "0"},
    )
    return sysfs


TREES: dict[str, Callable[[Path], Path]] = {
    "icelake": build_icelake_server,
    "sapphire_rapids": build_sapphire_rapids,
    "hybrid": build_hybrid,
    "amd": build_amd_zen,
    "vm": build_vm,
}
