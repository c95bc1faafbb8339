"""damon_applier through its main(): files, check mode, diff, daemon-reload and enable.

systemctl is replaced by :class:`FakeSystemd`, which behaves like systemd for what the
module asks: ``is-enabled`` prints the unit file state (``not-found`` with rc 4 when no
unit file exists, as systemd 252 does), ``enable`` fails for a unit file it does not
have, and ``daemon-reload`` loads the unit files on disk.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
from pathlib import Path

import damon_applier
import pytest
from module_harness import run_module

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
UNIT = "damon-fleet-apply.service"


class FakeSystemd:
    def __init__(self, unit_dir: Path) -> None:
        self.unit_dir = unit_dir
        self.enabled: set[str] = set()
        self.loaded: dict[str, bytes] = {}
        self.calls: list[list[str]] = []

    def run_command(self, argv, **_kwargs):
        assert argv[0] == "systemctl", argv
        self.calls.append(list(argv[1:]))
        verb, args = argv[1], [a for a in argv[2:] if a != "--"]
        if verb == "daemon-reload":
            self.loaded = {p.name: p.read_bytes() for p in self.unit_dir.glob("*.service")}
            return 0, "", ""
        (name,) = args
        if verb == "is-enabled":
            if not (self.unit_dir / name).exists():
                return 4, "not-found\n", ""
            return (0, "enabled\n", "") if name in self.enabled else (1, "disabled\n", "")
        if verb == "enable":
            if not (self.unit_dir / name).exists():
                return 1, "", f"Failed to enable unit: Unit file {name} does not exist.\n"
            self.enabled.add(name)
            return 0, "", ""
        raise AssertionError(f"unexpected systemctl {argv}")


@pytest.fixture
def host(tmp_path, monkeypatch):
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    systemd = FakeSystemd(unit_dir)
    monkeypatch.setattr(
        damon_applier.AnsibleModule,
        "run_command",
        lambda self, argv, **kw: systemd.run_command(argv, **kw),
    )
    return tmp_path, systemd


def args(root: Path, config: str = '{"a": 1}\n', **extra):
    lib = root / "usr" / "local" / "lib" / "damon-fleet"
    etc = root / "etc" / "damon-fleet"
    unit = root / "etc" / "systemd" / "system" / UNIT
    base = {
        "directories": [{"path": str(lib), "mode": "0755"}, {"path": str(etc), "mode": "0755"}],
        "files": [
            {"path": str(lib / "damon_spec.py"), "content": "print('x')\n", "mode": "0644"},
            {"path": str(etc / "damon.yml"), "content": config, "mode": "0644"},
            {"path": str(unit), "content": "[Service]\nType=oneshot\n", "mode": "0644"},
        ],
        "unit_file": str(unit),
        "owner": OWNER,
        "group": GROUP,
    }
    base.update(extra)
    return base


def test_first_run_installs_reloads_and_enables_then_nothing(host):
    root, systemd = host
    first = run_module(damon_applier.main, args(root))
    assert not first.failed, first.result
    assert first.result["changed"] is True
    assert first.result["daemon_reload"] is True and first.result["enabled"] is True
    assert len(first.result["changed_files"]) == 5
    assert systemd.enabled == {UNIT} and UNIT in systemd.loaded
    assert (root / "etc" / "damon-fleet" / "damon.yml").read_text() == '{"a": 1}\n'
    # the contents are not echoed back, only their size and digest
    echoed = first.result["invocation"]["module_args"]["files"][1]
    assert echoed["content"] == (
        "(9 bytes, sha256 " + hashlib.sha256(b'{"a": 1}\n').hexdigest() + ")"
    )
    assert echoed["path"].endswith("/etc/damon-fleet/damon.yml")

    again = run_module(damon_applier.main, args(root))
    assert again.result["changed"] is False, again.result
    assert again.result["changed_files"] == []
    assert again.result["daemon_reload"] is False and again.result["enabled"] is False
    assert systemd.calls[-1] == ["is-enabled", "--", UNIT]
    assert ["daemon-reload"] not in systemd.calls[3:]


def test_a_config_change_writes_that_file_only_and_shows_its_diff(host):
    root, _systemd = host
    run_module(damon_applier.main, args(root))
    spec_file = root / "usr" / "local" / "lib" / "damon-fleet" / "damon_spec.py"
    inode = spec_file.stat().st_ino
    done = run_module(damon_applier.main, args(root, '{"a": 2}\n', _ansible_diff=True))
    config = str(root / "etc" / "damon-fleet" / "damon.yml")
    assert done.result["changed"] is True
    assert done.result["changed_files"] == [config]
    assert done.result["daemon_reload"] is False  # the unit did not change
    assert done.result["diff"] == [
        {
            "before_header": config,
            "after_header": config,
            "before": '{"a": 1}\n',
            "after": '{"a": 2}\n',
        }
    ]
    assert spec_file.stat().st_ino == inode


def test_check_mode_reports_and_changes_nothing(host):
    root, systemd = host
    listing = sorted(root.rglob("*"))
    done = run_module(damon_applier.main, args(root, _ansible_check_mode=True, _ansible_diff=True))
    assert done.result["changed"] is True
    assert done.result["daemon_reload"] is True and done.result["enabled"] is True
    assert [d["after_header"] for d in done.result["diff"]] == done.result["changed_files"]
    assert sorted(root.rglob("*")) == listing
    assert systemd.calls == [["is-enabled", "--", UNIT]]  # read-only
    real = run_module(damon_applier.main, args(root))
    assert real.result["files"] == done.result["files"]


def test_a_disabled_unit_is_enabled_without_a_file_change(host):
    root, systemd = host
    run_module(damon_applier.main, args(root))
    systemd.enabled.clear()
    done = run_module(damon_applier.main, args(root))
    assert done.result["changed"] is True
    assert done.result["changed_files"] == [] and done.result["enabled"] is True
    assert systemd.enabled == {UNIT}


def test_bad_inputs_fail_before_anything_is_written(host):
    root, systemd = host
    bad = args(root)
    bad["files"][1]["mode"] = "rw"
    bad["unit_file"] = str(root / "elsewhere.service")
    done = run_module(damon_applier.main, bad)
    assert done.failed
    assert done.result["msg"] == (
        "invalid input: files[1].mode: 'rw' is not an octal mode string such as '0644' or '0755'"
    )
    assert not (root / "usr").exists() and systemd.calls == []
    bad["files"][1]["mode"] = "0644"
    done = run_module(damon_applier.main, bad)
    assert done.result["msg"] == (
        f"invalid input: unit_file: '{root}/elsewhere.service' is not among the files' paths"
    )
    done = run_module(damon_applier.main, args(root, owner="no-such-user-here"))
    assert done.result["msg"] == "invalid input: owner: no user 'no-such-user-here' on this host"
    assert not (root / "usr").exists() and systemd.calls == []


def test_an_enable_failure_fails_the_task(host):
    root, systemd = host
    run_module(damon_applier.main, args(root))
    systemd.enabled.clear()
    (root / "etc" / "systemd" / "system" / UNIT).unlink()
    done = run_module(damon_applier.main, args(root))
    # the file is written again, reloaded, and enabled
    assert not done.failed and systemd.enabled == {UNIT}
    systemd.enabled.clear()
    original = systemd.run_command

    def refuse(argv, **kw):
        if argv[1] == "enable":
            return 1, "", "Failed to enable unit: Unit file is masked.\n"
        return original(argv, **kw)

    systemd.run_command = refuse  # type: ignore[method-assign]
    done = run_module(damon_applier.main, args(root))
    assert done.failed
    assert done.result["msg"] == (
        f"systemctl enable {UNIT} failed: Failed to enable unit: Unit file is masked."
    )
