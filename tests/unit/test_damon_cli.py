"""``damon-fleet damon plan``."""

from __future__ import annotations

import argparse
import json

import pytest
from fake_damon_sysfs import FakeDamonSysfs

from damon_fleet.damon_cli import add_damon_parser

SPEC = """\
damon_perf_kdamonds:
  - operations: vaddr
    targets:
      - pid: 1234
    intervals: {sample_us: 5s, aggr_us: 60s, update_us: 300s}
    nr_regions: {min: 1000000000, max: 1000000000}
    perf_events:
      - sample_freq: 5000
        sample_phys_addr: 0
        type: 0x4
        config: "0x1cd"
        config1: "0x1f"
        config2: 0
"""
P = "kdamonds/0/contexts/0/monitoring_attrs/sample/primitives/perf_events"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="damon-fleet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_damon_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.yml"
    path.write_text(SPEC)
    return str(path)


def test_plan_published_example_rfc_v3(spec_file, capsys):
    assert main(["damon", "plan", spec_file, "--layout", "rfc-v3"]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert pairs == [
        ["kdamonds/nr_kdamonds", "1"],
        ["kdamonds/0/contexts/nr_contexts", "1"],
        ["kdamonds/0/contexts/0/operations", "vaddr"],
        ["kdamonds/0/contexts/0/monitoring_attrs/intervals/sample_us", "5000000"],
        ["kdamonds/0/contexts/0/monitoring_attrs/intervals/aggr_us", "60000000"],
        ["kdamonds/0/contexts/0/monitoring_attrs/intervals/update_us", "300000000"],
        ["kdamonds/0/contexts/0/monitoring_attrs/nr_regions/min", "1000000000"],
        ["kdamonds/0/contexts/0/monitoring_attrs/nr_regions/max", "1000000000"],
        [P + "/nr_perf_events", "1"],
        [P + "/0/sample_freq", "5000"],
        [P + "/0/sample_phys_addr", "0"],
        [P + "/0/type", "0x4"],
        [P + "/0/config", "0x1cd"],
        [P + "/0/config1", "0x1f"],
        [P + "/0/config2", "0x0"],
        ["kdamonds/0/contexts/0/targets/nr_targets", "1"],
        ["kdamonds/0/contexts/0/targets/0/pid_target", "1234"],
        ["kdamonds/0/state", "on"],
    ]


@pytest.mark.parametrize("layout", ["rfc-v1", "successor"])
def test_sysfs_root_detects_the_layout(spec_file, tmp_path, capsys, layout):
    fake = FakeDamonSysfs(tmp_path / "tree", layout=layout)
    fake.write(fake.root + "/kdamonds/nr_kdamonds", "1")
    fake.write(fake.root + "/kdamonds/0/contexts/nr_contexts", "1")
    assert main(["damon", "plan", spec_file, "--sysfs-root", str(fake.base / "sys")]) == 0
    pairs = json.loads(capsys.readouterr().out)
    perf = [p for p, _ in pairs if p.endswith("nr_perf_events")]
    expected = {
        "rfc-v1": "kdamonds/0/contexts/0/perf_events/nr_perf_events",
        "successor": "kdamonds/0/contexts/0/monitoring_attrs/sample/perf_events/nr_perf_events",
    }[layout]
    assert perf == [expected]
    assert main(["damon", "plan", spec_file, "--sysfs-root", fake.root]) == 0


def test_unknown_tree_is_a_clear_error(spec_file, tmp_path, capsys):
    (tmp_path / "admin" / "kdamonds" / "0" / "contexts" / "0").mkdir(parents=True)
    assert main(["damon", "plan", spec_file, "--sysfs-root", str(tmp_path / "admin")]) == 2
    ctx = tmp_path / "admin" / "kdamonds" / "0" / "contexts" / "0"
    assert capsys.readouterr().err == (
        f"damon-fleet damon plan: unknown DAMON sysfs layout: looked for "
        f"{ctx}/monitoring_attrs/sample/primitives/perf_events, "
        f"{ctx}/monitoring_attrs/sample/perf_events, {ctx}/perf_events, "
        f"{ctx}/monitoring_attrs/intervals; found none\n"
    )


def test_mainline_with_fail_policy_and_bad_spec(spec_file, tmp_path, capsys):
    assert main(["damon", "plan", spec_file, "--layout", "mainline"]) == 2
    assert capsys.readouterr().err == (
        "damon-fleet damon plan: damon_perf_kdamonds[0]: the running kernel's DAMON (mainline "
        "layout) has no perf_events directory (damon_perf_no_event_policy is 'fail')\n"
    )
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "damon_perf_kdamonds: [{operations: vaddr, targets: [{pid: 1}], "
        "intervals: {sample_us: soon}}]\n"
    )
    assert main(["damon", "plan", str(bad), "--layout", "rfc-v3"]) == 2
    assert capsys.readouterr().err == (
        "damon-fleet damon plan: damon_perf_kdamonds[0].intervals.sample_us: 'soon' is not "
        "microseconds as an integer, or a duration like '5s', '100ms', '10us', '2m', '1h', "
        "from 1us to 18446744073709551615us\n"
    )
    missing = tmp_path / "missing.yml"
    assert main(["damon", "plan", str(missing), "--layout", "rfc-v3"]) == 2
    assert capsys.readouterr().err == (
        f"damon-fleet damon plan: {missing}: cannot read: ENOENT (No such file or directory)\n"
    )


def test_layout_or_root_is_required(spec_file):
    with pytest.raises(SystemExit):
        main(["damon", "plan", spec_file])
