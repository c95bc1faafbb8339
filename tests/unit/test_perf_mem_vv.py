"""The ``perf mem record -vv`` reader against real logs and synthetic ones."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import (
    HINT_BARE,
    HINT_OMITTED,
    HINT_PERF_TYPE,
    HINT_PERF_TYPE_AMBIGUOUS,
    HINT_PMU_NAMES,
    REASON_MEM_UNSUPPORTED,
    REASON_NEVER_OPENED,
    REASON_NO_ADDR,
    REASON_NOT_VV,
    AttrBlock,
    Kind,
    ParseResult,
    damon_events,
    event_role,
    parse,
    summarize,
)

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "perf-mem-logs"
SEP = "-" * 60


def load(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


def ev(pmu: str | None, type_: int, config: int, c1: int = 0, c2: int = 0) -> dict[str, Any]:
    return {"pmu": pmu, "type": type_, "config": config, "config1": c1, "config2": c2}


@dataclass
class Expected:
    """One row of the fixtures README table, made precise."""

    events: list[dict[str, Any]]
    reason: str | None  # exact reason when not supported
    is_vv_log: bool = True
    blocks: int = 0
    opened: list[int] = field(default_factory=list)  # indexes of blocks that really opened
    fallbacks: list[str] = field(default_factory=list)
    error: str | None = None
    hints: list[str] = field(default_factory=list)


PRECISE = "decreasing precise_ip by one ({})"

EXPECTED: dict[str, Expected] = {
    # Only cpu_atom events were opened by this perf build (the bug discussed in the thread):
    # no cpu_core block exists, so the hybrid gives one event, for cpu_atom.  The stores
    # event (0x6d0) opened too; loads are the default.
    "raptorlake-hybrid-i7-1365U-lore-ZhlLq2SBPzNWQvcI.log": Expected(
        events=[ev("cpu_atom", 10, 0x5D0, 0x1F)],
        reason=None,
        blocks=6,
        opened=[0, 1, 2, 3, 4, 5],
        hints=[HINT_PMU_NAMES],
    ),
    "icelake-sp-blog-memtis-reproduce-run1-kernel5.15-fallback.log": Expected(
        events=[ev(None, 4, 0x1D3)],
        reason=None,
        blocks=6,
        opened=[4, 5],
        fallbacks=[
            PRECISE.format(2),
            PRECISE.format(1),
            PRECISE.format(0),
            "switching off PERF_FORMAT_LOST support",
        ],
        hints=[HINT_PERF_TYPE],
    ),
    "rfc-v3-cover-letter-example-PARTIAL.log": Expected(
        events=[ev("cpu", 4, 0x1CD, 0x1F, 0)],
        reason=None,
        blocks=1,
        opened=[0],
        hints=[HINT_PMU_NAMES],
    ),
    "sapphirerapids-lore-aQ5n4ML9lxY4VAxi-zidechen-memloads-PS.log": Expected(
        events=[],
        reason=REASON_NEVER_OPENED,
        blocks=1,
        hints=[HINT_PMU_NAMES],
    ),
    "sapphirerapids-lore-aQ5n4ML9lxY4VAxi-namhyung-memloadsaux-S.log": Expected(
        events=[],
        reason=(
            "no event opened: sys_perf_event_open failed with error -22 (EINVAL); "
            "no event samples data addresses (ADDR/PHYS_ADDR)"
        ),
        blocks=1,
        fallbacks=[
            "Using PERF_SAMPLE_READ / :S modifier is not compatible with inherit, "
            "falling back to no-inherit."
        ],
        hints=[HINT_PMU_NAMES],
    ),
    "amd-zen5-ryzen9-9950X3D-lore-aBGEPnB5B4NTaOg9-evlist.log": Expected(
        events=[], reason=REASON_NOT_VV, is_vv_log=False
    ),
    "coffeelake-i9-9880H-virtualbox-github-brendangregg-perf-tools-111.log": Expected(
        events=[],
        reason=REASON_MEM_UNSUPPORTED,
        error="failed: memory events not supported",
    ),
    "nehalem-xeon-X5570-github-OpenChannelSSD-linux-48.log": Expected(
        events=[],
        reason="event 'cpu/mem-stores/P' not supported",
        error="failed: event 'cpu/mem-stores/P' not supported",
    ),
    "cascadelake-aws-vm-oxide-propolis-894-cycles-PARTIAL.log": Expected(
        events=[],
        reason=(
            "no event opened: sys_perf_event_open failed with error -2 (ENOENT); "
            "no event samples data addresses (ADDR/PHYS_ADDR)"
        ),
        blocks=1,
        fallbacks=[PRECISE.format(2)],
        hints=[HINT_PERF_TYPE_AMBIGUOUS],
    ),
    "amd-epyc-vm-perf6.1-mem-unsupported.log": Expected(
        events=[],
        reason=REASON_MEM_UNSUPPORTED,
        error="failed: memory events not supported",
    ),
    "amd-epyc-vm-perf6.1-record-cycles-P-fallback.log": Expected(
        events=[],
        reason=REASON_NO_ADDR,
        blocks=5,
        opened=[3, 4],
        fallbacks=[PRECISE.format(2), PRECISE.format(1), PRECISE.format(0)],
        hints=[HINT_BARE, HINT_OMITTED],
    ),
}


def test_every_fixture_has_an_expected_answer() -> None:
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(EXPECTED)
    readme = (LOGS / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert name in readme


def test_fixtures_keep_their_header_lines() -> None:
    for path in LOGS.glob("*.log"):
        head = path.read_text(encoding="utf-8").splitlines()[:3]
        assert [line.split(":")[0] for line in head] == ["# SOURCE", "# CPU", "# COMPLETENESS"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_summary(name: str) -> None:
    want = EXPECTED[name]
    summary = summarize(parse(load(name)))
    assert set(summary) == {"supported", "reason", "events", "damon_perf_events"}
    assert summary["damon_perf_events"] == want.events
    assert summary["supported"] is bool(want.events)
    assert summary["reason"] == want.reason
    json.dumps(summary)  # JSON-ready


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parse(name: str) -> None:
    want = EXPECTED[name]
    result = parse(load(name))
    assert result.is_vv_log is want.is_vv_log
    assert len(result.blocks) == want.blocks
    assert [b.index for b in result.blocks] == list(range(want.blocks))
    assert [b.index for b in result.opened_events] == want.opened
    assert [b.opened for b in result.blocks] == [i in want.opened for i in range(want.blocks)]
    assert result.fallbacks == want.fallbacks
    assert result.error == want.error
    assert result.version_hints == want.hints
    assert json.loads(json.dumps(result.to_dict()))["is_vv_log"] is want.is_vv_log


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_kinds(name: str) -> None:
    """Whatever the kind, only data-address events of opened blocks come out."""
    result = parse(load(name))
    opened = {id(b) for b in result.opened_events}
    kinds: tuple[Kind, ...] = ("loads", "stores", "all")
    for kind in kinds:
        for event in damon_events(result, kind):
            assert event.role in ("load", "store", "data")
            assert any(
                id(b) in opened and (b.type, b.config) == (event.type, event.config)
                for b in result.blocks
            )


# --------------------------------------------------------------------------- fixtures


def test_raptorlake_hybrid_details() -> None:
    result = parse(load("raptorlake-hybrid-i7-1365U-lore-ZhlLq2SBPzNWQvcI.log"))
    names = [b.name for b in result.blocks]
    assert names == [
        "cpu/cycles/:HG",
        "cpu/cycles/:HG",
        "cpu_atom/mem-loads,ldlat=30/P",
        "cpu_atom/mem-stores/P",
        "dummy:u",
        "dummy:HG",
    ]
    probe, _, loads, stores, dummy, tracking = result.blocks
    assert probe.type == 0 and probe.config == 0xA00000000 and probe.sample_type == []
    assert probe.fields == {"type": 0, "config": 0xA00000000, "disabled": 1}
    assert [(o.pid, o.cpu, o.fd) for o in probe.opens] == [(0, -1, 5)]
    assert loads.type == 10 and loads.pmu_hint == "cpu_atom" and loads.alias_hint == "mem-loads"
    assert loads.config == 0x5D0 and loads.config1 == 0x1F and loads.config2 == 0
    assert loads.precise_ip == 3 and loads.freq and loads.sample_freq_or_period == 4000
    assert loads.fields["sample_freq"] == 4000 and "sample_period" not in loads.fields
    assert loads.fields["config1"] == 0x1F
    assert loads.read_format == ["ID", "LOST"]
    assert loads.sample_type == [
        "IP",
        "TID",
        "TIME",
        "ADDR",
        "PERIOD",
        "IDENTIFIER",
        "DATA_SRC",
        "WEIGHT_STRUCT",
    ]
    assert [o.cpu for o in loads.opens] == list(range(4, 12))
    assert [o.fd for o in loads.opens] == [7, 9, 10, 11, 12, 13, 14, 15]
    assert all(o.flags == 8 and o.group_fd == -1 and o.errno is None for o in loads.opens)
    assert stores.config == 0x6D0 and stores.alias_hint == "mem-stores"
    assert event_role(loads) == "load" and event_role(stores) == "store"
    # dummy:u samples ADDR but is a software event: never DAMON's
    assert dummy.samples_data_address and event_role(dummy) == "software"
    assert dummy.pmu_hint == "software"
    assert tracking.fields["wakeup_watermark"] == 1 and len(tracking.opens) == 12
    assert not any(b.group_leader for b in result.blocks)

    stores_only = damon_events(result, "stores")
    assert [e.to_dict() for e in stores_only] == [ev("cpu_atom", 10, 0x6D0)]
    assert [e.role for e in damon_events(result, "all")] == ["load", "store"]
    summary = summarize(result)
    assert [e["role"] for e in summary["events"]] == [
        "other",
        "other",
        "load",
        "store",
        "software",
        "software",
    ]
    assert summary["events"][2] == {
        "pmu": "cpu_atom",
        "type": 10,
        "config": 0x5D0,
        "config1": 0x1F,
        "config2": 0,
        "sample_type": loads.sample_type,
        "precise_ip": 3,
        "alias": "mem-loads",
        "role": "load",
        "group_leader": False,
    }


def test_icelake_fallback_chain() -> None:
    result = parse(load("icelake-sp-blog-memtis-reproduce-run1-kernel5.15-fallback.log"))
    blocks = result.blocks
    assert [b.precise_ip for b in blocks[:5]] == [3, 2, 1, 0, 3]
    assert [b.read_format for b in blocks[:5]] == [["ID", "LOST"]] * 4 + [["ID"]]
    assert [b.messages_before for b in blocks] == [
        [],
        [PRECISE.format(2)],
        [PRECISE.format(1)],
        [PRECISE.format(0)],
        ["switching off PERF_FORMAT_LOST support"],
        [],
    ]
    for failed in blocks[:4]:
        assert len(failed.opens) == 1 and not failed.opened
        assert failed.opens[0].fd is None and failed.opens[0].errno == 22
    used = blocks[4]
    assert [(o.cpu, o.fd) for o in used.opens] == [(0, 5), (1, 6), (2, 7), (3, 9)]
    assert used.type == 4 and used.config == 0x1D3 and used.pmu_hint is None
    assert used.annotations["type"] == "PERF_TYPE_RAW" and used.alias_hint is None
    assert used.sample_type == [
        "IP",
        "TID",
        "TIME",
        "ADDR",
        "DATA_SRC",
        "PHYS_ADDR",
        "WEIGHT_STRUCT",
    ]
    assert not used.freq and used.fields["sample_period"] == 1007
    assert used.sample_freq_or_period == 1007
    assert used.fields["exclude_kernel"] == 1 and used.fields["mmap_data"] == 1
    # 0x1d3 is not a known load/store config: a data-address event of unknown role
    assert event_role(used) == "data"
    assert [e.role for e in damon_events(result)] == ["data"]
    assert [e.to_dict() for e in damon_events(result, "stores")] == [ev(None, 4, 0x1D3)]
    assert blocks[5].alias_hint == "PERF_COUNT_SW_DUMMY"
    assert blocks[5].fields["wakeup_watermark"] == 1


def test_rfc_cover_letter_collapsed_whitespace() -> None:
    result = parse(load("rfc-v3-cover-letter-example-PARTIAL.log"))
    (block,) = result.blocks
    assert block.fields["sample_freq"] == 4000 and block.freq
    assert block.fields["build_id"] == 1 and block.fields["size"] == 144
    assert block.fields["sample_type"] == [
        "IP",
        "TID",
        "TIME",
        "ADDR",
        "ID",
        "PERIOD",
        "DATA_SRC",
        "WEIGHT_STRUCT",
    ]
    assert block.alias_hint == "mem_trans_retired.load_latency_gt_1024"
    assert block.pmu_hint == "cpu" and block.precise_ip == 2
    assert [o.to_dict() for o in block.opens] == [
        {"pid": 287986, "cpu": 0, "group_fd": -1, "flags": 8, "fd": 5, "errno": None}
    ]
    # the alias text is not trusted, the config is a known Intel load event
    assert event_role(block) == "load"


def test_zidechen_wrapped_annotation() -> None:
    result = parse(load("sapphirerapids-lore-aQ5n4ML9lxY4VAxi-zidechen-memloads-PS.log"))
    (block,) = result.blocks
    assert block.name == "cpu/mem-loads/PS"
    assert block.config == 0x1CD and block.config1 == 0x3
    assert block.alias_hint == "mem_trans_retired.load_latency_gt_1024"
    assert block.read_format == ["ID", "GROUP", "LOST"]
    assert "READ" in block.sample_type and not block.samples_data_address
    assert block.opens == [] and not block.opened and block.fields["size"] == 248


def test_namhyung_indented_failure() -> None:
    result = parse(load("sapphirerapids-lore-aQ5n4ML9lxY4VAxi-namhyung-memloadsaux-S.log"))
    (block,) = result.blocks
    assert block.config == 0x8203 and block.alias_hint == "mem-loads-aux"
    assert event_role(block) == "aux"
    assert [(o.pid, o.cpu, o.fd, o.errno) for o in block.opens] == [(1161023, 0, None, 22)]
    assert block.messages_before == []
    assert block.fields["inherit"] == 1 and "precise_ip" not in block.fields


def test_amd_perf61_pre_6_5_format() -> None:
    result = parse(load("amd-epyc-vm-perf6.1-record-cycles-P-fallback.log"))
    first, *_, used, dummy = result.blocks
    assert "type" not in first.fields and "config" not in first.fields
    assert first.type == 0 and first.config == 0
    assert [o.errno for b in result.blocks[:3] for o in b.opens] == [95, 95, 95]
    assert used.precise_ip == 0 and "precise_ip" not in used.fields
    assert [(o.cpu, o.fd) for o in used.opens] == [(0, 5), (1, 6)]
    assert dummy.type == 1 and dummy.config == 9 and dummy.annotations == {}
    assert dummy.fields["wakeup_watermark"] == 1 and "wakeup_events" not in dummy.fields
    assert [e["role"] for e in summarize(result)["events"]] == ["other", "software"]


def test_cascadelake_truncated_retry() -> None:
    result = parse(load("cascadelake-aws-vm-oxide-propolis-894-cycles-PARTIAL.log"))
    (block,) = result.blocks
    assert block.name == "cycles:P"
    assert block.has_type_line and block.type == 0
    assert block.annotations == {"type": "PERF_TYPE_HARDWARE", "config": "PERF_COUNT_HW_CPU_CYCLES"}
    assert block.precise_ip == 3  # the retry at precise_ip 2 is cut off
    assert block.opens[0].errno == 2


# --------------------------------------------------------------------------- synthetic


def attr(*lines: str, dashes: bool = True) -> str:
    body = ["perf_event_attr:"] + [f"  {line}" for line in lines]
    return "\n".join(([SEP] if dashes else []) + body + ([SEP] if dashes else [])) + "\n"


def row(name: str, value: str) -> str:
    return f"{name:<32} {value}"


def opens(pid: int, fds: list[int | None], group_fd: int = -1, errno: int = 22) -> str:
    out = []
    for cpu, fd in enumerate(fds):
        line = f"sys_perf_event_open: pid {pid}  cpu {cpu}  group_fd {group_fd}  flags 0x8"
        if fd is None:
            out.append(line)
            out.append(f"sys_perf_event_open failed, error -{errno}")
        else:
            out.append(f"{line} = {fd}")
    return "\n".join(out) + "\n"


SAMPLING = (
    row("{ sample_period, sample_freq }", "4000"),
    row("sample_type", "IP|TID|TIME|ADDR|PERIOD|DATA_SRC|WEIGHT_STRUCT"),
    row("read_format", "ID|LOST"),
    row("disabled", "1"),
    row("freq", "1"),
    row("precise_ip", "3"),
)


def intel_event(type_: str, config: str, config1: str | None = None, **extra: str) -> str:
    lines = [row("type", type_), row("size", "136"), row("config", config), *SAMPLING]
    if config1 is not None:
        lines.append(row("{ bp_addr, config1 }", config1))
    lines += [row(k, v) for k, v in extra.items()]
    return attr(*lines)


def spr_group_log() -> str:
    """Sapphire Rapids, perf 6.10+: {mem-loads-aux, mem-loads} group, then stores."""
    return (
        "Opening: cpu/mem-loads-aux/\n"
        + intel_event("4 (cpu)", "0x8203 (mem-loads-aux)")
        + opens(100, [5, 6])
        + "Opening: cpu/mem-loads,ldlat=30/P\n"
        + intel_event("4 (cpu)", "0x1cd (mem-loads)", "0x1f")
        + "sys_perf_event_open: pid 100  cpu 0  group_fd 5  flags 0x8 = 7\n"
        + "sys_perf_event_open: pid 100  cpu 1  group_fd 6  flags 0x8 = 8\n"
        + "Opening: cpu/mem-stores/P\n"
        + intel_event("4 (cpu)", "0x2cd (mem-stores)")
        + opens(100, [9, 10])
    )


def test_spr_group_aux_leader_is_not_damons() -> None:
    result = parse(spr_group_log())
    aux, loads, _stores = result.blocks
    assert aux.group_leader and not loads.group_leader and loads.leader_index == 0
    assert [o.group_fd for o in loads.opens] == [5, 6]
    assert event_role(aux) == "aux" and aux.samples_data_address
    summary = summarize(result)
    assert summary["damon_perf_events"] == [ev("cpu", 4, 0x1CD, 0x1F)]
    assert [(e["role"], e["group_leader"]) for e in summary["events"]] == [
        ("aux", True),
        ("load", False),
        ("store", False),
    ]
    assert summarize(result, "stores")["damon_perf_events"] == [ev("cpu", 4, 0x2CD)]
    assert [e.role for e in damon_events(result, "all")] == ["load", "store"]


# The first candidate of a PMU (perf type) and role is DAMON's, not the last. No real log
# in tests/fixtures/perf-mem-logs shows two opened candidates of one role on one PMU
# (test_real_logs_give_the_first_candidate_per_pmu_and_role checks them all; each has at
# most one), so this case is built from rows like the other synthetic tests above: a run
# of `perf record -e cpu/mem-loads,ldlat=30/P -e cpu/mem-loads,ldlat=100/P
# -e cpu/mem-stores/P -e cpu/mem-stores/`.
def test_the_first_candidate_per_pmu_and_role_wins() -> None:
    text = (
        intel_event("4 (cpu)", "0x1cd (mem-loads)", "0x1f")
        + opens(1, [3, 4])
        + intel_event("4 (cpu)", "0x1cd (mem-loads)", "0x67")
        + opens(1, [5, 6])
        + intel_event("4 (cpu)", "0x82d0 (mem-stores)")
        + opens(1, [7, 8])
        + intel_event("4 (cpu)", "0x82d0 (mem-stores)", precise_ip="1")
        + opens(1, [9, 10])
    )
    result = parse(text)
    assert [b.index for b in result.opened_events] == [0, 1, 2, 3]
    assert [e.to_dict() for e in damon_events(result)] == [ev("cpu", 4, 0x1CD, 0x1F)]
    assert [e.to_dict() for e in damon_events(result, "all")] == [
        ev("cpu", 4, 0x1CD, 0x1F),
        ev("cpu", 4, 0x82D0),
    ]
    stores = summarize(result, "stores")
    assert stores["damon_perf_events"] == [ev("cpu", 4, 0x82D0)]
    assert [e["precise_ip"] for e in stores["events"]] == [3, 3, 3, 1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_logs_give_the_first_candidate_per_pmu_and_role(name: str) -> None:
    result = parse(load(name))
    first: dict[tuple[int, str], AttrBlock] = {}
    for block in result.opened_events:
        role = event_role(block)
        if (
            block.samples_data_address
            and block.sample_freq_or_period > 0
            and role in ("load", "store", "data")
        ):
            first.setdefault((block.type, role), block)
    chosen = [(e.type, e.role, e.config, e.config1) for e in damon_events(result, "all")]
    assert chosen == [(t, r, b.config, b.config1) for (t, r), b in first.items()]


def test_aux_recognised_by_config_without_annotation() -> None:
    text = intel_event("4", "0x8203") + opens(1, [3]) + intel_event("4", "0x1cd", "0x1f")
    text += "sys_perf_event_open: pid 1  cpu 0  group_fd 3  flags 0x8 = 4\n"
    result = parse(text)
    assert result.version_hints == [HINT_BARE]
    assert [e.to_dict() for e in damon_events(result)] == [ev(None, 4, 0x1CD, 0x1F)]


def test_hybrid_gives_one_event_per_pmu() -> None:
    text = (
        intel_event("4 (cpu_core)", "0x8203 (mem-loads-aux)")
        + opens(7, [5])
        + intel_event("4 (cpu_core)", "0x1cd (mem-loads)", "0x1f")
        + "sys_perf_event_open: pid 7  cpu 0  group_fd 5  flags 0x8 = 6\n"
        + intel_event("4 (cpu_core)", "0x82d0 (mem-stores)")
        + opens(7, [8])
        + intel_event("10 (cpu_atom)", "0x5d0 (mem-loads)", "0x1f")
        + opens(7, [9])
        + intel_event("10 (cpu_atom)", "0x6d0 (mem-stores)")
        + opens(7, [11])
    )
    result = parse(text)
    assert summarize(result)["damon_perf_events"] == [
        ev("cpu_core", 4, 0x1CD, 0x1F),
        ev("cpu_atom", 10, 0x5D0, 0x1F),
    ]
    assert [e.to_dict() for e in damon_events(result, "stores")] == [
        ev("cpu_core", 4, 0x82D0),
        ev("cpu_atom", 10, 0x6D0),
    ]
    assert len(damon_events(result, "all")) == 4


def test_unannotated_hybrid_uses_known_configs() -> None:
    text = (
        intel_event("10", "0x5d0", "0x1f")
        + opens(1, [3])
        + intel_event("10", "0x6d0")
        + opens(1, [4])
    )
    events = damon_events(parse(text))
    assert [(e.pmu, e.type, e.config, e.role) for e in events] == [(None, 10, 0x5D0, "load")]


def test_only_stores_opened_gives_stores_by_default() -> None:
    result = parse(intel_event("4", "0x82d0") + opens(1, [3]))
    assert [e.role for e in damon_events(result)] == ["store"]
    assert summarize(result, "stores")["supported"]


def test_stores_requested_but_only_loads() -> None:
    result = parse(intel_event("4", "0x1cd", "0x1f") + opens(1, [3]))
    summary = summarize(result, "stores")
    assert not summary["supported"]
    assert summary["reason"] == "no store event opened (opened data-address events: load)"


def test_nehalem_loads_event() -> None:
    result = parse(intel_event("4", "0x100b", "0x3") + opens(1, [3]))
    assert [(e.config, e.config1, e.role) for e in damon_events(result)] == [(0x100B, 3, "load")]


def test_ldlat_implies_load() -> None:
    result = parse(intel_event("4 (cpu)", "0x1234", "0x1e") + opens(1, [3]))
    assert [e.role for e in damon_events(result)] == ["load"]


def test_amd_ibs_op() -> None:
    ibs = attr(row("type", "11 (ibs_op)"), row("size", "136"), row("config", "0"), *SAMPLING[:5])
    result = parse(ibs + opens(3, [5, 6, 7]))
    (event,) = damon_events(result)
    assert (event.pmu, event.type, event.config, event.role) == ("ibs_op", 11, 0, "data")
    assert damon_events(result, "stores") == damon_events(result, "loads")
    assert result.blocks[0].precise_ip == 0


def test_arm_spe_min_latency_in_config2() -> None:
    spe = attr(
        row("type", "8 (arm_spe_0)"),
        row("size", "136"),
        row("config", "0x1"),
        *SAMPLING,
        row("{ bp_addr, config1 }", "0x2"),
        row("{ bp_len, config2 }", "0x1e"),
    )
    result = parse(spe + opens(3, [5]))
    (event,) = damon_events(result)
    assert event.to_dict() == ev("arm_spe_0", 8, 1, 2, 0x1E) and event.role == "data"


def test_dynamic_type_without_annotation_is_data() -> None:
    text = attr(row("type", "11"), row("size", "136"), *SAMPLING[:3]) + opens(3, [5])
    result = parse(text)
    assert [e.to_dict() for e in damon_events(result)] == [ev(None, 11, 0)]
    assert result.version_hints == [HINT_BARE, HINT_OMITTED]


def test_software_and_hardware_events_with_addr_are_not_damons() -> None:
    text = (
        attr(row("type", "1"), row("config", "0x9"), *SAMPLING)
        + opens(1, [3])
        + attr(row("type", "0"), row("config", "0"), *SAMPLING)
        + opens(1, [4])
    )
    summary = summarize(parse(text))
    assert not summary["supported"] and summary["reason"] == REASON_NO_ADDR


def test_counting_event_is_not_damons() -> None:
    text = attr(row("type", "4"), row("config", "0x1cd"), row("sample_type", "ADDR"))
    summary = summarize(parse(text + opens(1, [3])))
    assert summary["reason"] == REASON_NO_ADDR


def test_error_paragraph() -> None:
    text = (
        intel_event("4 (cpu)", "0x1cd (mem-loads)", "0x1f")
        + opens(9, [None], errno=22)
        + "Error:\n"
        + "The sys_perf_event_open() syscall returned with 22 (Invalid argument) for event"
        + " (cpu/mem-loads,ldlat=30/P).\n"
        + "/bin/dmesg | grep -i perf may provide additional information.\n"
        + "\n"
        + "$ echo done\n"
    )
    result = parse(text)
    assert result.error == (
        "The sys_perf_event_open() syscall returned with 22 (Invalid argument) for event "
        "(cpu/mem-loads,ldlat=30/P). /bin/dmesg | grep -i perf may provide additional "
        "information."
    )
    summary = summarize(result)
    assert not summary["supported"] and summary["reason"] == result.error


def test_permission_error() -> None:
    text = (
        "Error:\n"
        "Access to performance monitoring and observability operations is limited.\n"
        "Consider adjusting /proc/sys/kernel/perf_event_paranoid setting to open\n"
        "access to performance monitoring and observability operations.\n"
    )
    result = parse(text)
    assert result.is_vv_log and result.error is not None
    assert "perf_event_paranoid" in result.error and result.error.startswith("Access")
    assert "perf_event_paranoid" in str(summarize(result)["reason"])


def test_paranoid_text_without_error_header() -> None:
    text = (
        "You may not have permission to collect stats.\n\n"
        "Consider tweaking /proc/sys/kernel/perf_event_paranoid,\n"
        "which controls use of the performance events system.\n\n"
        "To make the adjusted perf_event_paranoid setting permanent preserve it\n"
    )
    result = parse(text)
    assert result.errors == [
        "Consider tweaking /proc/sys/kernel/perf_event_paranoid, which controls use of the "
        "performance events system."
    ]


def test_failure_to_open_removes_event_and_run_goes_on() -> None:
    text = (
        "Opening: cpu_core/mem-loads-aux/\n"
        + intel_event("4 (cpu_core)", "0x8203 (mem-loads-aux)")
        + opens(5, [6, None], errno=2)
        + "Failure to open event 'cpu_core/mem-loads-aux/' on PMU 'cpu_core' which will be"
        + " removed.\n"
        + "Opening: cpu_atom/mem-loads,ldlat=30/P\n"
        + intel_event("10 (cpu_atom)", "0x5d0 (mem-loads)", "0x1f")
        + opens(5, [7, 8])
    )
    result = parse(text)
    assert result.blocks[0].removed and not result.blocks[0].opened
    assert result.error is not None and result.error.startswith("Failure to open event")
    assert [e.pmu for e in damon_events(result)] == ["cpu_atom"]


def test_no_pmu_supports_memory_events() -> None:
    summary = summarize(parse("failed: no PMU supports the memory events\n"))
    assert summary["reason"] == REASON_MEM_UNSUPPORTED


def test_sample_type_printed_as_number() -> None:
    text = attr(
        row("type", "4"),
        row("config", "0x1cd"),
        row("sample_period", "4000"),
        row("sample_type", "0x8010f"),
        row("read_format", "0x14"),
    )
    (block,) = parse(text + opens(1, [3])).blocks
    assert block.sample_type == ["IP", "TID", "TIME", "ADDR", "PERIOD", "PHYS_ADDR"]
    assert block.read_format == ["ID", "LOST"]
    assert block.sample_freq_or_period == 4000 and not block.freq


def test_old_two_fields_per_line() -> None:
    text = attr(
        "type                 4",
        "config               0x1cd",
        "sample_period        4000, sample_freq 4000",
        "sample_type          0x10f",
        "disabled             1, inherit 1",
        "precise_ip           2, mmap_data 1",
        "bp_addr              0x1f, config1 0x1f",
    )
    (block,) = parse(text + opens(1, [3])).blocks
    assert block.fields["inherit"] == 1 and block.fields["mmap_data"] == 1
    assert block.precise_ip == 2 and block.config1 == 0x1F
    assert block.samples_data_address


def test_mail_quoted_and_indented_log() -> None:
    original = load("rfc-v3-cover-letter-example-PARTIAL.log")
    quoted = "\n".join("> > " + line for line in original.splitlines())
    tabbed = "\n".join("\t   " + line for line in original.splitlines())
    for text in (quoted, tabbed):
        assert summarize(parse(text)) == summarize(parse(original))


def test_vvv_and_workload_output_interleaved() -> None:
    text = (
        "calling: record -e cpu/mem-loads,ldlat=30/P -e cpu/mem-stores/P\n"
        "Opening: cpu/mem-loads,ldlat=30/P\n"
        f"{SEP}\nperf_event_attr:\n"
        f"  {row('type', '4 (cpu)')}\n"
        "hello from the workload 42\n"
        "iteration  7\n"
        f"  {row('config', '0x1cd (mem-loads)')}\n"
        f"  {row('{ sample_period, sample_freq }', '4000')}\n"
        f"  {row('sample_type', 'IP|TID|TIME|ADDR|PERIOD|DATA_SRC|WEIGHT_STRUCT')}\n"
        f"  {row('freq', '1')}\n"
        f"  {row('{ bp_addr, config1 }', '0x1f')}\n"
        f"{SEP}\n"
        "mmap size 528384B\n"
        "0x7f6e881e20b8: mmap mask[0]:\n"
        "sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8 = 3\n"
        "libperf: idx 0: mmapping fd 3\n"
        "type                             1\n"
        "sys_perf_event_open: pid 1  cpu 1  group_fd -1  flags 0x8 = 4\n"
    )
    result = parse(text)
    (block,) = result.blocks
    assert block.name == "cpu/mem-loads,ldlat=30/P"
    assert set(block.fields) == {"type", "config", "sample_freq", "sample_type", "freq", "config1"}
    assert [o.fd for o in block.opens] == [3, 4]
    assert [e.to_dict() for e in damon_events(result)] == [ev("cpu", 4, 0x1CD, 0x1F)]


def test_unknown_padded_field_is_kept_collapsed_unknown_is_not() -> None:
    long_name = "some_future_attribute_with_a_long_name"
    text = attr(
        row("type", "4"),
        row("config", "0x1cd"),
        row("new_flag", "1"),
        f"{long_name} 5",
        "new_other 1",
    )
    (block,) = parse(text).blocks
    assert block.fields["new_flag"] == 1 and block.fields[long_name] == 5
    assert "new_other" not in block.fields


def test_precise_retry_without_reprinted_block() -> None:
    text = (
        intel_event("4", "0x1cd", "0x1f")
        + opens(1, [None], errno=95)
        + "decreasing precise_ip by one (2)\n"
        + opens(1, [3, 4])
    )
    result = parse(text)
    (block,) = result.blocks
    assert block.opened and block.precise_ip == 2 and block.fields["precise_ip"] == 2
    assert [o.errno for o in block.opens] == [95, None, None]


def test_failed_last_cpu_means_not_opened_but_esrch_is_ignored() -> None:
    failed = parse(intel_event("4", "0x1cd", "0x1f") + opens(1, [3, None], errno=22))
    assert failed.opened_events == []
    ignored = parse(intel_event("4", "0x1cd", "0x1f") + opens(1, [3, None], errno=3))
    assert [b.index for b in ignored.opened_events] == [0]


def test_block_without_separators_and_missing_open_line() -> None:
    text = attr(row("type", "4"), row("config", "0x1cd"), dashes=False)
    text += "sys_perf_event_open failed, error -13\n"
    result = parse(text)
    (block,) = result.blocks
    assert block.config == 0x1CD and block.opens[0].errno == 13
    assert summarize(result)["reason"] == (
        "no event opened: sys_perf_event_open failed with error -13 (EACCES); "
        "no event samples data addresses (ADDR/PHYS_ADDR)"
    )


def test_open_lines_without_block() -> None:
    result = parse("sys_perf_event_open: pid 1  cpu 0  group_fd -1  flags 0x8 = 3\n")
    assert result.is_vv_log and result.blocks == [] and len(result.unattached_opens) == 1
    assert summarize(result)["reason"] == "no perf_event_attr block in the log, only open lines"


def test_evlist_lines_are_not_blocks() -> None:
    text = "ibs_op//: type: 11 (ibs_op), size: 136, config: 0, sample_type: IP|ADDR\n"
    result = parse(text)
    assert not result.is_vv_log and result.blocks == []


@pytest.mark.parametrize("text", ["", "\n\n", SEP, "perf_event_attr:", "Error:", "(x)", "{"])
def test_degenerate_inputs(text: str) -> None:
    result = parse(text)
    assert isinstance(result, ParseResult)
    json.dumps(summarize(result))
    json.dumps(result.to_dict())


def test_to_dict_plain_ints() -> None:
    result = parse(spr_group_log())
    data = result.to_dict()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            assert value is None or type(value) in (int, str, bool)

    walk(data)
    assert data["blocks"][1]["fields"]["config1"] == 0x1F
    assert isinstance(result.blocks[0], AttrBlock)


def test_no_duplicate_fallback_or_error_spacing() -> None:
    text = "switching off cloexec flag\n" + intel_event("4", "0x1cd") + opens(1, [3])
    result = parse(text)
    assert result.fallbacks == ["switching off cloexec flag"]
    assert result.blocks[0].messages_before == ["switching off cloexec flag"]
    assert not re.search(r"\s{2}", " ".join(result.fallbacks))
