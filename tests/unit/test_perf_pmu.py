"""Tests for the PMU sysfs reader and the perf-style event resolver.

The sysfs trees come from pmu_trees.py: BUILT from documented values, not captured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.pmu import (
    FormatTerm,
    Pmu,
    PmuError,
    ResolvedEvent,
    find_pmu,
    parse_format,
    pmu_by_type,
    pmu_sysfs_summary,
    read_pmus,
    resolve_event,
)
from pmu_trees import (
    TREES,
    build_amd_zen,
    build_hybrid,
    build_icelake_server,
    build_sapphire_rapids,
    build_vm,
    make_pmu,
)


def _pmus(builder: Callable[[Path], Path], tmp_path: Path, **kwargs: bool) -> list[Pmu]:
    pmus: list[Pmu] = read_pmus(str(builder(tmp_path)), **kwargs)
    return pmus


def _pmu(pmus: list[Pmu], name: str) -> Pmu:
    pmu = find_pmu(pmus, name)
    assert pmu is not None, name
    return pmu


# ------------------------------------------------------------------ format parsing


@pytest.mark.parametrize(
    ("text", "field", "bits", "mask"),
    [
        ("config:0-7", "config", [(0, 7)], 0xFF),
        ("config:8-15\n", "config", [(8, 15)], 0xFF00),
        ("config1:0-15", "config1", [(0, 15)], 0xFFFF),
        ("config:21", "config", [(21, 21)], 1 << 21),
        ("config:0-7,32-35", "config", [(0, 7), (32, 35)], 0xF000000FF),
        ("config2:0", "config2", [(0, 0)], 1),
        ("config3:4-5", "config3", [(4, 5)], 0x30),
        ("config1:0-63", "config1", [(0, 63)], (1 << 64) - 1),
    ],
)
def test_parse_format(text: str, field: str, bits: list[tuple[int, int]], mask: int) -> None:
    term = parse_format("t", text)
    assert term == FormatTerm("t", field, bits)
    assert term.mask == mask
    assert str(term) == text.strip()
    assert json.loads(json.dumps(term.to_dict()))["bits"] == [list(b) for b in bits]


@pytest.mark.parametrize(
    "text", ["", "config", "config:", "config:7-0", "config:64", "cfg:0-7", "config4:0", "x"]
)
def test_parse_format_rejects(text: str) -> None:
    with pytest.raises(PmuError, match=r"format 't'.*accepted"):
        parse_format("t", text)


def test_split_format_scatters_low_bits_first() -> None:
    term = parse_format("event", "config:32-35,0-7")  # listed order does not matter
    assert term.positions == [*range(8), *range(32, 36)]
    assert term.encode(0x1FF) == 0x1000000FF
    assert term.max_value == 0xFFF
    with pytest.raises(PmuError, match="too big"):
        term.encode(0x1000)


# ------------------------------------------------------------------ reading sysfs


def test_icelake_tree(tmp_path: Path) -> None:
    pmus = _pmus(build_icelake_server, tmp_path)
    assert [p.name for p in pmus] == sorted(p.name for p in pmus)
    cpu = _pmu(pmus, "cpu")
    assert (cpu.type, cpu.pmu_name, cpu.max_precise) == (4, "icelake", 3)
    assert cpu.mem_events == {
        "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
        "mem-stores": "event=0xd0,umask=0x82",
    }
    assert cpu.events["cpu-cycles"] == "event=0x3c"
    assert str(cpu.formats["ldlat"]) == "config1:0-15"
    assert cpu.formats["any"].bits == [(21, 21)]
    assert cpu.caps["branches"] == "32"
    assert cpu.notes == []
    power = _pmu(pmus, "power")
    assert set(power.events) == {"energy-pkg", "energy-ram"}  # .scale/.unit are not aliases
    assert _pmu(pmus, "software").type == 1
    assert _pmu(pmus, "tracepoint").type == 2
    assert _pmu(pmus, "breakpoint").type == 5
    assert _pmu(pmus, "breakpoint").formats == {}
    assert _pmu(pmus, "msr").events["aperf"] == "event=0x01"


def test_sapphire_rapids_tree(tmp_path: Path) -> None:
    cpu = _pmu(_pmus(build_sapphire_rapids, tmp_path), "cpu")
    assert cpu.pmu_name == "sapphire_rapids"
    assert cpu.mem_events == {
        "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
        "mem-stores": "event=0xcd,umask=0x2",
        "mem-loads-aux": "event=0x03,umask=0x82",
    }


def test_hybrid_tree(tmp_path: Path) -> None:
    pmus = _pmus(build_hybrid, tmp_path)
    assert find_pmu(pmus, "cpu") is None
    assert _pmu(pmus, "cpu_core").type == 4
    atom = _pmu(pmus, "cpu_atom")
    assert atom.type == 10
    assert atom.mem_events == {
        "mem-loads": "event=0xd0,umask=0x5,ldlat=3",
        "mem-stores": "event=0xd0,umask=0x6",
    }
    assert pmu_by_type(pmus, 10) is atom
    assert pmu_by_type(pmus, 4) is _pmu(pmus, "cpu_core")
    assert pmu_by_type(pmus, 99) is None


def test_amd_tree(tmp_path: Path) -> None:
    pmus = _pmus(build_amd_zen, tmp_path)
    assert all(not p.mem_events for p in pmus)
    cpu = _pmu(pmus, "cpu")
    assert (cpu.pmu_name, cpu.max_precise) == (None, 0)
    ibs_op = _pmu(pmus, "ibs_op")
    assert ibs_op.type == 11
    assert ibs_op.events == {}
    assert str(ibs_op.formats["ldlat"]) == "config1:0-11"
    assert ibs_op.caps["ldlat"] == "1"
    assert _pmu(pmus, "ibs_fetch").type == 10


def test_vm_tree(tmp_path: Path) -> None:
    pmus = _pmus(build_vm, tmp_path)
    assert [p.name for p in pmus] == ["breakpoint", "cpu", "software", "tracepoint"]
    cpu = _pmu(pmus, "cpu")
    assert cpu.mem_events == {}
    assert cpu.max_precise == 0


@pytest.mark.parametrize("name", sorted(TREES))
def test_summary_is_json_ready(name: str, tmp_path: Path) -> None:
    pmus = _pmus(TREES[name], tmp_path)
    summary = pmu_sysfs_summary(pmus)
    assert json.loads(json.dumps(summary)) == summary
    assert [s["name"] for s in summary] == [p.name for p in pmus]
    assert set(summary[0]) == {"name", "type", "pmu_name", "max_precise", "mem_events"}
    for pmu in pmus:
        json.dumps(pmu.to_dict())


def test_summary_values(tmp_path: Path) -> None:
    summary = pmu_sysfs_summary(_pmus(build_hybrid, tmp_path))
    atom = next(s for s in summary if s["name"] == "cpu_atom")
    assert atom == {
        "name": "cpu_atom",
        "type": 10,
        "pmu_name": "alderlake_hybrid",
        "max_precise": 3,
        "mem_events": {
            "mem-loads": "event=0xd0,umask=0x5,ldlat=3",
            "mem-stores": "event=0xd0,umask=0x6",
        },
    }


def test_missing_sysfs_gives_empty_list(tmp_path: Path) -> None:
    assert read_pmus(str(tmp_path / "nope")) == []
    (tmp_path / "sys" / "bus" / "event_source").mkdir(parents=True)
    assert read_pmus(str(tmp_path / "sys")) == []


def test_garbage_is_skipped(tmp_path: Path) -> None:
    sysfs = build_icelake_server(tmp_path)
    cpu_dir = sysfs / "devices" / "cpu"
    (cpu_dir / "format" / "bogus").write_text("config9:whatever\n")
    (cpu_dir / "format" / "binary").write_bytes(b"\xff\xfe\x00")
    (cpu_dir / "events" / "empty").write_text("")
    (cpu_dir / "events" / "a-dir").mkdir()
    (cpu_dir / "caps" / "max_precise").write_text("lots\n")
    make_pmu(sysfs, "notype", 3)
    (sysfs / "devices" / "notype" / "type").write_text("garbage\n")
    make_pmu(sysfs, "typeless", 3)
    (sysfs / "devices" / "typeless" / "type").unlink()
    make_pmu(sysfs, "hugetype", 1 << 40)
    bus = sysfs / "bus" / "event_source" / "devices"
    os.symlink("../../../devices/gone", bus / "dangling")
    (bus / "stray-file").write_text("x\n")

    pmus = read_pmus(str(sysfs))
    names = {p.name for p in pmus}
    assert not names & {"notype", "typeless", "hugetype", "dangling", "stray-file"}
    cpu = _pmu(pmus, "cpu")
    assert cpu.max_precise is None
    assert "bogus" not in cpu.formats and "binary" not in cpu.formats
    assert "empty" not in cpu.events and "a-dir" not in cpu.events
    assert cpu.formats["event"].bits == [(0, 7)]
    assert any("bogus" in note for note in cpu.notes)
    assert resolve_event("cpu/mem-loads,ldlat=30/P", pmus).config1 == 0x1F


def test_empty_pmu_name_cap_is_none(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "cpu", 4, caps={"pmu_name": "", "max_precise": "2"})
    (cpu,) = read_pmus(str(sysfs))
    assert (cpu.pmu_name, cpu.max_precise) == (None, 2)


def test_mem_only_reading_loads_other_aliases_on_demand(tmp_path: Path) -> None:
    pmus = _pmus(build_icelake_server, tmp_path, all_events=False)
    cpu = _pmu(pmus, "cpu")
    assert set(cpu.events) == {"mem-loads", "mem-stores"}
    assert cpu.mem_events["mem-loads"] == "event=0xcd,umask=0x1,ldlat=3"
    assert resolve_event("cpu/cpu-cycles/", pmus).config == 0x3C
    assert cpu.events["instructions"] == "event=0xc0"
    assert cpu.events_dir is None


# ------------------------------------------------------------------ resolving events


@pytest.fixture
def icelake(tmp_path: Path) -> list[Pmu]:
    return _pmus(build_icelake_server, tmp_path)


@pytest.fixture
def spr(tmp_path: Path) -> list[Pmu]:
    return _pmus(build_sapphire_rapids, tmp_path)


@pytest.fixture
def hybrid(tmp_path: Path) -> list[Pmu]:
    return _pmus(build_hybrid, tmp_path)


@pytest.fixture
def amd(tmp_path: Path) -> list[Pmu]:
    return _pmus(build_amd_zen, tmp_path)


@pytest.fixture
def vm(tmp_path: Path) -> list[Pmu]:
    return _pmus(build_vm, tmp_path)


def _numbers(event: ResolvedEvent) -> tuple[int, int, int, int]:
    return (event.type, event.config, event.config1, event.config2)


def test_perf_mem_loads_alias_or_user_ldlat(icelake: list[Pmu]) -> None:
    # The documented perf mem record result: alias ldlat=3 ORed with ldlat=30.
    event = resolve_event("cpu/mem-loads,ldlat=30/P", icelake)
    assert _numbers(event) == (4, 0x1CD, 0x1F, 0)
    assert event.modifiers == "P"
    assert event.to_dict() == {
        "pmu": "cpu",
        "type": 4,
        "config": 0x1CD,
        "config1": 0x1F,
        "config2": 0,
    }


def test_user_term_before_alias_gives_the_same_or(icelake: list[Pmu]) -> None:
    assert resolve_event("cpu/ldlat=30,mem-loads/", icelake).config1 == 0x1F


@pytest.mark.parametrize(
    ("spec", "numbers"),
    [
        ("cpu/mem-loads/", (4, 0x1CD, 3, 0)),
        ("cpu/mem-stores/P", (4, 0x82D0, 0, 0)),
        ("cpu/event=0xcd,umask=0x1,ldlat=3/", (4, 0x1CD, 3, 0)),
        ("cpu/event=205,umask=1,ldlat=30/pp", (4, 0x1CD, 30, 0)),
        ("cpu/config=0x1cd,config1=0x1f/", (4, 0x1CD, 0x1F, 0)),
        ("cpu/config=0x1cd,config2=7/S", (4, 0x1CD, 0, 7)),
        ("cpu/event=mem-loads/", (4, 0x1CD, 3, 0)),
        ("cpu/MEM-LOADS/", (4, 0x1CD, 3, 0)),
        ("cpu/event=0x3c,edge,inv,cmask=2/", (4, 0x284003C, 0, 0)),
        ("cpu/cycles-ct/", (4, 0x30000003C, 0, 0)),
        ("cpu/r1cd/", (4, 0x1CD, 0, 0)),
        ("cpu/mem-loads,ldlat=30,name=loads,period=1000/:P", (4, 0x1CD, 0x1F, 0)),
        ("cpu/name='a,b',event=0x3c/", (4, 0x3C, 0, 0)),
        ("  cpu/ mem-loads , ldlat=30 /P ", (4, 0x1CD, 0x1F, 0)),
        ("msr/aperf/", (9, 1, 0, 0)),
        ("power/energy-pkg/", (10, 2, 0, 0)),
        ("software//", (1, 0, 0, 0)),
        ("kprobe/retprobe/", (6, 1, 0, 0)),
        ("uprobe/ref_ctr_offset=0x10/", (7, 0x1000000000, 0, 0)),
    ],
)
def test_resolve_icelake(icelake: list[Pmu], spec: str, numbers: tuple[int, ...]) -> None:
    assert _numbers(resolve_event(spec, icelake)) == numbers


def test_hardcoded_config_is_assigned_before_format_terms(icelake: list[Pmu]) -> None:
    # perf applies config= first (assignment), then ORs format terms in.
    assert resolve_event("cpu/event=0x10,config=0x1cd/", icelake).config == 0x1DD
    assert resolve_event("cpu/config=0x1,config=0x2/", icelake).config == 0x2


def test_resolve_sapphire_rapids(spr: list[Pmu]) -> None:
    assert _numbers(resolve_event("cpu/mem-loads-aux/", spr)) == (4, 0x8203, 0, 0)
    assert _numbers(resolve_event("cpu/mem-stores/P", spr)) == (4, 0x2CD, 0, 0)
    assert _numbers(resolve_event("cpu/mem-loads,ldlat=30/P", spr)) == (4, 0x1CD, 0x1F, 0)


def test_resolve_hybrid(hybrid: list[Pmu]) -> None:
    atom = resolve_event("cpu_atom/mem-loads,ldlat=30/P", hybrid)
    assert _numbers(atom) == (10, 0x5D0, 0x1F, 0)
    assert atom.pmu == "cpu_atom"
    assert _numbers(resolve_event("cpu_atom/mem-stores/P", hybrid)) == (10, 0x6D0, 0, 0)
    assert _numbers(resolve_event("cpu_core/mem-loads,ldlat=30/P", hybrid)) == (4, 0x1CD, 0x1F, 0)
    assert _numbers(resolve_event("cpu_core/mem-loads-aux/", hybrid)) == (4, 0x8203, 0, 0)


def test_resolve_amd(amd: list[Pmu]) -> None:
    assert _numbers(resolve_event("ibs_op//", amd)) == (11, 0, 0, 0)
    assert _numbers(resolve_event("ibs_op/ldlat=0/", amd)) == (11, 0, 0, 0)
    assert _numbers(resolve_event("ibs_op/ldlat=128,l3missonly/", amd)) == (11, 1 << 16, 128, 0)
    assert _numbers(resolve_event("ibs_op/cnt_ctl=1,swfilt/", amd)) == (11, 1 << 19, 0, 1)
    # AMD's split event field: bits 8-11 of the value land in config bits 32-35.
    assert resolve_event("cpu/event=0x1ff/", amd).config == 0x1000000FF
    assert resolve_event("cpu/cpu-cycles/", amd).config == 0x76


def test_zeroing_pmu_replaces_bits(icelake: list[Pmu], tmp_path: Path) -> None:
    # intel_pt: later terms replace earlier bits (perf configures it with zero=true).
    assert resolve_event("intel_pt/mtc_period=3,mtc_period=1/", icelake).config == 1 << 14
    sysfs = tmp_path / "spe"
    make_pmu(
        sysfs,
        "arm_spe_0",
        12,
        formats={"min_latency": "config2:0-11", "load_filter": "config:33"},
        events={"lat": "min_latency=100"},
    )
    pmus = read_pmus(str(sysfs))
    event = resolve_event("arm_spe_0/lat,min_latency=30,load_filter=1/", pmus)
    assert _numbers(event) == (12, 1 << 33, 0, 30)


def test_param_term_from_alias(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(
        sysfs,
        "uncore_x",
        20,
        formats={"event": "config:0-7", "ch_mask": "config1:0-7"},
        events={"rd": "event=0x2,ch_mask=?"},
    )
    pmus = read_pmus(str(sysfs))
    assert _numbers(resolve_event("uncore_x/rd,ch_mask=0x5/", pmus)) == (20, 2, 5, 0)
    with pytest.raises(PmuError, match=r"required parameter 'ch_mask'.*ch_mask=<number>"):
        resolve_event("uncore_x/rd/", pmus)


def test_alias_with_hardcoded_config(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "i915", 21, events={"actual-frequency": "config=0x100000"})
    pmus = read_pmus(str(sysfs))
    assert _numbers(resolve_event("i915/actual-frequency/", pmus)) == (21, 0x100000, 0, 0)


def test_bare_alias_on_unique_pmu(icelake: list[Pmu]) -> None:
    event = resolve_event("mem-loads:P", icelake)
    assert _numbers(event) == (4, 0x1CD, 3, 0)
    assert event.modifiers == "P"


def test_bare_alias_on_hybrid_asks_for_pmu(hybrid: list[Pmu]) -> None:
    with pytest.raises(PmuError) as err:
        resolve_event("mem-loads", hybrid)
    assert "'cpu_core/mem-loads/'" in str(err.value)
    assert "'cpu_atom/mem-loads/'" in str(err.value)


def test_bare_unknown_name(vm: list[Pmu]) -> None:
    with pytest.raises(PmuError, match=r"'mem-loads' is not a sysfs event alias.*pmu/alias/"):
        resolve_event("mem-loads", vm)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("foo/x/", r"unknown PMU 'foo' in event 'foo/x/'; PMUs here: breakpoint, cpu"),
        ("cpu/bar=1/", r"unknown term 'bar' for PMU cpu.*format terms: any, cmask, edge"),
        ("cpu/bar/", r"unknown term 'bar' for PMU cpu.*event aliases: .*mem-loads"),
        ("cpu/ldlat=0x10000/", r"value 0x10000 too big for term 'ldlat' \(config1:0-15\)"),
        ("cpu/event=0x100/", r"too big for term 'event'.*accepted: 0\.\.0xff"),
        ("cpu/ldlat/", r"no value assigned for term 'ldlat'.*ldlat=<0\.\.0xffff>"),
        ("cpu/event=abc/", r"'event=abc'.*needs a number.*decimal or 0x hex"),
        ("cpu/config=abc/", r"'config=abc'.*needs a number"),
        ("cpu/ldlat=/", r"term 'ldlat=' has no value"),
        ("cpu/event=0x3c,,umask=1/", r"empty term"),
        ("cpu/event=0x3c", r"no closing '/'.*'ibs_op//'"),
        ("/event=1/", r"names no PMU.*with a PMU from: breakpoint"),
        ("cpu/mem-loads/P!", r"bad modifiers 'P!'"),
        ("{cpu/mem-loads-aux/,cpu/mem-loads/}:P", r"is a group"),
        ("mem-loads,mem-stores", r"is a list"),
        ("", r"empty event"),
        ("cpu/event=0x1ffffffffffffffff/", r"does not fit in 64 bits"),
        ("cpu/ev$nt=1/", r"bad term name"),
        ("software/event=1/", r"unknown term 'event' for PMU software.*\(none: this PMU takes"),
    ],
)
def test_errors_name_input_and_accepted(icelake: list[Pmu], spec: str, pattern: str) -> None:
    with pytest.raises(PmuError, match=pattern):
        resolve_event(spec, icelake)


def test_error_for_alias_term_names_the_alias(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    make_pmu(sysfs, "p", 30, formats={"event": "config:0-3"}, events={"bad": "event=0x10"})
    with pytest.raises(PmuError, match=r"alias p/events/bad \('event=0x10'\) of event 'p/bad/'"):
        resolve_event("p/bad/", read_pmus(str(sysfs)))


def test_no_pmus_error(tmp_path: Path) -> None:
    with pytest.raises(PmuError, match=r"PMUs here: \(none: no PMU found in sysfs\)"):
        resolve_event("cpu/mem-loads/", [])


def test_pmu_error_is_value_error() -> None:
    assert issubclass(PmuError, ValueError)


def test_hand_built_pmu() -> None:
    pmu = Pmu(
        name="cpu",
        type=4,
        events={"mem-loads": "event=0xcd,umask=0x1,ldlat=3"},
        formats={
            "event": parse_format("event", "config:0-7"),
            "umask": parse_format("umask", "config:8-15"),
            "ldlat": parse_format("ldlat", "config1:0-15"),
        },
    )
    assert _numbers(resolve_event("cpu/mem-loads,ldlat=30/P", [pmu])) == (4, 0x1CD, 0x1F, 0)
    assert pmu.to_dict()["formats"]["ldlat"] == "config1:0-15"
