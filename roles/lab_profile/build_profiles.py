"""Build the lab hardware profiles (``files/profiles/<name>/``) from the real captures.

Each lab VM plays one real machine: the ``perf`` stand-in (``files/perf``) replays that
machine's captured ``perf mem record -vv`` (or ``perf record -vv``) run, and
``perf_mem_facts`` reads the PMU sysfs tree and ``cpuinfo`` written here instead of the
VM's own. Every profile comes from one file of ``tests/fixtures/perf-mem-logs`` (real,
published output with its header lines); ``profile.yml`` in each profile says where every
value comes from: the capture itself, or, where the capture cannot show it, the kernel's
source (named in the note).

Run from the repository root after changing a profile here or a fixture:

    .venv/bin/python roles/lab_profile/build_profiles.py

``tests/unit/test_lab_profiles.py`` rebuilds every profile into a temporary folder and
fails when the committed files differ.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = ROLE_DIR.parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
LOGS = FIXTURES / "perf-mem-logs"
PROFILES_DIR = ROLE_DIR / "files" / "profiles"
HEADER_PREFIXES = ("# SOURCE:", "# CPU:", "# COMPLETENESS:", "# NOTE:")

KERNEL_FORMATS = "kernel source arch/x86/events/intel/core.c (format attributes)"
KERNEL_EVENTS = "kernel source arch/x86/events/intel/core.c (mem-loads/mem-stores attributes)"
KERNEL_FIXED_TYPES = "kernel ABI include/uapi/linux/perf_event.h (fixed PMU types)"

# Intel core PMU format terms. event/umask/ldlat agree with every capture used here
# (config 0x1cd = event 0xcd | umask 0x1 << 8; config1 0x1f = ldlat 30 | 3).
INTEL_FORMATS = {
    "event": "config:0-7",
    "umask": "config:8-15",
    "edge": "config:18",
    "pc": "config:19",
    "inv": "config:23",
    "cmask": "config:24-31",
    "ldlat": "config1:0-15",
    "offcore_rsp": "config1:0-63",
}


@dataclass
class Pmu:
    """One PMU directory: type, format, events and caps, each value with its source."""

    name: str
    type: int
    type_source: str
    formats: Mapping[str, str] = field(default_factory=dict)
    formats_source: str = ""
    events: Mapping[str, str] = field(default_factory=dict)
    events_source: str = ""
    caps: Mapping[str, str] = field(default_factory=dict)
    caps_source: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    files_source: str = ""


@dataclass
class Profile:
    name: str
    plays: str
    fixture: str
    first_line: str  # the first line of the perf run in the fixture (after its header)
    last_line: str | None  # its last line; None: to the end of the fixture
    status: int
    status_source: str
    version: str
    version_source: str
    cpuinfo: str
    cpuinfo_source: str
    pmus: list[Pmu]
    expected: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _software_pmus() -> list[Pmu]:
    return [
        Pmu("software", 1, KERNEL_FIXED_TYPES),
        Pmu("tracepoint", 2, KERNEL_FIXED_TYPES),
        Pmu("breakpoint", 5, KERNEL_FIXED_TYPES),
    ]


def _cpuinfo(count: int, fields: Mapping[str, str | int]) -> str:
    """``count`` processor paragraphs with *fields* (only the fields the profile knows)."""
    paragraphs = []
    for cpu in range(count):
        lines = [f"processor\t: {cpu}"]
        lines += [f"{key}\t: {value}" for key, value in fields.items()]
        paragraphs.append("\n".join(lines) + "\n")
    return "\n".join(paragraphs) + "\n"


PROFILES: list[Profile] = [
    Profile(
        name="sapphirerapids",
        plays="Intel Sapphire Rapids server of the RFC v3 measurement (PEBS load latency)",
        fixture="rfc-v3-cover-letter-example-PARTIAL.log",
        first_line="...",
        last_line=None,
        status=0,
        status_source=(
            "not in the capture; 0 because the run opened its event (the cover letter shows "
            "it as a working example)"
        ),
        version="6.10+",
        version_source=(
            "not in the capture; dated by its format: PMU names '4 (cpu)' and config aliases "
            "appear from perf 6.10 (tests/fixtures/perf-mem-logs docs)"
        ),
        cpuinfo=_cpuinfo(1, {"vendor_id": "GenuineIntel", "cpu family": 6, "model": 143}),
        cpuinfo_source=(
            "vendor from the capture (Intel PEBS event cpu/0x1cd); family 6 model 143 (0x8f) "
            "is Sapphire Rapids X in the kernel's arch/x86/include/asm/intel-family.h, the "
            "model the fixture header infers from the alias mem_trans_retired."
            "load_latency_gt_1024; one processor paragraph: the capture shows CPU 0 only; "
            "model name and flags are not in the capture and left out"
        ),
        pmus=[
            *_software_pmus(),
            Pmu(
                "cpu",
                4,
                "the capture: 'type 4 (cpu)'",
                formats=INTEL_FORMATS,
                formats_source=KERNEL_FORMATS,
                events={
                    "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
                    "mem-stores": "event=0xcd,umask=0x2",
                },
                events_source=(
                    "mem-loads agrees with the capture (config 0x1cd, config1 0x1f = ldlat 30 "
                    "| the alias's 3); mem-stores from " + KERNEL_EVENTS + " (Sapphire "
                    "Rapids); no mem-loads-aux: the capture shows the load event opened "
                    "alone (group_fd -1, read_format without GROUP), which perf does only "
                    "when the PMU has no mem-loads-aux"
                ),
                caps={"pmu_name": "sapphire_rapids", "max_precise": "3"},
                caps_source=(
                    "pmu_name: the kernel's name for the model the header infers; "
                    "max_precise: the kernel's value for PEBS with PDIST (the capture's "
                    "event opened at precise_ip 2)"
                ),
            ),
        ],
        expected={
            "classification": "pebs",
            "damon_perf_events": [
                {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 0x1F, "config2": 0}
            ],
        },
    ),
    Profile(
        name="raptorlake-hybrid",
        plays="13th Gen Intel Core i7-1365U laptop (Raptor Lake-U hybrid: cpu_core + cpu_atom)",
        fixture="raptorlake-hybrid-i7-1365U-lore-ZhlLq2SBPzNWQvcI.log",
        first_line="calling: record -e cpu_atom/mem-loads,ldlat=30/P -e cpu_atom/mem-stores/P ",
        last_line="perf record has started",
        status=0,
        status_source=(
            "not in the capture (the run was stopped with ^C after 'perf record has "
            "started'); 0, as perf record ends after recording"
        ),
        version="6.10-dev",
        version_source="the fixture header: perf-tools-next of April 2024 (v6.10 development)",
        cpuinfo=_cpuinfo(
            12,
            {
                "vendor_id": "GenuineIntel",
                "cpu family": 6,
                "model": 186,
                "model name": "13th Gen Intel(R) Core(TM) i7-1365U",
            },
        ),
        cpuinfo_source=(
            "model name from the fixture header; 12 processors: the capture opens its dummy "
            "event on CPUs 0-11; family 6 model 186 (0xba) is Raptor Lake-P/U in the "
            "kernel's arch/x86/include/asm/intel-family.h; flags are not in the capture"
        ),
        pmus=[
            *_software_pmus(),
            Pmu(
                "cpu_core",
                4,
                "the capture: 'cpu/cycles/:HG' opened with config 0x400000000 (extended "
                "hardware type: PMU type 4 in the high word)",
                formats=INTEL_FORMATS,
                formats_source=KERNEL_FORMATS,
                events={
                    "mem-loads-aux": "event=0x03,umask=0x82",
                    "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
                    "mem-stores": "event=0xcd,umask=0x2",
                },
                events_source=(
                    KERNEL_EVENTS + " (hybrid core PMU); this perf build opened no "
                    "cpu_core event (the bug the message discusses)"
                ),
                caps={"pmu_name": "alderlake_hybrid", "max_precise": "3"},
                caps_source="the kernel's values for the Alder/Raptor Lake hybrid PMU",
                files={"cpus": "0-3"},
                files_source="the capture: the cpu_atom events open on CPUs 4-11 of 0-11",
            ),
            Pmu(
                "cpu_atom",
                10,
                "the capture: 'type 10 (cpu_atom)', and 'cpu/cycles/:HG' with config 0xa00000000",
                formats=INTEL_FORMATS,
                formats_source=KERNEL_FORMATS,
                events={
                    "mem-loads": "event=0xd0,umask=0x5,ldlat=3",
                    "mem-stores": "event=0xd0,umask=0x6",
                },
                events_source=(
                    "the capture: '.after resolving event: cpu_atom/event=0xd0,umask=0x5,"
                    "ldlat=0x3,ldlat=0x1e/' and 'cpu_atom/event=0xd0,umask=0x6/'"
                ),
                caps={"pmu_name": "alderlake_hybrid", "max_precise": "3"},
                caps_source=(
                    "pmu_name: the kernel's value for the hybrid PMU; max_precise: the "
                    "capture opens cpu_atom events at precise_ip 3"
                ),
                files={"cpus": "4-11"},
                files_source="the capture: cpu_atom events open on CPUs 4-11",
            ),
        ],
        expected={
            "classification": "pebs",
            "damon_perf_events": [
                {"pmu": "cpu_atom", "type": 10, "config": 0x5D0, "config1": 0x1F, "config2": 0}
            ],
        },
        notes=[
            "The capture is -vvv and only this perf build's cpu_atom events opened; the "
            "replay gives what it gave.",
        ],
    ),
    Profile(
        name="icelake-sp",
        plays="Intel Ice Lake-SP Xeon (CPUID GenuineIntel-6-6A-5), PEBS load event",
        fixture="icelake-sp-blog-memtis-reproduce-run1-kernel5.15-fallback.log",
        first_line="Using CPUID GenuineIntel-6-6A-5",
        last_line=None,
        status=0,
        status_source="not in the capture (it ends at 'Synthesizing id index'); 0",
        version="6.5-6.9",
        version_source="the fixture header (dated by format)",
        cpuinfo=_cpuinfo(
            4, {"vendor_id": "GenuineIntel", "cpu family": 6, "model": 106, "stepping": 5}
        ),
        cpuinfo_source=(
            "the capture: 'Using CPUID GenuineIntel-6-6A-5' (family 6, model 0x6a, stepping "
            "5) and events opened on CPUs 0-3; model name and flags are not in the capture"
        ),
        pmus=[
            *_software_pmus(),
            Pmu(
                "cpu",
                4,
                "the capture: pmu 'cpu' and 'type 4 (PERF_TYPE_RAW)'",
                formats=INTEL_FORMATS,
                formats_source=KERNEL_FORMATS,
                events={
                    "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
                    "mem-stores": "event=0xd0,umask=0x82",
                },
                events_source=KERNEL_EVENTS + " (Ice Lake)",
                caps={"pmu_name": "icelake", "max_precise": "3"},
                caps_source=(
                    "pmu_name: the kernel's name for Ice Lake; max_precise: the capture's "
                    "event opens at precise_ip 3"
                ),
            ),
        ],
        expected={
            "classification": "pebs",
            "damon_perf_events": [
                {"pmu": "cpu", "type": 4, "config": 0x1D3, "config1": 0, "config2": 0}
            ],
        },
        notes=[
            "The capture is 'perf record -vv -e MEM_LOAD_L3_MISS_RETIRED.LOCAL_DRAM:Pu' "
            "(not perf mem record): the event detected is that PEBS load event.",
        ],
    ),
    Profile(
        name="amd-epyc-vm",
        plays="this project's build machine: an AMD EPYC KVM guest without IBS or PEBS",
        fixture="amd-epyc-vm-perf6.1-mem-unsupported.log",
        first_line="failed: memory events not supported",
        last_line=None,
        status=255,
        status_source="the fixture header: exit status 255",
        version="6.1.187",
        version_source="the fixture header: perf 6.1.187",
        cpuinfo=(FIXTURES / "cpuinfo" / "amd-epyc-kvm-guest.txt").read_text(),
        cpuinfo_source=(
            "tests/fixtures/cpuinfo/amd-epyc-kvm-guest.txt: /proc/cpuinfo of the same build "
            "machine, captured the same day"
        ),
        pmus=_software_pmus(),
        expected={"classification": "none", "damon_perf_events": []},
        notes=["The capture shows no PMU; the tree has only the kernel's fixed ones."],
    ),
]


def replay_lines(profile: Profile) -> list[str]:
    """The lines of the perf run in the fixture, verbatim (header and prompts left out)."""
    lines = (LOGS / profile.fixture).read_text().splitlines()
    start = lines.index(profile.first_line)
    end = len(lines) if profile.last_line is None else lines.index(profile.last_line, start) + 1
    return lines[start:end]


def fixture_header(profile: Profile) -> list[str]:
    lines = (LOGS / profile.fixture).read_text().splitlines()
    return [line for line in lines[:6] if line.startswith(HEADER_PREFIXES)]


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key (yamllint's default style)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, explicit_start=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _pmu_meta(pmu: Pmu) -> dict[str, Any]:
    meta: dict[str, Any] = {"type": pmu.type, "type_from": pmu.type_source}
    for key, values, source in (
        ("format", pmu.formats, pmu.formats_source),
        ("events", pmu.events, pmu.events_source),
        ("caps", pmu.caps, pmu.caps_source),
        ("files", pmu.files, pmu.files_source),
    ):
        if values:
            meta[key] = dict(values)
            meta[f"{key}_from"] = source
    return meta


def build(profile: Profile, dest: Path) -> None:
    """Write *profile* into *dest* (created; must not exist)."""
    dest.mkdir(parents=True)
    _write(dest / "replay" / "stderr", "\n".join(replay_lines(profile)) + "\n")
    _write(dest / "replay" / "stdout", "")
    _write(dest / "replay" / "status", f"{profile.status}\n")
    _write(dest / "replay" / "version", f"perf version {profile.version}\n")
    _write(dest / "proc" / "cpuinfo", profile.cpuinfo)
    devices = dest / "sys" / "bus" / "event_source" / "devices"
    for pmu in profile.pmus:
        base = devices / pmu.name
        _write(base / "type", f"{pmu.type}\n")
        for group, values in (("format", pmu.formats), ("events", pmu.events), ("caps", pmu.caps)):
            for attr, value in values.items():
                _write(base / group / attr, f"{value}\n")
        for attr, value in pmu.files.items():
            _write(base / attr, f"{value}\n")
    meta = {
        "name": profile.name,
        "plays": profile.plays,
        "fixture": f"tests/fixtures/perf-mem-logs/{profile.fixture}",
        "fixture_header": fixture_header(profile),
        "replay": {
            "stderr": (
                f"the fixture's lines from {profile.first_line!r} to "
                f"{profile.last_line or 'its end'!r}, verbatim (perf prints -vv to stderr)"
            ),
            "stdout": "empty (the capture has none apart from stderr)",
            "status": profile.status,
            "status_from": profile.status_source,
            "version": profile.version,
            "version_from": profile.version_source,
        },
        "cpuinfo_from": profile.cpuinfo_source,
        "proc_sys": "a symlink to the guest's own /proc/sys (sysctls and osrelease are real)",
        "pmus": {pmu.name: _pmu_meta(pmu) for pmu in profile.pmus},
        "expected": profile.expected,
        "notes": profile.notes,
    }
    header = (
        f"# Lab profile {profile.name}: generated by roles/lab_profile/build_profiles.py from\n"
        f"# tests/fixtures/perf-mem-logs/{profile.fixture}. Do not edit; rebuild.\n"
    )
    _write(dest / "profile.yml", header + _yaml(meta))


def write_index(target: Path) -> None:
    """``index.yml``: every profile's name and the machine it plays (the role, the lab_fleet
    role and ``damon-fleet lab up --profile`` read the names from it)."""
    index = {"profiles": {p.name: p.plays for p in sorted(PROFILES, key=lambda p: p.name)}}
    header = "# Lab profiles: generated by roles/lab_profile/build_profiles.py. Do not edit.\n"
    _write(target / "index.yml", header + _yaml(index))


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else PROFILES_DIR
    if target.exists():
        shutil.rmtree(target)
    for profile in PROFILES:
        build(profile, target / profile.name)
    write_index(target)
    print(f"{len(PROFILES)} profiles written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
