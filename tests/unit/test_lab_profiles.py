"""Lab hardware profiles (roles/lab_profile): each one is a real capture, replayed.

* the committed profile files are exactly what build_profiles.py makes from the fixtures;
* each replay is a verbatim slice of its fixture, and each PMU the capture names is in the
  profile's sysfs tree with the capture's type;
* perf_mem_facts, run against a profile installed as the role installs it (the stand-in
  perf script really runs), detects that machine's classification and events;
* the lab_profile role itself installs a profile (on this machine, into tmp_path) and is
  idempotent;
* no production role, playbook or default refers to the lab profile paths.
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import perf_mem_facts
import pytest
import yaml
from conftest import FIXTURES, ROOT
from module_harness import run_module

ROLE = ROOT / "roles" / "lab_profile"
PROFILES = ROLE / "files" / "profiles"
STAND_IN = ROLE / "files" / "perf"
LOGS = FIXTURES / "perf-mem-logs"
LAB_DIR = "/opt/damon-fleet-lab"
VENV_BIN = os.path.dirname(sys.executable)


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_profiles", ROLE / "build_profiles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_profiles"] = module
    spec.loader.exec_module(module)
    return module


builder = _load_builder()
NAMES = sorted(p.name for p in builder.PROFILES)


def profile_meta(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROFILES / name / "profile.yml").read_text())
    return data


def install(name: str, dest: Path) -> Path:
    """The profile as the lab_profile role lays it out: its files, bin/perf, proc/sys."""
    shutil.copytree(PROFILES / name, dest)
    (dest / "bin").mkdir()
    shutil.copy2(STAND_IN, dest / "bin" / "perf")
    os.symlink("/proc/sys", dest / "proc" / "sys")
    return dest


def detect(profile_dir: Path) -> dict[str, Any]:
    """perf_mem_facts main() with its real command runner: the stand-in perf runs."""
    done = run_module(
        perf_mem_facts.main,
        {
            "perf_path": str(profile_dir / "bin" / "perf"),
            "sysfs_root": str(profile_dir / "sys"),
            "proc_root": str(profile_dir / "proc"),
        },
    )
    assert not done.failed, done.result
    assert done.result["changed"] is False
    facts: dict[str, Any] = done.result["ansible_facts"]["damon_perf"]
    return facts


# --- the files come from the fixtures --------------------------------------------------


def test_committed_profiles_are_what_the_builder_makes(tmp_path: Path) -> None:
    assert builder.main([str(tmp_path / "profiles")]) == 0
    built, committed = tmp_path / "profiles", PROFILES
    compare = filecmp.dircmp(built, committed)

    def differences(cmp: filecmp.dircmp[str], where: str = "") -> list[str]:
        out = [f"{where}{n} only built" for n in cmp.left_only]
        out += [f"{where}{n} only committed" for n in cmp.right_only]
        out += [f"{where}{n} differs" for n in cmp.diff_files]
        for sub, child in cmp.subdirs.items():
            out += differences(child, f"{where}{sub}/")
        return out

    assert differences(compare) == [], "run: .venv/bin/python roles/lab_profile/build_profiles.py"
    # filecmp compares by stat signature first; compare the bytes too
    for path in built.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (committed / path.relative_to(built)).read_bytes(), path


def test_index_lists_every_profile() -> None:
    index = yaml.safe_load((PROFILES / "index.yml").read_text())["profiles"]
    assert sorted(index) == NAMES == sorted(p.name for p in PROFILES.iterdir() if p.is_dir())
    assert {"sapphirerapids", "raptorlake-hybrid"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_replay_is_a_verbatim_slice_of_a_real_fixture(name: str) -> None:
    meta = profile_meta(name)
    fixture = ROOT / meta["fixture"]
    assert fixture.parent == LOGS and fixture.is_file()
    lines = fixture.read_text().splitlines()
    # the fixture's own header lines, copied into profile.yml
    assert meta["fixture_header"] == [line for line in lines[:6] if line.startswith("# ")]
    assert meta["fixture_header"][0].startswith("# SOURCE: ")
    replay = (PROFILES / name / "replay" / "stderr").read_text().splitlines()
    assert replay, name
    starts = [i for i in range(len(lines)) if lines[i : i + len(replay)] == replay]
    assert starts, f"{name}: replay/stderr is not a contiguous slice of {fixture.name}"
    assert not any(line.startswith(("# SOURCE:", "# CPU:", "# COMPLETENESS:")) for line in replay)
    assert (PROFILES / name / "replay" / "stdout").read_text() == ""
    status = int((PROFILES / name / "replay" / "status").read_text())
    assert status == meta["replay"]["status"]
    assert re.fullmatch(r"perf version \S+\n", (PROFILES / name / "replay" / "version").read_text())
    for key in ("status_from", "version_from"):
        assert meta["replay"][key], key
    assert meta["cpuinfo_from"]
    for pmu, pmu_meta in meta["pmus"].items():
        assert pmu_meta["type_from"], pmu
        for group in ("format", "events", "caps", "files"):
            if group in pmu_meta:
                assert pmu_meta[f"{group}_from"], (pmu, group)


def test_the_capture_status_is_kept_where_it_was_captured() -> None:
    # the build machine's capture states its exit status in its header
    assert "exit status 255" in (LOGS / "amd-epyc-vm-perf6.1-mem-unsupported.log").read_text()
    assert (PROFILES / "amd-epyc-vm" / "replay" / "status").read_text() == "255\n"


ANNOTATED_TYPE = re.compile(r"^\s*type\s+(\d+) \(([a-z_0-9]+)\)\s*$")


@pytest.mark.parametrize("name", NAMES)
def test_sysfs_tree_agrees_with_the_capture(name: str) -> None:
    """Every PMU a replayed attr block names ('type 10 (cpu_atom)') is in the tree with
    that type; the PMU types the tree has are unique."""
    devices = PROFILES / name / "sys" / "bus" / "event_source" / "devices"
    types = {p.name: int((p / "type").read_text()) for p in devices.iterdir()}
    assert len(set(types.values())) == len(types)
    for line in (PROFILES / name / "replay" / "stderr").read_text().splitlines():
        match = ANNOTATED_TYPE.match(line)
        if match and not match.group(2).startswith("PERF_TYPE_") and match.group(2) != "software":
            assert types.get(match.group(2)) == int(match.group(1)), line
    for pmu in devices.iterdir():
        for alias in (pmu / "events").glob("mem-*") if (pmu / "events").is_dir() else []:
            assert re.fullmatch(
                r"event=0x[0-9a-f]+,umask=0x[0-9a-f]+(,ldlat=3)?\n", alias.read_text()
            )


# --- detection on each profile, the stand-in run for real ------------------------------

EXPECTED = {
    "sapphirerapids": (
        "pebs",
        [{"pmu": "cpu", "type": 4, "config": 0x1CD, "config1": 0x1F, "config2": 0}],
        "sapphire_rapids",
    ),
    "raptorlake-hybrid": (
        "pebs",
        [{"pmu": "cpu_atom", "type": 10, "config": 0x5D0, "config1": 0x1F, "config2": 0}],
        "alderlake_hybrid",
    ),
    "icelake-sp": (
        "pebs",
        [{"pmu": "cpu", "type": 4, "config": 0x1D3, "config1": 0, "config2": 0}],
        "icelake",
    ),
    "amd-epyc-vm": ("none", [], None),
}


def test_every_profile_has_an_expectation() -> None:
    assert sorted(EXPECTED) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_perf_mem_facts_detects_the_machine_the_profile_plays(tmp_path: Path, name: str) -> None:
    profile = install(name, tmp_path / "profile")
    facts = detect(profile)
    classification, events, pmu_name = EXPECTED[name]
    assert facts["source"] == "detected"
    assert facts["classification"] == classification
    assert facts["damon_perf_events"] == events
    assert facts["pmu_name"] == pmu_name
    # what profile.yml promises is what detection gives
    assert profile_meta(name)["expected"] == {
        "classification": classification,
        "damon_perf_events": events,
    }
    assert facts["perf_path"] == str(profile / "bin" / "perf")
    assert facts["perf_version"] == profile_meta(name)["replay"]["version"]
    assert facts["perf_rc"] == profile_meta(name)["replay"]["status"]
    # proc/sys is this machine's own: the real kernel release and sysctls
    assert facts["kernel_release"] == os.uname().release
    assert facts["perf_event_max_sample_rate"] == int(
        Path("/proc/sys/kernel/perf_event_max_sample_rate").read_text()
    )
    if classification == "none":
        assert facts["reason"] == (
            "no PMU memory events (no PEBS/IBS/SPE sampling): perf says "
            "'failed: memory events not supported'; this host is a virtual machine"
        )
    else:
        assert facts["reason"] is None


def test_the_two_default_machines_differ() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "lab_fleet" / "defaults" / "main.yml").read_text())
    lab1, lab2 = defaults["lab_fleet_profiles"]
    assert (lab1, lab2) == ("sapphirerapids", "raptorlake-hybrid")
    assert EXPECTED[lab1][1] != EXPECTED[lab2][1]
    assert {e["pmu"] for e in EXPECTED[lab1][1]} == {"cpu"}
    assert {e["pmu"] for e in EXPECTED[lab2][1]} == {"cpu_atom"}


def test_hybrid_profile_names_both_core_pmus(tmp_path: Path) -> None:
    facts = detect(install("raptorlake-hybrid", tmp_path / "p"))
    pmus = {p["name"]: p for p in facts["pmus"]}
    assert (pmus["cpu_core"]["type"], pmus["cpu_atom"]["type"]) == (4, 10)
    assert "cpu" not in pmus
    assert facts["cpu"]["model_name"] == "13th Gen Intel(R) Core(TM) i7-1365U"


@pytest.mark.parametrize(
    ("argv", "rc", "stdout", "stderr"),
    [
        (["--version"], 0, "perf version 6.1.187\n", ""),
        (
            ["mem", "record", "-vv", "-o", "x", "--", "sleep", "0.2"],
            255,
            "",
            "failed: memory events not supported\n",
        ),
        (["stat", "true"], 129, "", None),
        ([], 129, "", None),
    ],
)
def test_stand_in_answers_like_the_captured_perf(
    tmp_path: Path, argv: list[str], rc: int, stdout: str, stderr: str | None
) -> None:
    profile = install("amd-epyc-vm", tmp_path / "with space")
    proc = subprocess.run(
        [str(profile / "bin" / "perf"), *argv], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout) == (rc, stdout)
    if stderr is None:
        assert proc.stderr == (
            f"perf (damon-fleet lab stand-in of {profile}): only 'perf --version' and "
            "'perf mem record' are replayed\n"
        )
    else:
        assert proc.stderr == stderr


# --- lab only -------------------------------------------------------------------------

LAB_ONLY = ("lab_profile", "damon-fleet-lab", "lab_fleet_started")


def production_files() -> list[Path]:
    """Every role, playbook and inventory file a production run reads: all roles but the
    lab's own, every playbook but lab.yml, deploy.yml, the example inventory, the plugins."""
    files = [ROOT / "deploy.yml"]
    for role in (ROOT / "roles").iterdir():
        if role.name not in ("lab_fleet", "lab_profile"):
            files += [p for p in role.rglob("*") if p.is_file()]
    files += [p for p in (ROOT / "playbooks").glob("*.yml") if p.name != "lab.yml"]
    files += [p for p in (ROOT / "inventories").rglob("*") if p.is_file() and "lab" not in p.parts]
    files += [
        p
        for p in (ROOT / "plugins").rglob("*.py")
        if not p.name.startswith("lab_")  # the lab fleet's own modules
    ]
    return files


def test_no_production_file_refers_to_the_lab_profiles() -> None:
    files = production_files()
    assert ROOT / "roles" / "perf_detect" / "defaults" / "main.yml" in files
    assert ROOT / "playbooks" / "detect.yml" in files
    offenders = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in files
        for word in LAB_ONLY
        if word in path.read_text(errors="replace")
    ]
    assert offenders == []
    # perf_detect's own defaults read the real trees
    defaults = yaml.safe_load(
        (ROOT / "roles" / "perf_detect" / "defaults" / "main.yml").read_text()
    )
    assert (defaults["perf_detect_sysfs_root"], defaults["perf_detect_proc_root"]) == (
        "/sys",
        "/proc",
    )
    assert defaults["perf_detect_perf_path"] == "perf"


def test_only_the_lab_group_points_detection_at_the_profile() -> None:
    group_vars = ROOT / "inventories" / "lab" / "group_vars"
    lab = yaml.safe_load((group_vars / "lab.yml").read_text())
    role_dir = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["lab_profile_dir"]
    assert role_dir == f"{LAB_DIR}/profile"
    assert lab["perf_detect_perf_path"] == f"{role_dir}/bin/perf"
    assert lab["perf_detect_sysfs_root"] == f"{role_dir}/sys"
    assert lab["perf_detect_proc_root"] == f"{role_dir}/proc"
    everyone = (group_vars / "all.yml").read_text()
    assert "perf_detect_" not in everyone and LAB_DIR not in everyone
    # nothing pinned for the lab: detection runs
    assert "damon_perf_events" not in yaml.safe_load(everyone)
    assert "damon_perf_events" not in lab
    # only playbooks/lab.yml applies the role
    users = [
        p.relative_to(ROOT).as_posix()
        for p in [*ROOT.glob("*.yml"), *(ROOT / "playbooks").glob("*.yml")]
        if "lab_profile" in p.read_text()
    ]
    assert users == ["playbooks/lab.yml"]
