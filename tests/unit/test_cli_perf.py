"""The ``damon-fleet perf`` command-line contract (other tools rely on it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

LOGS = FIXTURES / "perf-mem-logs"

# The DAMON events of the fixtures README table: (pmu, type, config, config1, config2).
EXPECTED = {
    "raptorlake-hybrid-i7-1365U-lore-ZhlLq2SBPzNWQvcI.log": [("cpu_atom", 10, 0x5D0, 0x1F, 0)],
    "icelake-sp-blog-memtis-reproduce-run1-kernel5.15-fallback.log": [(None, 4, 0x1D3, 0, 0)],
    "rfc-v3-cover-letter-example-PARTIAL.log": [(None, 4, 0x1CD, 0x1F, 0)],
    "sapphirerapids-lore-aQ5n4ML9lxY4VAxi-zidechen-memloads-PS.log": [],
    "sapphirerapids-lore-aQ5n4ML9lxY4VAxi-namhyung-memloadsaux-S.log": [],
    "amd-zen5-ryzen9-9950X3D-lore-aBGEPnB5B4NTaOg9-evlist.log": [],
    "coffeelake-i9-9880H-virtualbox-github-brendangregg-perf-tools-111.log": [],
    "nehalem-xeon-X5570-github-OpenChannelSSD-linux-48.log": [],
    "cascadelake-aws-vm-oxide-propolis-894-cycles-PARTIAL.log": [],
    "amd-epyc-vm-perf6.1-mem-unsupported.log": [],
    "amd-epyc-vm-perf6.1-record-cycles-P-fallback.log": [],
}


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_every_shared_fixture_is_covered() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in LOGS.glob("*.log"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_prints_the_damon_events(name: str) -> None:
    proc = run_cli("perf", "parse", str(LOGS / name))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"supported", "reason", "events", "damon_perf_events"}
    got = [
        (e["pmu"], e["type"], e["config"], e["config1"], e["config2"])
        for e in out["damon_perf_events"]
    ]
    want = EXPECTED[name]
    # pmu is None where the log does not name it (perf < 6.10 prints bare numbers).
    assert [g[1:] for g in got] == [w[1:] for w in want]
    for g, w in zip(got, want, strict=True):
        if w[0] is not None:
            assert g[0] == w[0]
    for event in out["damon_perf_events"]:
        assert set(event) == {"pmu", "type", "config", "config1", "config2"}
        assert all(type(event[k]) is int for k in ("type", "config", "config1", "config2"))
    assert out["supported"] is bool(want)
    if want:
        assert out["reason"] is None
    else:
        assert isinstance(out["reason"], str) and out["reason"]


def test_parse_reads_stdin() -> None:
    path = LOGS / "rfc-v3-cover-letter-example-PARTIAL.log"
    from_stdin = run_cli("perf", "parse", "-", stdin=path.read_bytes())
    from_file = run_cli("perf", "parse", str(path))
    assert from_stdin.returncode == 0
    assert json.loads(from_stdin.stdout) == json.loads(from_file.stdout)
    assert json.loads(from_stdin.stdout)["damon_perf_events"][0]["config"] == 0x1CD


def test_parse_of_garbage_is_unsupported_not_an_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8 + b"perf_event_attr:\n  type  zz\n")
    proc = run_cli("perf", "parse", str(junk))
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert out["supported"] is False
    assert out["damon_perf_events"] == []
    assert out["reason"]


def test_parse_of_unreadable_path_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    proc = run_cli("perf", "parse", str(missing))
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0]


def test_parse_of_a_directory_exits_2(tmp_path: Path) -> None:
    proc = run_cli("perf", "parse", str(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.decode().strip().splitlines()) == 1
