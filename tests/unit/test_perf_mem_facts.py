"""perf_mem_facts: module main() with a patched command runner, and the pure facts logic."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import perf_mem_facts
import pmu_trees
import pytest
from ansible.module_utils import basic
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.facts import (
    PerfFactsError,
    normalize_events,
    parse_cpuinfo,
    summary_line,
)
from conftest import FIXTURES
from module_harness import run_module

LOGS = FIXTURES / "perf-mem-logs"
REAL_AMD_CPUINFO = (FIXTURES / "cpuinfo" / "amd-epyc-kvm-guest.txt").read_text()
# BUILT from the documented /proc/cpuinfo format (not captured from a host): the first
# processor paragraph of an Intel server, only the fields the facts use.
BUILT_INTEL_CPUINFO = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
    "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu vme de pse\n\n"
    "processor\t: 1\nvendor_id\t: GenuineIntel\n"
)


def make_proc(tmp_path: Path, cpuinfo: str, paranoid: int = 2, rate: int = 100000) -> Path:
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "cpuinfo").write_text(cpuinfo)
    (proc / "sys" / "kernel" / "perf_event_paranoid").write_text(f"{paranoid}\n")
    (proc / "sys" / "kernel" / "perf_event_max_sample_rate").write_text(f"{rate}\n")
    (proc / "sys" / "kernel" / "osrelease").write_text("6.12.0-damon-perf\n")
    return proc


class FakePerf:
    """Stands in for AnsibleModule.run_command: answers like perf would with a real log."""

    def __init__(self, log: str, rc: int = 0, version: str = "perf version 6.10.0\n") -> None:
        self.log, self.rc, self.version = log, rc, version
        self.calls: list[list[str]] = []
        self.output_paths: list[str] = []

    def __call__(
        self, module: basic.AnsibleModule, args: Sequence[str], **kwargs: Any
    ) -> tuple[int, str, str]:
        argv = list(args)
        self.calls.append(argv)
        assert kwargs["environ_update"]["LC_ALL"] == "C"
        if "--version" in argv:
            return 0, self.version, ""
        assert argv[argv.index("mem") :][:3] == ["mem", "record", "-vv"]
        self.output_paths.append(argv[argv.index("-o") + 1])
        assert os.path.isdir(os.path.dirname(self.output_paths[-1]))
        return self.rc, "", self.log


def run(args: dict[str, Any], fake: FakePerf | None, perf: str | None = "/usr/bin/perf") -> Any:
    def bin_path(module: basic.AnsibleModule, name: str, *a: Any, **k: Any) -> str | None:
        return {"perf": perf, "timeout": "/usr/bin/timeout"}.get(name)

    def run_command(module: basic.AnsibleModule, args: Sequence[str], **kwargs: Any) -> Any:
        assert fake is not None, "perf must not run"
        return fake(module, args, **kwargs)

    with (
        mock.patch.object(basic.AnsibleModule, "run_command", run_command),
        mock.patch.object(basic.AnsibleModule, "get_bin_path", bin_path),
    ):
        return run_module(perf_mem_facts.main, args)


def test_rfc_example_on_intel_is_pebs_with_the_published_values(tmp_path: Path) -> None:
    sysfs = pmu_trees.build_icelake_server(tmp_path)
    proc = make_proc(tmp_path, BUILT_INTEL_CPUINFO)
    fake = FakePerf((LOGS / "rfc-v3-cover-letter-example-PARTIAL.log").read_text())
    done = run({"sysfs_root": str(sysfs), "proc_root": str(proc)}, fake)
    assert not done.failed, done.result
    facts = done.result["ansible_facts"]["damon_perf"]
    assert done.result["changed"] is False
    assert facts["classification"] == "pebs"
    assert facts["reason"] is None
    assert facts["source"] == "detected"
    assert facts["damon_perf_events"] == [
        {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 0x1F, "config2": 0}
    ]
    assert facts["perf_version"] == "6.10.0"
    assert facts["kernel_release"] == "6.12.0-damon-perf"
    assert facts["perf_event_paranoid"] == 2
    assert facts["perf_event_max_sample_rate"] == 100000
    assert facts["pmu_name"] == "icelake"
    assert facts["cpu"]["vendor"] == "GenuineIntel" and facts["cpu"]["model"] == 143
    assert facts["summary"] == "pebs cpu: type=4 config=0x1cd config1=0x1f config2=0x0"
    # a timeout wraps perf, and the output file's temporary directory is gone afterwards
    record = next(c for c in fake.calls if "record" in c)
    assert record[:3] == ["/usr/bin/timeout", "--kill-after=5", "30"]
    assert fake.output_paths and not os.path.exists(os.path.dirname(fake.output_paths[0]))


def test_hybrid_names_the_atom_pmu(tmp_path: Path) -> None:
    sysfs = pmu_trees.build_hybrid(tmp_path)
    proc = make_proc(tmp_path, BUILT_INTEL_CPUINFO)
    fake = FakePerf((LOGS / "raptorlake-hybrid-i7-1365U-lore-ZhlLq2SBPzNWQvcI.log").read_text())
    facts = run({"sysfs_root": str(sysfs), "proc_root": str(proc)}, fake).result["ansible_facts"][
        "damon_perf"
    ]
    assert facts["classification"] == "pebs"
    atom = [e for e in facts["damon_perf_events"] if e["pmu"] == "cpu_atom"]
    assert atom == [{"pmu": "cpu_atom", "type": 10, "config": 0x5D0, "config1": 0x1F, "config2": 0}]


def test_vm_without_memory_events_says_so(tmp_path: Path) -> None:
    sysfs = pmu_trees.build_vm(tmp_path)
    proc = make_proc(tmp_path, REAL_AMD_CPUINFO)
    fake = FakePerf((LOGS / "amd-epyc-vm-perf6.1-mem-unsupported.log").read_text(), rc=255)
    facts = run({"sysfs_root": str(sysfs), "proc_root": str(proc)}, fake).result["ansible_facts"][
        "damon_perf"
    ]
    assert facts["classification"] == "none"
    assert facts["damon_perf_events"] == []
    assert "memory events not supported" in facts["reason"]
    assert "virtual machine" in facts["reason"]
    assert facts["perf_rc"] == 255
    assert facts["cpu"]["hypervisor"] is True


def test_missing_perf_is_a_clear_result_not_a_failure(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, REAL_AMD_CPUINFO)
    fake = FakePerf("")
    done = run({"sysfs_root": str(tmp_path / "nosys"), "proc_root": str(proc)}, fake, perf=None)
    assert not done.failed
    facts = done.result["ansible_facts"]["damon_perf"]
    assert facts["classification"] == "none"
    assert "perf is not installed" in facts["reason"]
    assert fake.calls == []


def test_paranoid_too_strict_for_a_user(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, BUILT_INTEL_CPUINFO, paranoid=3)
    sysfs = pmu_trees.build_icelake_server(tmp_path)
    log = (LOGS / "sapphirerapids-lore-aQ5n4ML9lxY4VAxi-namhyung-memloadsaux-S.log").read_text()
    with mock.patch("os.geteuid", return_value=1000):
        done = run({"sysfs_root": str(sysfs), "proc_root": str(proc)}, FakePerf(log, rc=1))
    facts = done.result["ansible_facts"]["damon_perf"]
    assert facts["classification"] == "none"
    assert "perf_event_paranoid is 3" in facts["reason"] and "uid 1000" in facts["reason"]


def test_timeout_is_reported(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, BUILT_INTEL_CPUINFO)
    sysfs = pmu_trees.build_icelake_server(tmp_path)
    facts = run(
        {"sysfs_root": str(sysfs), "proc_root": str(proc), "timeout": 2},
        FakePerf("", rc=124),
    ).result["ansible_facts"]["damon_perf"]
    assert facts["classification"] == "none"
    assert facts["reason"] == "perf mem record did not finish within 2 s"


def test_pinned_events_skip_detection(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, BUILT_INTEL_CPUINFO)
    fake = FakePerf("")
    pinned = [{"pmu": "cpu", "type": 4, "config": "0x1cd", "config1": "0x1f"}]
    done = run({"sysfs_root": str(tmp_path), "proc_root": str(proc), "pinned_events": pinned}, fake)
    facts = done.result["ansible_facts"]["damon_perf"]
    assert fake.calls == []
    assert facts["source"] == "pinned"
    assert facts["classification"] == "pebs"
    assert facts["damon_perf_events"] == [
        {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 0x1F, "config2": 0}
    ]
    assert facts["summary"].endswith("(pinned)")


@pytest.mark.parametrize(
    ("pinned", "message"),
    [
        ([{"type": 4}], "damon_perf_events[0] needs at least 'type' and 'config'"),
        ([{"type": 4, "config": "0xzz"}], "damon_perf_events[0].config must be an integer"),
        ([{"type": 4, "config": -1}], "damon_perf_events[0].config must be between 0 and"),
        ([{"type": 4, "config": 1, "ldlat": 3}], "unknown key(s) ldlat; accepted: pmu, name, type"),
        ([{"type": 4, "config": 1, "sample_freq": 0}], "damon_perf_events[0].sample_freq"),
        ([{"type": 4, "config": 1, "sample_phys_addr": "maybe"}], "[0].sample_phys_addr"),
        ([{"type": 4, "config": 1, "name": 7}], "damon_perf_events[0].name must be a string"),
    ],
)
def test_bad_pinned_events_fail_naming_the_input(
    tmp_path: Path, pinned: list[dict[str, Any]], message: str
) -> None:
    proc = make_proc(tmp_path, BUILT_INTEL_CPUINFO)
    fake = FakePerf("")
    done = run({"proc_root": str(proc), "pinned_events": pinned}, fake)
    assert done.failed
    assert message in done.result["msg"]
    assert fake.calls == []


def test_cpuinfo_of_a_real_amd_guest() -> None:
    info = parse_cpuinfo(REAL_AMD_CPUINFO)
    assert (info.vendor, info.family, info.model) == ("AuthenticAMD", 25, 17)
    assert info.model_name == "AMD EPYC"
    assert info.hypervisor is True


def test_cpuinfo_empty_or_missing() -> None:
    assert parse_cpuinfo(None).vendor is None
    assert parse_cpuinfo("garbage without colons\n").model is None


def test_pinned_events_keep_the_sampling_keys_damon_perf_accepts() -> None:
    """perf_detect and damon_perf read the same damon_perf_events: what one accepts, the
    other does, and the per-event sampling values reach damon_perf unchanged."""
    pinned = [
        {"type": "0x4", "config": "0x1cd", "config1": 31, "sample_freq": 100, "pmu": "cpu"},
        {"type": 1, "config": 0, "sample_phys_addr": True, "name": "cpu-clock"},
    ]
    assert normalize_events(pinned, "damon_perf_events") == [
        {"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 31, "config2": 0, "sample_freq": 100},
        {
            "pmu": None,
            "type": 1,
            "config": 0,
            "config1": 0,
            "config2": 0,
            "sample_phys_addr": True,
            "name": "cpu-clock",
        },
    ]


def test_normalize_rejects_a_string() -> None:
    with pytest.raises(PerfFactsError, match="must be a list"):
        normalize_events("0x1cd", "damon_perf_events")  # type: ignore[arg-type]


def test_summary_line_for_none() -> None:
    facts = {"classification": "none", "reason": "perf is not installed", "damon_perf_events": []}
    assert summary_line(facts) == "none (perf is not installed)"
