"""Counting a kernel build's objects and what to expect, over REAL build-log lines.

The excerpts below are lines of ~/.cache/damon-fleet/builds/a9b2c61ae1929d12/build.log
(the lab kernel, 6.12.117-lab-a9b2c61a, `make ... bindeb-pkg`, built 2026-11-30 on the
project's dev machine; line numbers in that log given with each excerpt), copied as they
are, and of the config next to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from damon_fleet.build_progress import (
    OBJECTS_PER_OPTION,
    BuildWatch,
    Expected,
    count_objects,
    count_options,
    eta_seconds,
    expected_objects,
)

# build.log lines 52-68: host tools (HOSTCC), header updates (UPD), objtool's own
# headers (INSTALL) and build (CC, DESCEND), and two kernel objects (CC): 3 objects.
START = """\
  HOSTCC  scripts/kallsyms
  HOSTCC  scripts/sorttable
  UPD     include/generated/utsrelease.h
  UPD     include/generated/compile.h
  UPD     include/generated/package.h
  DESCEND objtool
  CC      scripts/mod/empty.o
  HOSTCC  scripts/mod/mk_elfconfig
  CC      scripts/mod/devicetable-offsets.s
  INSTALL /root/.cache/damon-fleet/builds/a9b2c61ae1929d12/src/tools/objtool/libsubcmd/include/subcmd/help.h
  CC      /root/.cache/damon-fleet/builds/a9b2c61ae1929d12/src/tools/objtool/libsubcmd/exec-cmd.o
  MKELF   scripts/mod/elfconfig.h
  HOSTCC  scripts/mod/modpost.o
"""  # noqa: E501
# build.log lines 2978-2998: the link of vmlinux: 3 AR, 4 LD, 1 CC, 3 AS = 11 objects.
LINK = """\
  AR      drivers/built-in.a
  AR      built-in.a
  AR      vmlinux.a
  LD      vmlinux.o
  OBJCOPY modules.builtin.modinfo
  GEN     modules.builtin
  MODPOST vmlinux.symvers
  UPD     include/generated/utsversion.h
  CC      init/version-timestamp.o
  KSYMS   .tmp_vmlinux0.kallsyms.S
  AS      .tmp_vmlinux0.kallsyms.o
  LD      .tmp_vmlinux1
  NM      .tmp_vmlinux1.syms
  KSYMS   .tmp_vmlinux1.kallsyms.S
  AS      .tmp_vmlinux1.kallsyms.o
  LD      .tmp_vmlinux2
  NM      .tmp_vmlinux2.syms
  KSYMS   .tmp_vmlinux2.kallsyms.S
  AS      .tmp_vmlinux2.kallsyms.o
  LD      vmlinux
  NM      System.map
"""
# build.log lines 4-13: dpkg-buildpackage's own lines (no object).
DPKG = """\
dpkg-buildpackage --build=binary --no-pre-clean --unsigned-changes -R'make -f debian/rules' -j1 -a$(cat debian/arch)
dpkg-buildpackage: info: source package linux-upstream
dpkg-buildpackage: info: source version 6.12.117-lab-a9b2c61a-1
 make -f debian/rules binary
#
# No change to .config
#
"""  # noqa: E501
# config lines 33-36 and 859-864: 6 options set, 2 not.
CONFIG = """\
# CONFIG_COMPILE_TEST is not set
# CONFIG_WERROR is not set
CONFIG_DAMON=y
CONFIG_DAMON_VADDR=y
CONFIG_DAMON_PADDR=y
CONFIG_DAMON_SYSFS=y
CONFIG_DAMON_RECLAIM=y
CONFIG_DAMON_LRU_SORT=y
"""


def test_only_built_objects_count():
    assert count_objects(START) == 3
    assert count_objects(LINK) == 11
    assert count_objects(DPKG) == 0
    assert count_objects(DPKG + START + LINK) == 14


def test_options_count_y_and_m_only():
    assert count_options(CONFIG) == 6
    assert count_options(CONFIG + "CONFIG_KVM_GUEST=m\nCONFIG_X=n\n") == 7


def test_a_watch_counts_whole_lines_only_as_the_log_grows(tmp_path):
    log = tmp_path / "build.log"
    log.write_text(DPKG)
    watch = BuildWatch(log=log, started=0.0)
    watch.poll()
    assert watch.built == 0
    text = START + LINK
    cut = text.index("vmlinux.o") + 3  # in the middle of the "  LD      vmlinux.o" line
    with log.open("a") as out:
        out.write(text[:cut])
    watch.poll()
    assert watch.built == 3 + 3  # START and the three AR lines; the cut LD waits
    with log.open("a") as out:
        out.write(text[cut:])
    watch.poll()
    assert watch.built == 14
    watch.poll()
    assert watch.built == 14  # nothing new, nothing counted twice


def test_a_missing_log_counts_nothing(tmp_path):
    watch = BuildWatch(log=tmp_path / "none" / "build.log", started=0.0)
    watch.poll()
    assert (watch.built, watch.fraction()) == (0, 0.0)


def _build(builds: Path, name: str, log: str, config: str, finished: bool, mtime: int) -> Path:
    folder = builds / name
    folder.mkdir(parents=True)
    (folder / "build.log").write_text(log)
    (folder / "config").write_text(config)
    if finished:
        (folder / "manifest.json").write_text("{}\n")
    os.utime(folder / "build.log", (mtime, mtime))
    return folder


def test_expected_from_a_previous_build_with_the_same_config(tmp_path):
    builds = tmp_path / "builds"
    current = _build(builds, "cur", "", CONFIG, finished=False, mtime=300)
    _build(builds, "same", DPKG + START + LINK, CONFIG, finished=True, mtime=100)
    _build(builds, "newer", START, CONFIG + "CONFIG_A=y\n", finished=True, mtime=200)
    _build(builds, "broken", START + LINK + LINK, CONFIG, finished=False, mtime=250)
    found = expected_objects(current / "build.log", current / "config", builds)
    assert found == Expected(14, "previous build same")


def test_expected_from_the_newest_other_build_scaled_by_options(tmp_path):
    builds = tmp_path / "builds"
    current = _build(builds, "cur", "", CONFIG, finished=False, mtime=300)
    _build(builds, "old", START, CONFIG + "CONFIG_A=y\nCONFIG_B=y\n", finished=True, mtime=100)
    _build(builds, "new", START + LINK, CONFIG + "CONFIG_A=y\n", finished=True, mtime=200)
    found = expected_objects(current / "build.log", current / "config", builds)
    assert found == Expected(round(14 * 6 / 7), "previous build new, scaled")


def test_expected_from_the_config_alone(tmp_path):
    builds = tmp_path / "builds"
    current = _build(builds, "cur", "", CONFIG, finished=False, mtime=300)
    found = expected_objects(current / "build.log", current / "config", builds)
    assert found == Expected(round(6 * OBJECTS_PER_OPTION), "estimate from .config")
    assert expected_objects(current / "build.log", current / "config", None) == found
    assert expected_objects(current / "build.log", tmp_path / "no-config", builds) is None


def test_the_estimate_matches_the_real_lab_builds():
    """OBJECTS_PER_OPTION against the lab builds it was measured on: 1932 objects for
    842 options, 1873 for 798 (within 3%)."""
    for objects, options in ((1932, 842), (1873, 798)):
        assert abs(options * OBJECTS_PER_OPTION - objects) / objects < 0.03


def test_eta():
    assert eta_seconds(0, 100, 10.0) is None
    assert eta_seconds(25, 100, 10.0) == 30.0
    assert eta_seconds(120, 100, 10.0) == 0.0


def test_a_watch_from_a_build_log_event(tmp_path):
    builds = tmp_path / "builds"
    current = _build(builds, "cur", START, CONFIG, finished=False, mtime=300)
    event = {
        "event": "build_log",
        "log": str(current / "build.log"),
        "config": str(current / "config"),
        "builds_dir": str(builds),
    }
    watch = BuildWatch.from_event(event, started=5.0)
    assert watch is not None
    assert watch.expected == Expected(14, "estimate from .config")
    watch.poll()
    assert watch.built == 3
    assert watch.fraction() == 3 / 14
    assert BuildWatch.from_event({"event": "build_log"}, started=0.0) is None
    # a build on another machine: its config is not here, nothing to watch
    elsewhere = {**event, "config": str(tmp_path / "elsewhere" / "config")}
    assert BuildWatch.from_event(elsewhere, started=5.0) is None
