"""``damon-fleet lab``: argument wiring, extra vars, status of a state directory."""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import VmState

from damon_fleet import lab_cli
from damon_fleet.cli import build_parser, main
from damon_fleet.events import marker


@pytest.mark.parametrize("count", ["-1", "two", "1.5"])
def test_bad_count_is_refused_before_anything_runs(count, capsys, monkeypatch):
    monkeypatch.setattr(lab_cli, "run_playbook", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(SystemExit) as info:
        main(["lab", "up", "--count", count])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--count" in err and repr(count) in err and "0 or more" in err


def test_lab_subcommands_are_wired():
    args = build_parser().parse_args(["lab", "up", "--count", "3", "--accel", "tcg"])
    assert args.func is lab_cli.cmd_up
    assert (args.count, args.accel) == (3, "tcg")
    assert build_parser().parse_args(["lab", "down"]).func is lab_cli.cmd_down
    assert build_parser().parse_args(["lab", "status", "--json"]).json


def test_parse_extra():
    assert lab_cli._parse_extra(["a=1", "b=x", 'c=["y"]', "d="]) == {
        "a": 1,
        "b": "x",
        "c": ["y"],
        "d": "",
    }
    with pytest.raises(ValueError):
        lab_cli._parse_extra(["novalue"])


class FakeRunner:
    def __init__(self, rc):
        self.rc = rc
        self.status = "successful" if rc == 0 else "failed"
        self.canceled = False


def fake_run_async(plan, calls):
    """``ansible_runner.run_async`` as the real one behaves for the CLI: a thread that
    hands each event of ``plan["events"]`` to ``event_handler``, writes ansible's output
    to ``<artifact_dir>/<ident>/stdout``, stops early (``canceled``, rc 254) once
    ``cancel_callback`` says so, and ends with ``plan["rc"]``."""

    def run_async(**kwargs):
        calls.append(kwargs)
        assert Path(kwargs["private_data_dir"]).is_dir()
        runner = FakeRunner(None)
        runner.status = "running"
        out = Path(kwargs["artifact_dir"]) / kwargs["ident"]

        def work():
            out.mkdir(parents=True, exist_ok=True)
            with (out / "stdout").open("w") as stream:
                for event in plan.get("events", []):
                    plan.get("before_event", lambda: None)()
                    if kwargs["cancel_callback"]():
                        runner.rc, runner.status, runner.canceled = 254, "canceled", True
                        return
                    stream.write(f"{event['event']} {event['event_data'].get('task', '')}\n")
                    kwargs["event_handler"](event)
                    plan.get("after_event", lambda event: None)(event)
            runner.rc = plan["rc"]
            runner.status = "successful" if plan["rc"] == 0 else "failed"

        thread = threading.Thread(target=work)
        thread.start()
        return thread, runner

    return run_async


@pytest.fixture(autouse=True)
def no_real_ansible(monkeypatch):
    """No test here runs the real lab playbook (it starts VMs): a test that runs one
    replaces ansible-runner with the ``ansible`` fixture or a fake of its own."""
    import ansible_runner

    monkeypatch.setattr(ansible_runner, "run", lambda **k: pytest.fail("real run"))
    monkeypatch.setattr(ansible_runner, "run_async", lambda **k: pytest.fail("real run"))


@pytest.fixture
def ansible(monkeypatch, tmp_path):
    """``ansible_runner.run`` (``-v``) and ``run_async`` (the progress display) replaced:
    both record their keyword arguments; the runs directory is under *tmp_path*."""
    import ansible_runner

    calls = []
    plan = {"rc": 0}

    def run(**kwargs):
        calls.append(kwargs)
        assert Path(kwargs["private_data_dir"]).is_dir()  # a real temporary folder
        return FakeRunner(plan["rc"])

    monkeypatch.setattr(ansible_runner, "run", run)
    monkeypatch.setattr(ansible_runner, "run_async", fake_run_async(plan, calls))
    monkeypatch.setenv("DAMON_FLEET_RUNS_DIR", str(tmp_path / "runs"))
    return plan, calls


def test_up_runs_the_lab_playbook_with_the_role_inputs(tmp_path, ansible, capsys):
    _, calls = ansible
    rc = main(
        [
            "lab",
            "up",
            "--state-dir",
            str(tmp_path / "s"),
            "--inventory",
            str(tmp_path / "h.yml"),
            "--count",
            "1",
            "--kernel-package",
            "k.deb",
            "-e",
            "lab_fleet_memory_mb=2048",
        ]
    )
    assert rc == 0
    (call,) = calls
    assert call["playbook"] == str(lab_cli.PLAYBOOK)
    assert call["envvars"]["ANSIBLE_CONFIG"].endswith("/ansible.cfg")
    run_dir = Path(call["private_data_dir"])
    assert run_dir.parent == tmp_path / "runs"  # a run directory of the runs dir, kept
    assert call["artifact_dir"] == str(run_dir / "artifacts")
    assert not (run_dir / "env" / "extravars").exists()  # removed after the run
    assert call["inventory"] == str(lab_cli.run_cli.DEFAULT_INVENTORY)
    assert call["quiet"] is True
    extravars = call["extravars"]
    assert extravars["lab_fleet_state"] == "present"
    assert extravars["lab_fleet_count"] == 1
    assert extravars["lab_fleet_state_dir"] == str(tmp_path / "s")
    assert extravars["lab_fleet_inventory_path"] == str(tmp_path / "h.yml")
    assert extravars["lab_fleet_kernel_packages"] == [str(Path("k.deb").resolve())]
    assert extravars["lab_fleet_memory_mb"] == 2048
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("damon-fleet lab up: done in ")
    assert out[1] == f"no lab VMs in {tmp_path / 's'}"  # the status after a good run


def test_without_inventory_the_role_writes_into_the_state_dir(tmp_path, ansible, capsys):
    """No --inventory: the role's default <state dir>/hosts.yml, which the default
    inventory's plugin reads; the run's environment names the same state directory only
    through lab_fleet_state_dir (extra vars win over it)."""
    _, calls = ansible
    assert main(["lab", "up", "--state-dir", str(tmp_path / "s"), "--count", "1"]) == 0
    assert main(["lab", "down", "--state-dir", str(tmp_path / "s")]) == 0
    for call in calls:
        assert call["extravars"]["lab_fleet_state_dir"] == str(tmp_path / "s")
        assert "lab_fleet_inventory_path" not in call["extravars"]
        assert call["envvars"]["DAMON_FLEET_LAB_STATE"] == str(lab_cli.DEFAULT_STATE_DIR)
        assert call["project_dir"] == str(lab_cli.CONTENT_ROOT)
    capsys.readouterr()


def test_the_default_state_dir_is_outside_the_tracked_files():
    """The lab state is runtime state (.damon-fleet/ of the checkout or
    $DAMON_FLEET_LAB_STATE), never under inventories/."""
    state = lab_cli.DEFAULT_STATE_DIR
    assert "inventories" not in state.parts
    assert state.name == "lab"
    assert state.parent.name == ".damon-fleet" or "DAMON_FLEET_LAB_STATE" in os.environ


@pytest.mark.parametrize(("runner_rc", "code", "word"), [(2, 2, "failed"), (None, 1, "failed")])
def test_up_reports_a_failed_playbook_and_shows_no_status(
    tmp_path, ansible, capsys, runner_rc, code, word
):
    plan, _ = ansible
    plan["rc"] = runner_rc
    assert main(["lab", "up", "--state-dir", str(tmp_path), "--count", "1"]) == code
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"damon-fleet lab up: {word} in ")


def test_up_refuses_a_bad_extra_var_before_running(tmp_path, ansible, capsys):
    _, calls = ansible
    assert main(["lab", "up", "--state-dir", str(tmp_path), "-e", "novalue"]) == 2
    assert calls == []
    assert capsys.readouterr().err == "damon-fleet lab up: expected KEY=VALUE, got 'novalue'\n"


def test_down_keeps_disks_on_request(tmp_path, ansible, capsys):
    plan, calls = ansible
    plan["rc"] = 2
    assert main(["lab", "down", "--state-dir", str(tmp_path), "--keep-disks"]) == 2
    assert calls[-1]["extravars"]["lab_fleet_state"] == "absent"
    assert calls[-1]["extravars"]["lab_fleet_remove_disks"] is False
    assert capsys.readouterr().out.startswith("damon-fleet lab down: failed in ")
    plan["rc"] = 0
    assert main(["lab", "down", "--state-dir", str(tmp_path)]) == 0
    assert calls[-1]["extravars"]["lab_fleet_remove_disks"] is True


def test_status_of_stopped_and_empty_fleets(tmp_path, capsys):
    assert main(["lab", "status", "--state-dir", str(tmp_path / "none")]) == 0
    assert "no lab VMs" in capsys.readouterr().out
    for name, port in (("lab1", 2201), ("lab2", 2202)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "vm.json").write_text(
            VmState(name=name, ssh_port=port, accel="tcg").to_json()
        )
    # the profile each VM plays, as the lab_fleet role records it (lab2 not recorded)
    (tmp_path / "fleet.json").write_text(
        json.dumps({"ssh_key": "", "vms": [{"name": "lab1", "profile": "icelake-sp"}]})
    )
    assert main(["lab", "status", "--state-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["ssh_port"], r["state"], r["kernel"], r["profile"]) for r in rows] == [
        ("lab1", 2201, "stopped", None, "icelake-sp"),
        ("lab2", 2202, "stopped", None, None),
    ]
    assert main(["lab", "status", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SSH_PORT", "PID", "STATE", "ACCEL", "KERNEL", "PROFILE"]
    assert lines[1].split() == ["lab1", "2201", "-", "stopped", "tcg", "-", "icelake-sp"]
    assert lines[2].split() == ["lab2", "2202", "-", "stopped", "tcg", "-", "-"]


# --- lab profiles: the real machine each VM plays -------------------------------------

KNOWN = "amd-epyc-vm, icelake-sp, raptorlake-hybrid, sapphirerapids"


def test_known_profiles_are_the_role_index():
    profiles = lab_cli.known_profiles()
    assert sorted(profiles) == KNOWN.split(", ")
    for name in profiles:
        assert (lab_cli.PROFILES_INDEX.parent / name / "profile.yml").is_file()


def test_profiles_and_profile_become_the_role_inputs(tmp_path, ansible, capsys):
    _, calls = ansible
    argv = ["lab", "up", "--state-dir", str(tmp_path), "--count", "3"]
    rc = main([*argv, "--profiles", "icelake-sp,amd-epyc-vm", "--profile", "lab3=sapphirerapids"])
    assert rc == 0
    extravars = calls[-1]["extravars"]
    assert extravars["lab_fleet_profiles"] == ["icelake-sp", "amd-epyc-vm"]
    assert extravars["lab_fleet_host_profiles"] == {"lab3": "sapphirerapids"}
    # without the options the role's defaults apply: nothing is passed
    assert main(argv) == 0
    assert "lab_fleet_profiles" not in calls[-1]["extravars"]
    assert "lab_fleet_host_profiles" not in calls[-1]["extravars"]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--profile", "lab1=skylake"],
            f"--profile 'lab1=skylake': unknown profile 'skylake'; known profiles: {KNOWN}",
        ),
        (
            ["--profiles", "sapphirerapids,zen5"],
            f"--profiles: unknown profile 'zen5'; known profiles: {KNOWN}",
        ),
        (
            ["--profiles", "sapphirerapids,"],
            "--profiles 'sapphirerapids,': expected profile names separated by commas "
            f"(known: {KNOWN})",
        ),
        (
            ["--profile", "lab1"],
            "--profile 'lab1': expected HOST=PROFILE, e.g. lab1=icelake-sp "
            f"(known profiles: {KNOWN})",
        ),
        (
            ["--profile=-x/lab1=icelake-sp"],
            "--profile '-x/lab1=icelake-sp': expected HOST=PROFILE, e.g. lab1=icelake-sp "
            f"(known profiles: {KNOWN})",
        ),
    ],
)
def test_unknown_profile_is_refused_before_anything_runs(
    tmp_path, ansible, capsys, options, message
):
    _, calls = ansible
    assert main(["lab", "up", "--state-dir", str(tmp_path), *options]) == 2
    assert calls == []
    captured = capsys.readouterr()
    assert captured.err == f"damon-fleet lab up: {message}\n"
    assert captured.out == ""
    assert not (tmp_path / "fleet.json").exists()


def test_a_missing_profile_index_knows_no_profile(tmp_path):
    assert lab_cli.known_profiles(tmp_path / "index.yml") == {}
    (tmp_path / "index.yml").write_text("- not a mapping\n")
    assert lab_cli.known_profiles(tmp_path / "index.yml") == {}


def test_guest_kernel_without_port_or_key():
    assert lab_cli.guest_kernel(0, "key") is None
    assert lab_cli.guest_kernel(22, "") is None


def test_sigterm_stops_lab_up_through_the_runner_cancel(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import ansible_runner

    seen = []

    def run_async(**kwargs):
        cancel = kwargs["cancel_callback"]
        runner = FakeRunner(None)

        def work():
            seen.append(cancel())
            os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread
            for _ in range(200):  # ansible-runner polls its cancel_callback
                if cancel():
                    break
                time.sleep(0.01)
            seen.append(cancel())
            runner.rc, runner.status, runner.canceled = 254, "canceled", True

        thread = threading.Thread(target=work)
        thread.start()
        return thread, runner

    saved = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(ansible_runner, "run", lambda **k: pytest.fail("ran"))
    monkeypatch.setattr(ansible_runner, "run_async", run_async)
    monkeypatch.setenv("DAMON_FLEET_RUNS_DIR", str(tmp_path / "runs"))
    try:
        assert main(["lab", "up", "--state-dir", str(tmp_path), "--count", "1"]) == 143
    finally:
        assert signal.getsignal(signal.SIGTERM) == saved
        signal.signal(signal.SIGTERM, saved)
    assert seen == [False, True]
    captured = capsys.readouterr()
    assert "damon-fleet lab: SIGTERM: ansible stopped" in captured.err
    assert (
        "\ndamon-fleet lab up: SIGTERM: stopping ansible (a second signal stops at once)...\n"
        in captured.err
    )
    assert captured.out.startswith("damon-fleet lab up: stopped in ")


# --- progress -----------------------------------------------------------------------------

MARKERS = Path(__file__).parent.parent / "fixtures" / "runner-events" / "localhost-lab-markers.json"


def lab_events(tmp_path, build_log_text):
    """The REAL events of the lab's marker tasks (see the fixture's ``_captured``), the
    build's paths moved into *tmp_path*: a build log holding *build_log_text*, its config,
    and no earlier build."""
    build = tmp_path / "builds" / "a9b2c61ae1929d12"
    build.mkdir(parents=True)
    (build / "build.log").write_text(build_log_text)
    (build / "config").write_text("CONFIG_DAMON=y\nCONFIG_DAMON_SYSFS=y\n")
    found = json.loads(MARKERS.read_text())["events"]
    # As if they happened now: the display's clock is the events' and the machine's.
    shift = time.time() - datetime.datetime.fromisoformat(found[0]["created"]).timestamp()
    for event in found:
        stamp = datetime.datetime.fromisoformat(event["created"]).timestamp() + shift
        event["created"] = datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat()
        stats = event["event_data"].get("res", {}).get("ansible_stats")
        data = stats["data"]["damon_fleet"] if stats else {}
        if data.get("event") == "build_log":
            data.update(
                log=str(build / "build.log"),
                config=str(build / "config"),
                builds_dir=str(tmp_path / "builds"),
            )
    return found


# ~/.cache/damon-fleet/builds/a9b2c61ae1929d12/build.log, lines 58-60: 2 objects.
LOG_LINES = """\
  CC      scripts/mod/empty.o
  HOSTCC  scripts/mod/mk_elfconfig
  CC      scripts/mod/devicetable-offsets.s
"""


def test_up_shows_stages_and_names_the_log_on_failure(tmp_path, ansible, capsys):
    """Plain lines (no terminal): each stage once, the VMs of the boot stage, the build's
    expected objects (an estimate from its 2-option config: 5), the failure, and the
    file holding Ansible's whole output."""
    plan, calls = ansible
    plan["events"] = lab_events(tmp_path, LOG_LINES)
    plan["rc"] = 2
    # The build runs long enough for the display to look at its log (every 0.25 s).
    plan["after_event"] = lambda event: (
        time.sleep(0.6) if (marker(event) or {}).get("event") == "build_log" else None
    )
    assert main(["lab", "up", "--state-dir", str(tmp_path / "s"), "--count", "2"]) == 2
    (call,) = calls
    run_dir = Path(call["private_data_dir"])
    log = run_dir / "artifacts" / "ansible" / "stdout"
    captured = capsys.readouterr()
    assert captured.out.startswith("damon-fleet lab up: failed in ")
    assert captured.err.splitlines() == [
        f"damon-fleet lab up: run {run_dir}; ansible's log: {log}",
        "[00:00] kernel",
        "[00:00] kernel build: 5 objects expected (estimate from .config)",
        "[00:03] image",
        "[00:03] disk",
        "[00:04] boot lab1, lab2",
        "[00:04] localhost FAILED in boot: Fail as a boot can: lab1 did not answer on SSH in time",
        "[00:04] finished: 0 ok, 1 failed (localhost)",
        f"damon-fleet lab up: failed; Ansible's full log: {log}",
    ]
    assert "Fail as a boot can" in log.read_text()  # the whole output is in the file


def test_verbose_up_streams_ansible_as_before(tmp_path, ansible, capsys):
    _, calls = ansible
    assert main(["lab", "up", "-v", "--state-dir", str(tmp_path / "s"), "--count", "1"]) == 0
    (call,) = calls
    assert call["quiet"] is False and call["verbosity"] == 1
    assert "artifact_dir" not in call  # ansible-runner's own temporary folder
    assert not (tmp_path / "runs").exists()
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("damon-fleet lab up: done in ")


def test_a_runs_dir_that_is_a_file_is_refused_before_anything_runs(tmp_path, ansible, capsys):
    _, calls = ansible
    taken = tmp_path / "file"
    taken.write_text("")
    argv = ["lab", "up", "--state-dir", str(tmp_path / "s"), "--runs-dir", str(taken)]
    assert main(argv) == 2
    assert calls == []
    captured = capsys.readouterr()
    assert captured.err == f"damon-fleet lab up: --runs-dir {taken} is not a directory\n"
    assert captured.out == ""
