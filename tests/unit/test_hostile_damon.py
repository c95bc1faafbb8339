"""Hostile and broken DAMON inputs: each gets one clear error naming the input.

Every class of input is tried where it enters: the damon_sysfs module (through its
``main()``), ``damon-fleet damon plan`` (exit 2, one line on stderr, no traceback)
and the boot-time applier ``damon-fleet-apply`` (exit 1, one line on stderr).  The
sysfs writer is checked against symbolic links swapped in below its root, and the
role's unit template against paths and unit names that would inject directives.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import damon_sysfs
import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    HostResolver,
    RealSysfs,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.applier import (
    applier_main,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    ApplyError,
    apply_spec,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    MAX_KDAMONDS,
    DamonConfig,
    SpecError,
    check_unit_name,
    load_config_text,
    parse_duration_us,
    parse_spec,
    resolve_targets,
)
from damon_examples import EXAMPLE
from fake_damon_sysfs import FakeDamonSysfs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from module_harness import run_module

from damon_fleet.cli import main as cli_main

ROLE = Path(__file__).resolve().parents[2] / "roles" / "damon_perf"
BIG_HOURS = "1" + "0" * 400 + "h"


# --------------------------------------------------------------------------- entry points


@pytest.fixture
def fake(tmp_path: Path) -> Any:
    fake = FakeDamonSysfs(tmp_path / "tree")
    with (
        mock.patch.object(damon_sysfs, "RealSysfs", return_value=fake),
        mock.patch.object(damon_sysfs, "KmsgLog", return_value=fake.log),
        mock.patch.object(damon_sysfs, "host_max_sample_rate", return_value=100000),
        mock.patch.object(damon_sysfs, "_sleep", fake.advance),
    ):
        yield fake


def module_error(fake: Any, **args: Any) -> str:
    """Run the module; it must fail (changing nothing) and its message is returned."""
    before = fake.snapshot()
    args.setdefault("settle_time", 0)
    args["root"] = fake.root
    done = run_module(damon_sysfs.main, args)
    assert done.failed, done.result
    assert fake.snapshot() == before
    assert fake.writes == []
    msg: str = done.result["msg"]
    assert "\n" not in msg
    return msg


def cli_error(tmp_path: Path, text: str, capsys: Any) -> str:
    """``damon-fleet damon plan`` on ``text``: exit 2, one line, no traceback."""
    spec = tmp_path / "spec.yml"
    spec.write_text(text)
    assert cli_main(["damon", "plan", str(spec), "--layout", "rfc-v3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert len(lines[0]) < 2000
    return lines[0]


def cli_plan(tmp_path: Path, text: str, capsys: Any) -> list[list[str]]:
    spec = tmp_path / "spec.yml"
    spec.write_text(text)
    assert cli_main(["damon", "plan", str(spec), "--layout", "rfc-v3"]) == 0
    pairs: list[list[str]] = json.loads(capsys.readouterr().out)
    return pairs


def applier_error(tmp_path: Path, text: str, capsys: Any) -> str:
    """``damon-fleet-apply --config``: exit 1, one line on stderr, nothing written."""
    fake = FakeDamonSysfs(tmp_path / "applier-tree")
    before = fake.snapshot()
    config = tmp_path / "damon.yml"
    config.write_text(text)
    assert applier_main(["--config", str(config), "--root", fake.root]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["failed"] is True
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert fake.snapshot() == before
    prefix = "damon-fleet-apply: error: "
    assert lines[0].startswith(prefix)
    return lines[0][len(prefix) :]


def with_intervals(**intervals: Any) -> dict[str, Any]:
    return dict(EXAMPLE, intervals=intervals)


def spec_yaml(kdamond_lines: str) -> str:
    return "damon_perf_kdamonds:\n" + kdamond_lines


# --------------------------------------------------------------------------- durations


def test_duration_overflow_is_out_of_range_not_a_crash() -> None:
    with pytest.raises(SpecError) as info:
        parse_duration_us(BIG_HOURS, "x")
    (problem,) = info.value.problems
    assert problem.startswith("x: '1000000000000000000000")
    assert "... (402 characters) is out of range; expected microseconds" in problem
    assert "to 18446744073709551615us" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9007199254740993us", 9007199254740993),
        ("9007199254740993", 9007199254740993),
        ("18446744073709551615", (1 << 64) - 1),
        ("18446744073709.551615s", (1 << 64) - 1),
        ("0.000001s", 1),
        ("1.000001s", 1000001),
        ("0001.5ms", 1500),
    ],
)
def test_durations_are_exact(text: str, expected: int) -> None:
    assert parse_duration_us(text, "x") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("18446744073709551616", "is out of range"),
        ("18446744073709.551616s", "is out of range"),
        ("0.0000001s", "is not a whole number of microseconds"),
        ("\u0661\u0660s", "is not microseconds"),  # Arabic-Indic digits
        ("1e3us", "is not microseconds"),
        ("5s\n", "is not microseconds"),
    ],
)
def test_durations_refused(text: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration_us(text, "x")
    assert info.value.problems[0].startswith(f"x: {text!r} {reason}")


def test_module_duration_overflow(fake: Any) -> None:
    msg = module_error(fake, kdamonds=[with_intervals(update_us=BIG_HOURS)])
    assert msg.startswith(
        "invalid input: damon_perf_kdamonds[0].intervals.update_us: '1000000000000000"
    )
    assert "is out of range" in msg


def test_cli_duration_overflow(tmp_path: Path, capsys: Any) -> None:
    line = cli_error(
        tmp_path,
        spec_yaml(
            f"  - {{operations: vaddr, targets: [{{pid: 1}}], "
            f"intervals: {{update_us: {BIG_HOURS}}}}}\n"
        ),
        capsys,
    )
    assert line.startswith(
        "damon-fleet damon plan: damon_perf_kdamonds[0].intervals.update_us: '10000"
    )
    assert "out of range" in line


def test_applier_duration_overflow(tmp_path: Path, capsys: Any) -> None:
    config = {"damon_perf_kdamonds": [with_intervals(update_us=BIG_HOURS)]}
    message = applier_error(tmp_path, json.dumps(config), capsys)
    assert message.startswith("damon_perf_kdamonds[0].intervals.update_us: '1000000000")
    assert "out of range" in message


def test_exact_duration_reaches_the_plan(tmp_path: Path, capsys: Any) -> None:
    pairs = cli_plan(
        tmp_path,
        spec_yaml(
            "  - {operations: vaddr, targets: [{pid: 1}], perf_events: [],\n"
            "     intervals: {update_us: 9007199254740993us, aggr_us: 9007199254740993}}\n"
        ),
        capsys,
    )
    values = dict((path, value) for path, value in pairs)
    attrs = "kdamonds/0/contexts/0/monitoring_attrs/intervals/"
    assert values[attrs + "update_us"] == "9007199254740993"
    assert values[attrs + "aggr_us"] == "9007199254740993"


# --------------------------------------------------------------------------- what errors quote


def _alias_bomb(depth: int = 40, width: int = 10) -> Any:
    value: Any = ["lol"] * width
    for _ in range(depth):
        value = [value] * width
    return value


def test_alias_bomb_as_a_scalar_is_named_by_type_only() -> None:
    bomb = _alias_bomb()
    kd = {"operations": "vaddr", "targets": [{"pid": bomb}], "state": bomb}
    with pytest.raises(SpecError) as info:
        parse_spec([kd])
    assert info.value.problems == [
        "damon_perf_kdamonds[0].targets[0].pid: got list; expected an integer (decimal, or a "
        "hex string like '0x1cd') in [1, 4194304]",
        "damon_perf_kdamonds[0].state: a list is not one of on, off",
    ]


def test_cli_yaml_alias_bomb(tmp_path: Path, capsys: Any) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 30):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    text = "\n".join(lines) + "\n" + spec_yaml("  - {operations: vaddr, targets: [{pid: *a29}]}\n")
    line = cli_error(tmp_path, text, capsys)
    # the anchors are unknown top-level keys: refused before any value is looked at
    assert line.startswith("damon-fleet damon plan: ")
    assert "unknown key(s) a0, a1, a2, a3, a4, a5, a6, a7 (and 22 more); accepted keys: " in line
    text = "damon_perf_kdamonds:\n  - {operations: vaddr, targets: [{pid: &b [&c [x, x], *c]}]}\n"
    line = cli_error(tmp_path, text, capsys)
    assert line.endswith(
        "damon_perf_kdamonds[0].targets[0].pid: got list; expected an integer "
        "(decimal, or a hex string like '0x1cd') in [1, 4194304]"
    )


def test_long_values_are_cut_in_errors(fake: Any) -> None:
    msg = module_error(fake, kdamonds=[dict(EXAMPLE, operations="v" * 100000)])
    assert "'" + "v" * 80 + "'... (100000 characters) is not one of vaddr, fvaddr, paddr" in msg
    assert len(msg) < 400


# --------------------------------------------------------------------------- size limits


def test_too_many_kdamonds(fake: Any, tmp_path: Path, capsys: Any) -> None:
    many = [EXAMPLE] * (MAX_KDAMONDS + 1)
    expected = "damon_perf_kdamonds: 65 kdamonds; at most 64 are accepted"
    assert module_error(fake, kdamonds=many) == "invalid input: " + expected
    line = cli_error(tmp_path, json.dumps({"damon_perf_kdamonds": many}), capsys)
    assert line == "damon-fleet damon plan: " + expected
    assert applier_error(tmp_path, json.dumps({"damon_perf_kdamonds": many}), capsys) == expected


@pytest.mark.parametrize(
    ("kdamond", "expected"),
    [
        (
            {"operations": "vaddr", "targets": [{"pid": 1}] * 65},
            "damon_perf_kdamonds[0].targets: 65 targets; at most 64 are accepted",
        ),
        (
            {"operations": "paddr", "targets": [{"start": 0, "end": 4096}] * 257},
            "damon_perf_kdamonds[0].targets: 257 targets; at most 64 are accepted",
        ),
        (
            {
                "operations": "fvaddr",
                "targets": [{"pid": 1, "regions": [{"start": 0, "end": 4096}] * 257}],
            },
            "damon_perf_kdamonds[0].targets[0].regions: 257 regions; at most 256 are accepted",
        ),
        (
            {
                "operations": "paddr",
                "perf_events": [{"type": 4, "config": 0x1CD}] * 65,
            },
            "damon_perf_kdamonds[0].perf_events: 65 perf events (the kernel's limit per "
            "context); at most 64 are accepted",
        ),
    ],
)
def test_size_limits_name_the_input(fake: Any, kdamond: Any, expected: str) -> None:
    assert module_error(fake, kdamonds=[kdamond]) == "invalid input: " + expected


# --------------------------------------------------------------------------- unknown keys

MISSPELT = "damon_perf_kdamond:\n  - {operations: vaddr, targets: [{pid: 1}]}\n"
ACCEPTED = (
    "accepted keys: damon_perf_kdamonds, damon_perf_default_perf_events, damon_perf_sample_freq, "
    "damon_perf_no_event_policy, damon_perf_layout, damon_perf_settle_time, "
    "damon_perf_fallback_policy, damon_perf_evidence_window, damon_perf_stand_in_kernels"
)


def test_cli_misspelt_top_level_key(tmp_path: Path, capsys: Any) -> None:
    line = cli_error(tmp_path, MISSPELT, capsys)
    assert line == (
        f"damon-fleet damon plan: {tmp_path / 'spec.yml'}: unknown key(s) damon_perf_kdamond; "
        + ACCEPTED
    )


def test_applier_misspelt_top_level_key_removes_nothing(tmp_path: Path, capsys: Any) -> None:
    message = applier_error(tmp_path, MISSPELT, capsys)
    assert message == f"{tmp_path / 'damon.yml'}: unknown key(s) damon_perf_kdamond; " + ACCEPTED


def test_missing_kdamonds_key_is_refused(tmp_path: Path, capsys: Any) -> None:
    line = cli_error(tmp_path, "damon_perf_sample_freq: 100\n", capsys)
    assert line.endswith(
        "spec.yml: damon_perf_kdamonds is missing; give the kdamonds to run "
        "([] to remove every kdamond)"
    )


def test_unknown_keys_at_every_level(fake: Any) -> None:
    kd = dict(EXAMPLE, intervals={"sample_us": 5, "aggr": 10}, extra=1)
    msg = module_error(fake, kdamonds=[kd])
    assert msg == (
        "invalid input: damon_perf_kdamonds[0]: unknown key(s) extra; accepted keys: "
        "operations, targets, intervals, nr_regions, perf_events, state, contexts"
    )
    kd = dict(EXAMPLE, intervals={"sample_us": 5, "aggr": 10})
    msg = module_error(fake, kdamonds=[kd])
    assert msg == (
        "invalid input: damon_perf_kdamonds[0].intervals: unknown key(s) aggr; accepted keys: "
        "sample_us, aggr_us, update_us"
    )
    kd = dict(EXAMPLE, targets=[{"pid": 1, "pidd": 2}])
    assert "damon_perf_kdamonds[0].targets[0]: unknown key(s) pidd; accepted keys: pid, " in (
        module_error(fake, kdamonds=[kd])
    )


# --------------------------------------------------------------------------- numbers


def test_paddr_targets_zero_is_not_an_empty_list(fake: Any, tmp_path: Path, capsys: Any) -> None:
    expected = "damon_perf_kdamonds[0].targets: expected a list, got int"
    msg = module_error(fake, kdamonds=[{"operations": "paddr", "targets": 0}])
    assert msg == "invalid input: " + expected
    line = cli_error(tmp_path, spec_yaml("  - {operations: paddr, targets: 0}\n"), capsys)
    assert line == "damon-fleet damon plan: " + expected


@pytest.mark.parametrize("digits", ["\u0663", "\u0661\u0662\u0663\u0664", "\uff11", "1\u0663"])
def test_non_ascii_digits_are_not_numbers(fake: Any, digits: str) -> None:
    msg = module_error(fake, kdamonds=[dict(EXAMPLE, targets=[{"pid": digits}])])
    assert msg == (
        f"invalid input: damon_perf_kdamonds[0].targets[0].pid: {digits!r} is not an integer "
        "(decimal, or a hex string like '0x1cd') in [1, 4194304]"
    )


def test_sexagesimal_pid_is_not_90(tmp_path: Path, capsys: Any) -> None:
    line = cli_error(
        tmp_path, spec_yaml("  - {operations: vaddr, targets: [{pid: 1:30}]}\n"), capsys
    )
    assert line == (
        "damon-fleet damon plan: damon_perf_kdamonds[0].targets[0].pid: '1:30' is not an "
        "integer (decimal, or a hex string like '0x1cd') in [1, 4194304]"
    )
    message = applier_error(
        tmp_path, spec_yaml("  - {operations: vaddr, targets: [{pid: 1:30}]}\n"), capsys
    )
    assert message.startswith("damon_perf_kdamonds[0].targets[0].pid: '1:30' is not an integer")


def test_yaml_octal_is_not_read_as_octal(tmp_path: Path, capsys: Any) -> None:
    line = cli_error(
        tmp_path, spec_yaml("  - {operations: vaddr, targets: [{pid: 010}]}\n"), capsys
    )
    assert line.endswith(
        "damon_perf_kdamonds[0].targets[0].pid: '010' is not an integer "
        "(decimal, or a hex string like '0x1cd') in [1, 4194304]"
    )


def test_hex_and_decimal_yaml_integers_still_load(tmp_path: Path, capsys: Any) -> None:
    pairs = cli_plan(
        tmp_path,
        spec_yaml(
            "  - {operations: vaddr, targets: [{pid: 0x10}], perf_events: [],\n"
            "     nr_regions: {min: 1_000, max: 2000}}\n"
        ),
        capsys,
    )
    values = dict((path, value) for path, value in pairs)
    assert values["kdamonds/0/contexts/0/targets/0/pid_target"] == "16"
    assert values["kdamonds/0/contexts/0/monitoring_attrs/nr_regions/min"] == "1000"


@pytest.mark.parametrize(
    "text",
    [
        "damon_perf_kdamonds: []\ndamon_perf_kdamonds: []\n",
        "damon_perf_kdamonds:\n  - {operations: vaddr, operations: paddr, targets: [{pid: 1}]}\n",
        '{"damon_perf_kdamonds": [], "damon_perf_kdamonds": []}',
    ],
)
def test_duplicate_keys_are_refused(tmp_path: Path, capsys: Any, text: str) -> None:
    line = cli_error(tmp_path, text, capsys)
    assert "duplicate key" in line
    assert line.startswith(f"damon-fleet damon plan: {tmp_path / 'spec.yml'}")
    assert "duplicate key" in applier_error(tmp_path, text, capsys)


@pytest.mark.parametrize(("word", "state"), [("on", "on"), ("off", "off"), ("yes", "on")])
def test_unquoted_state_on_off_is_accepted(
    tmp_path: Path, capsys: Any, word: str, state: str
) -> None:
    pairs = cli_plan(
        tmp_path,
        spec_yaml(
            f"  - {{operations: vaddr, targets: [{{pid: 1}}], perf_events: [], state: {word}}}\n"
        ),
        capsys,
    )
    assert pairs[-1] == ["kdamonds/0/state", state]


def test_state_must_still_be_a_state(fake: Any) -> None:
    assert module_error(fake, kdamonds=[dict(EXAMPLE, state="maybe")]) == (
        "invalid input: damon_perf_kdamonds[0].state: 'maybe' is not one of on, off"
    )


@pytest.mark.parametrize(
    "text",
    ["\x00\x01binary", "damon_perf_kdamonds: [\n", "- a list\n", "!!python/object:os.system x\n"],
)
def test_broken_files_are_one_line_errors(tmp_path: Path, capsys: Any, text: str) -> None:
    line = cli_error(tmp_path, text, capsys)
    assert line.startswith(f"damon-fleet damon plan: {tmp_path / 'spec.yml'}")


def test_file_that_is_not_utf8(tmp_path: Path, capsys: Any) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_bytes(b"damon_perf_kdamonds: [\xff]\n")
    assert cli_main(["damon", "plan", str(spec), "--layout", "rfc-v3"]) == 2
    assert capsys.readouterr().err == (
        f"damon-fleet damon plan: {spec}: not UTF-8 text (byte 22)\n"
    )


# --------------------------------------------------------------------------- unit names


@pytest.mark.parametrize(
    ("unit", "name"),
    [
        ("memcached", "memcached.service"),
        ("memcached.service", "memcached.service"),
        ("getty@tty1.service", "getty@tty1.service"),
        ("foo@a@b.service", "foo@a@b.service"),
        ("sys-devices-x.device", "sys-devices-x.device"),
        ("a:b_c.d\\x2d.mount", "a:b_c.d\\x2d.mount"),
    ],
)
def test_unit_names_systemd_accepts(unit: str, name: str) -> None:
    assert check_unit_name(unit, "u", "service") == name


@pytest.mark.parametrize(
    "unit",
    [
        "memcached.service\n",
        "network.target\n[Service]\nExecStartPre=/bin/touch /tmp/x",
        "memcached.servic",
        "memcached.",
        ".service",
        "-foo.service",
        "foo bar.service",
        "foo@.service",
        "@foo.service",
        "a" * 248 + ".service",
        "caf\u00e9.service",
        "foo/bar.service",
        "",
    ],
)
def test_unit_names_systemd_refuses(fake: Any, unit: str) -> None:
    msg = module_error(fake, kdamonds=[dict(EXAMPLE, targets=[{"unit": unit}])])
    assert msg.startswith("invalid input: damon_perf_kdamonds[0].targets[0].unit: ")
    assert "systemd unit name" in msg


HOSTILE_AFTER = "network.target\n[Service]\nExecStartPre=/bin/touch /tmp/x"


def test_after_units_injection_is_refused_before_anything_changes(fake: Any) -> None:
    msg = module_error(
        fake,
        kdamonds=[EXAMPLE],
        boot_unit={"after_units": ["network.target", HOSTILE_AFTER]},
    )
    assert msg.startswith(
        "invalid input: damon_perf_after_units[1]: 'network.target\\n[Service]\\nExecStartPre="
    )


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("config_dir", "/etc/damon\nExecStartPre=/bin/sh", "damon_perf_config_dir: '/etc/damon\\n"),
        ("config_dir", "etc/damon", "damon_perf_config_dir: 'etc/damon' is not an absolute path"),
        ("lib_dir", "/usr/lib/../../tmp", "damon_perf_lib_dir: '/usr/lib/../../tmp' is not"),
        ("applier_path", "/usr/sbin/x\x00", "damon_perf_applier_path: '/usr/sbin/x\\x00' is not"),
        ("python", "/usr/bin/python3 -c import os", "damon_perf_python: '/usr/bin/python3 -c "),
        ("python", "/usr/bin/python3\nimport os", "damon_perf_python: '/usr/bin/python3\\nimport"),
    ],
)
def test_boot_unit_paths_are_checked(fake: Any, key: str, value: str, fragment: str) -> None:
    msg = module_error(fake, kdamonds=[EXAMPLE], boot_unit={key: value})
    assert msg.startswith("invalid input: " + fragment), msg


def test_boot_unit_with_good_values_applies(fake: Any) -> None:
    done = run_module(
        damon_sysfs.main,
        {
            "kdamonds": [EXAMPLE],
            "settle_time": 0,
            "root": fake.root,
            "boot_unit": {
                "after_units": ["network-online.target"],
                "config_dir": "/etc/damon fleet",
                "lib_dir": "/usr/local/lib/damon-fleet",
                "applier_path": "/usr/local/sbin/damon-fleet-apply",
                "python": "/usr/bin/python3",
            },
        },
    )
    assert not done.failed, done.result
    assert done.result["changed"] is True


# --------------------------------------------------------------------------- the unit template


def _trusted(value: Any) -> Any:
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def render(template: str, **overrides: Any) -> str:
    """Render a role template the way the role does: its defaults, vars, overrides."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    loader = DataLoader()
    variables: dict[str, Any] = {}
    variables.update(_trusted(loader.load_from_file(str(ROLE / "defaults" / "main.yml"))))
    variables.update(_trusted(loader.load_from_file(str(ROLE / "vars" / "main.yml"))))
    variables.update(
        role_path=str(ROLE), ansible_managed="Ansible managed", inventory_hostname="h1"
    )
    variables.update(overrides)
    templar = Templar(loader=loader, variables=variables)
    text = (ROLE / "templates" / template).read_text()
    rendered: str = templar.template(trust_as_template(text))
    return rendered


def test_unit_template_quotes_paths_the_systemd_way() -> None:
    text = render(
        "damon-fleet-apply.service.j2",
        damon_perf_config_dir='/etc/damon fleet/100%$x"\\y',
        damon_perf_applier_path="/opt/damon fleet/apply%1$",
        damon_perf_kdamonds=[
            {"operations": "vaddr", "targets": [{"unit": "memcached"}]},
            {"contexts": [{"operations": "vaddr", "targets": [{"unit": "redis.service"}]}]},
        ],
        damon_perf_after_units=["network-online.target"],
    )
    lines = text.splitlines()
    assert (
        'ExecStart="/opt/damon fleet/apply%%1$" --config '
        '"/etc/damon fleet/100%%$$x\\"\\\\y/damon.yml"'
    ) in lines
    assert "Documentation=file:///etc/damon%%20fleet/100%%25%%24x%%22%%5Cy/damon.yml" in lines
    assert "After=local-fs.target memcached.service redis.service network-online.target" in lines
    assert [line for line in lines if line.startswith("PartOf=")] == [
        "PartOf=memcached.service",
        "PartOf=redis.service",
    ]
    assert sum(line.startswith("Exec") for line in lines) == 1


def test_unit_template_verifies_with_systemd(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    applier = tmp_path / "app dir" / "apply%1$"
    applier.parent.mkdir()
    applier.write_text("#!/bin/sh\n")
    applier.chmod(0o755)
    unit = tmp_path / "damon-fleet-apply.service"
    unit.write_text(
        render(
            "damon-fleet-apply.service.j2",
            damon_perf_config_dir=str(tmp_path / 'conf 100%$x"\\y'),
            damon_perf_applier_path=str(applier),
        )
    )
    proc = subprocess.run(
        [analyze, "verify", "--man=no", "--", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_config_template_renders_values_as_json() -> None:
    pidfile = '/run/x" # y: [z], &a *a'
    kdamonds = [{"operations": "vaddr", "targets": [{"pidfile": pidfile}]}]
    text = render(
        "damon.yml.j2",
        damon_perf_kdamonds=kdamonds,
        ansible_managed="managed\ndamon_perf_kdamonds: []",
    )
    loaded = load_config_text(text, "damon.yml")
    assert isinstance(loaded, DamonConfig)
    assert loaded.spec.kdamonds[0].targets[0].ref == pidfile


def test_applier_script_template_quotes_the_lib_dir() -> None:
    text = render(
        "damon-fleet-apply.j2",
        damon_perf_lib_dir='/usr/lib/x"; import os #',
        damon_perf_python="/usr/bin/python3",
    )
    assert text.splitlines()[0] == "#!/usr/bin/python3"
    assert 'LIB_DIR = os.environ.get("DAMON_FLEET_LIB_DIR", "/usr/lib/x\\"; import os #")' in text


# --------------------------------------------------------------------------- sysfs confinement


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "admin"
    (root / "kdamonds" / "0").mkdir(parents=True)
    (root / "kdamonds" / "0" / "state").write_text("off\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "state").write_text("untouched\n")
    return root, outside


@pytest.mark.parametrize("link", ["kdamonds", "kdamonds/0", "kdamonds/0/state"])
def test_symlinked_component_is_refused(tmp_path: Path, link: str) -> None:
    root, outside = _tree(tmp_path)
    target = root / link
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    os.symlink(outside if link != "kdamonds/0/state" else outside / "state", target)
    if link == "kdamonds":
        (outside / "0").mkdir()
        (outside / "0" / "state").write_text("untouched\n")
    io = RealSysfs(str(root))
    with pytest.raises(OSError) as info:
        io.write(str(root / "kdamonds/0/state"), "on")
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert io.isdir(str(root / link)) is False
    assert (outside / "state").read_text() == "untouched\n"
    if link == "kdamonds":
        assert (outside / "0" / "state").read_text() == "untouched\n"


def test_paths_outside_the_root_are_refused_by_the_io(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    io = RealSysfs(str(root))
    for path in (str(outside / "state"), str(root) + "/../outside/state", str(root) + "x/state"):
        with pytest.raises(PermissionError):
            io.write(path, "on")
    assert (outside / "state").read_text() == "untouched\n"


def test_apply_through_a_symlinked_kdamond_is_an_error_naming_the_path(tmp_path: Path) -> None:
    fake = FakeDamonSysfs(tmp_path / "tree")
    fake.write(fake.root + "/kdamonds/nr_kdamonds", "1")
    fake.write(fake.root + "/kdamonds/0/contexts/nr_contexts", "1")
    outside = tmp_path / "outside"
    shutil.copytree(fake.root + "/kdamonds/0", outside)
    before = {p: p.read_text() for p in outside.rglob("*") if p.is_file()}
    shutil.rmtree(fake.root + "/kdamonds/0")
    os.symlink(outside, fake.root + "/kdamonds/0")
    spec = parse_spec([dict(EXAMPLE, state="off")])
    with pytest.raises(ApplyError) as info:
        apply_spec(spec, RealSysfs(fake.root), fake.root, settle_time=0)
    assert str(info.value) == (
        f"{fake.root}/kdamonds/0/contexts/nr_contexts does not exist (symbolic links below "
        f"{fake.root} are not followed); the kernel's DAMON sysfs differs from the DAMON "
        "sysfs ABI"
    )
    assert {p: p.read_text() for p in outside.rglob("*") if p.is_file()} == before


def test_racing_symlink_swap_never_writes_outside(tmp_path: Path) -> None:
    """A component swapped for a link while writes run: each write lands inside or fails."""
    root, outside = _tree(tmp_path)
    kd = root / "kdamonds" / "0"
    parked = root / "kdamonds" / "parked"
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            try:
                os.rename(kd, parked)
                os.symlink(outside, kd)
                os.unlink(kd)
                os.rename(parked, kd)
            except OSError:
                pass

    io = RealSysfs(str(root))
    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    outcomes = {"ok": 0, "refused": 0}
    try:
        for index in range(600):
            try:
                io.write(str(kd / "state"), f"v{index}")
                outcomes["ok"] += 1
            except OSError:
                outcomes["refused"] += 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert (outside / "state").read_text() == "untouched\n"
    assert sorted(p.name for p in outside.iterdir()) == ["state"]
    assert outcomes["ok"] + outcomes["refused"] == 600


# --------------------------------------------------------------------------- fuzz

_KEYS = st.sampled_from(
    [
        "damon_perf_kdamonds",
        "damon_perf_sample_freq",
        "damon_perf_layout",
        "damon_perf_settle_time",
        "damon_perf_no_event_policy",
        "damon_perf_default_perf_events",
        "operations",
        "targets",
        "intervals",
        "nr_regions",
        "perf_events",
        "state",
        "contexts",
        "pid",
        "unit",
        "pidfile",
        "process",
        "regions",
        "start",
        "end",
        "type",
        "config",
        "sample_us",
        "update_us",
        "min",
        "max",
        "x",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.sampled_from(["vaddr", "paddr", "fvaddr", "on", "off", "5s", "1:30", "0x1cd", "010"]),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=25,
)
_TOKENS = st.sampled_from(
    [
        "damon_perf_kdamonds:",
        "\n",
        "\n  - ",
        "  ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ", ",
        ": ",
        "&a ",
        "*a",
        "!!binary ",
        "!!python/name:os.system ",
        "operations: vaddr",
        "targets: [{pid: 1}]",
        "pid: 1:30",
        "state: on",
        "1e400",
        "'",
        '"',
        "#",
        "? ",
        "<<: *a",
        "\t",
        "\u0663",
    ]
)


def _only_spec_or_spec_error(text: str) -> None:
    try:
        result = load_config_text(text, "fuzz.yml")
    except SpecError as err:
        assert all("\n" not in problem for problem in err.problems)
        return
    assert isinstance(result, DamonConfig)


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_fuzz_structures_only_give_a_spec_or_a_spec_error(data: dict[str, Any]) -> None:
    _only_spec_or_spec_error(json.dumps(data, default=str))
    with contextlib.suppress(SpecError):
        parse_spec(data.get("damon_perf_kdamonds"))


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(st.lists(_TOKENS, max_size=30).map("".join))
def test_fuzz_yaml_text_only_gives_a_spec_or_a_spec_error(text: str) -> None:
    _only_spec_or_spec_error(text)


# --------------------------------------------------------------------------- host look-ups


@pytest.mark.parametrize("content", ["\u0661\u0662\n", "12abc\n", "", "-5\n", "9" * 40 + "\n"])
def test_pidfile_content_must_be_an_ascii_pid(tmp_path: Path, content: str) -> None:
    pidfile = tmp_path / "m.pid"
    pidfile.write_text(content)
    (tmp_path / "proc" / "12").mkdir(parents=True)
    spec = parse_spec([dict(EXAMPLE, targets=[{"pidfile": str(pidfile)}])])
    with pytest.raises(SpecError) as info:
        resolve_targets(spec, HostResolver(proc=str(tmp_path / "proc")))
    reason = f"{pidfile} is empty" if not content else f"{pidfile} does not start with a pid"
    (problem,) = info.value.problems
    assert problem.startswith(
        f"damon_perf_kdamonds[0].targets[0]: cannot resolve pidfile '{pidfile}': {reason}"
    )


def test_pidfile_with_a_running_pid_resolves(tmp_path: Path) -> None:
    pidfile = tmp_path / "m.pid"
    pidfile.write_text("12\n")
    (tmp_path / "proc" / "12").mkdir(parents=True)
    spec = parse_spec([dict(EXAMPLE, targets=[{"pidfile": str(pidfile)}])])
    resolved = resolve_targets(spec, HostResolver(proc=str(tmp_path / "proc")))
    assert resolved.kdamonds[0].targets[0].pid == 12


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9", "soon"])
def test_applier_settle_time_option_is_checked(tmp_path: Path, capsys: Any, value: str) -> None:
    fake = FakeDamonSysfs(tmp_path / "tree")
    config = tmp_path / "damon.yml"
    config.write_text(json.dumps({"damon_perf_kdamonds": [EXAMPLE]}))
    rc = applier_main(["--config", str(config), "--root", fake.root, f"--settle-time={value}"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith(f"damon-fleet-apply: error: --settle-time: {value!r} is not seconds")
    assert fake.writes == []
