"""``damon-fleet deploy|detect|configure|verify|report|status``: inputs, run directories,
exit codes, resume. ansible-runner is replaced by a stub that replays event fixtures (REAL
localhost captures and a lab rollout; see each file's ``_captured``).

Every test keeps its runs and rollout records under tmp_path: the CLI's defaults are
redirected with DAMON_FLEET_RUNS_DIR and DAMON_FLEET_STATE_DIR, and a check after each
test proves the checkout's ``.damon-fleet/{runs,state}`` did not change."""

from __future__ import annotations

import json
import stat

import pytest
from conftest import FIXTURES
from event_markers import captured

from damon_fleet import run_cli
from damon_fleet._paths import REPO_ROOT
from damon_fleet.cli import build_parser, main

EVENTS = FIXTURES / "runner-events"


def _tree(path):
    return sorted(str(p) for p in path.rglob("*")) if path.exists() else None


@pytest.fixture(autouse=True)
def private_defaults(tmp_path, monkeypatch):
    """The CLI's default runs and state folders point into tmp_path; the checkout's
    ``.damon-fleet/runs`` and ``.damon-fleet/state`` are the same after the test."""
    monkeypatch.setenv(run_cli.RUNS_DIR_ENV, str(tmp_path / "default-runs"))
    monkeypatch.setenv(run_cli.STATE_DIR_ENV, str(tmp_path / "default-state"))
    watched = [REPO_ROOT / ".damon-fleet" / "runs", REPO_ROOT / ".damon-fleet" / "state"]
    before = [_tree(path) for path in watched]
    yield
    assert [_tree(path) for path in watched] == before


def events(name):
    """A captured stream (event_markers.captured)."""
    return captured(name)


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n"
        "  hosts:\n"
        "    localhost: {ansible_connection: local}\n"
        "  children:\n"
        "    lab: {hosts: {lab1: {}, lab2: {}, lab3: {}}}\n"
        "    builder: {hosts: {build1: {}}}\n"
    )
    return path


@pytest.fixture
def replay(monkeypatch):
    """Replace run_playbook: record its arguments, replay *events* through on_event."""
    calls = []
    plan = {"events": [], "status": "successful", "rc": 0, "canceled": False}

    def fake(
        run_dir, playbook, inventory, limit, extravars, check, verbosity, on_event, tick, stop=None
    ):
        calls.append(
            {
                "run_dir": run_dir,
                "playbook": playbook,
                "inventory": inventory,
                "limit": limit,
                "extravars": dict(extravars),
                "check": check,
            }
        )
        for event in plan["events"]:
            on_event(event)
        return run_cli.RunResult(
            status=plan["status"],
            rc=plan["rc"],
            canceled=plan["canceled"],
            events=list(plan["events"]),
            signum=plan.get("signum"),
        )

    monkeypatch.setattr(run_cli, "run_playbook", fake)
    return plan, calls


# --- inputs ------------------------------------------------------------------------------


def test_extra_vars_forms(tmp_path):
    (tmp_path / "vars.yml").write_text("rollout_serial: [1, '50%']\n")
    got = run_cli.parse_extra_vars(
        ['a=1 b=x c=["y","z"]', '{"d": {"e": 2}}', "@vars.yml", "a=2"], tmp_path
    )
    assert got == {"a": 2, "b": "x", "c": ["y", "z"], "d": {"e": 2}, "rollout_serial": [1, "50%"]}


@pytest.mark.parametrize("bad", ["novalue", "{broken", "@missing.yml", "[1, 2]", "1x=2", ""])
def test_bad_extra_vars(tmp_path, bad):
    with pytest.raises(run_cli.BadInput):
        run_cli.parse_extra_vars([bad], tmp_path)


def test_inventory_hosts_stages_and_limit(inventory):
    info = run_cli.read_inventory(inventory, None)
    assert sorted(info.hosts) == ["build1", "lab1", "lab2", "lab3", "localhost"]
    assert sorted(info.stage_hosts["rollout"]) == ["lab1", "lab2", "lab3"]
    limited = run_cli.read_inventory(inventory, "lab:!lab3")
    assert sorted(limited.hosts) == ["lab1", "lab2"]
    assert sorted(limited.stage_hosts["rollout"]) == ["lab1", "lab2"]


@pytest.mark.parametrize(
    ("limit", "message"),
    [("lab9", "'lab9' matches no host"), ("lab1,nohost", "'nohost'"), ("lab1:&builder", "leaves")],
)
def test_limit_matching_no_host_is_bad_input(inventory, limit, message):
    with pytest.raises(run_cli.BadInput, match=message):
        run_cli.read_inventory(inventory, limit)


def test_unreadable_or_empty_inventory_is_bad_input(tmp_path):
    with pytest.raises(run_cli.BadInput, match="does not exist"):
        run_cli.read_inventory(tmp_path / "none.yml", None)
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts: [bad\n")
    with pytest.raises(run_cli.BadInput, match="cannot be parsed"):
        run_cli.read_inventory(broken, None)
    empty = tmp_path / "empty.yml"
    empty.write_text("all:\n  children:\n    lab:\n      hosts: {}\n")
    with pytest.raises(run_cli.BadInput, match="no hosts"):
        run_cli.read_inventory(empty, None)


def test_subcommands_are_wired():
    parser = build_parser()
    args = parser.parse_args(["deploy", "--resume", "--check", "-e", "a=1", "--limit", "lab1"])
    assert args.func is run_cli.cmd_run
    assert (args.command, args.resume, args.check, args.limit) == ("deploy", True, True, "lab1")
    for command in ("detect", "configure", "verify"):
        assert parser.parse_args([command, "-i", "x"]).inventory == "x"
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--resume"])
    assert parser.parse_args(["report", "RUN", "--format", "json"]).run == "RUN"
    assert parser.parse_args(["status", "--format", "markdown"]).func is run_cli.cmd_status


# --- runs --------------------------------------------------------------------------------


def test_detect_run_writes_the_run_directory(tmp_path, inventory, replay, capsys):
    plan, calls = replay
    plan["events"] = events("localhost-detect.json")
    runs = tmp_path / "runs"
    rc = main(["detect", "-i", str(inventory), "--limit", "localhost", "--runs-dir", str(runs)])
    assert rc == 0
    (call,) = calls
    assert call["playbook"].name == "detect.yml" and call["limit"] == "localhost"
    assert call["extravars"]["rollout_state_dir"] == str(tmp_path / "default-state")
    (run_dir,) = run_cli.list_runs(runs)
    assert {p.name for p in run_dir.iterdir()} >= {
        "run.json",
        "report.json",
        "report.md",
        "report.html",
    }
    run = json.loads((run_dir / "run.json").read_text())
    assert run["command"] == "detect" and run["exit_code"] == 0 and run["hosts"] == ["localhost"]
    assert run["started"] and run["finished"] and run["status"] == "successful"
    out, err = capsys.readouterr()
    assert "localhost  done" in out
    assert "[00:00] detect" in err and "finished: 1 ok" in err  # plain lines: not a terminal


def test_failed_host_exits_1_and_is_listed_on_stderr(tmp_path, inventory, replay, capsys):
    plan, _ = replay
    plan.update(events=events("localhost-verify-failed.json"), status="failed", rc=2)
    rc = main(["verify", "-i", str(inventory), "-l", "localhost", "--runs-dir", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "damon-fleet: failed hosts:" in err
    assert "  localhost: failed in verify: localhost: DAMON differs" in err


def test_deploy_failure_lists_failed_and_unreached_hosts(tmp_path, inventory, replay, capsys):
    plan, _ = replay
    plan.update(events=events("lab-deploy-rollout-fallback.json"), status="failed", rc=2)
    state = tmp_path / "state"
    state.mkdir()
    for record in json.loads((EVENTS / "lab-rollout-records.json").read_text())["records"]:
        (state / f"{record['host']}.json").write_text(json.dumps(record))
    rc = main(
        [
            "deploy",
            "-i",
            str(inventory),
            "-l",
            "lab",
            "-e",
            f"rollout_state_dir={state}",
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "  lab2: failed in rollout/fallback: kernel_install: lab2 failed the gate" in err
    assert "  lab3: not reached (the run stopped before it)" in err
    report = json.loads(next((tmp_path / "runs").glob("*/report.json")).read_text())
    rows = {r["host"]: r for r in report["hosts"]}
    assert rows["lab1"]["kernel"]["after"] == "6.12.117-lab-perf-events-abi-0c853a0d"
    assert rows["lab1"]["gate"]["passed"] is True


def test_nothing_ran_is_bad_input(tmp_path, inventory, replay, capsys):
    plan, _ = replay
    plan.update(events=[], status="failed", rc=4)
    assert main(["detect", "-i", str(inventory), "--runs-dir", str(tmp_path)]) == 2
    assert "nothing ran" in capsys.readouterr().err


def test_bad_input_starts_no_run(tmp_path, inventory, replay, capsys):
    _, calls = replay
    runs = tmp_path / "runs"
    assert main(["detect", "-i", str(tmp_path / "none.yml"), "--runs-dir", str(runs)]) == 2
    assert main(["detect", "-i", str(inventory), "-l", "nohost", "--runs-dir", str(runs)]) == 2
    assert main(["detect", "-i", str(inventory), "-e", "oops", "--runs-dir", str(runs)]) == 2
    assert main(["deploy", "--resume", "--runs-dir", str(runs)]) == 2
    assert calls == [] and not runs.exists()
    assert "--resume: no previous deploy run" in capsys.readouterr().err


def test_interrupt_exits_130_writes_the_report_and_points_to_resume(
    tmp_path, inventory, replay, capsys
):
    plan, _ = replay
    plan.update(
        events=events("localhost-detect-interrupted.json"), status="canceled", rc=254, canceled=True
    )
    runs = tmp_path / "runs"
    assert main(["deploy", "-i", str(inventory), "-l", "localhost", "--runs-dir", str(runs)]) == 130
    err = capsys.readouterr().err
    assert "Continue with: damon-fleet deploy --resume" in err
    (run_dir,) = run_cli.list_runs(runs)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "canceled" and run["exit_code"] == 130
    report = json.loads((run_dir / "report.json").read_text())
    assert report["hosts"][0]["outcome"] == "interrupted"


def test_resume_reuses_inventory_limit_vars_and_state_dir(tmp_path, inventory, replay, capsys):
    plan, calls = replay
    plan["events"] = events("localhost-detect.json")
    runs = tmp_path / "runs"
    state = tmp_path / "state"
    assert (
        main(
            [
                "deploy",
                "-i",
                str(inventory),
                "-l",
                "lab1,lab2",
                "--check",
                "-e",
                "x=1",
                "-e",
                f"rollout_state_dir={state}",
                "--runs-dir",
                str(runs),
            ]
        )
        == 0
    )
    first = run_cli.list_runs(runs)[0].name
    assert main(["deploy", "--resume", "-e", "y=2", "--runs-dir", str(runs)]) == 0
    resumed = calls[-1]
    assert resumed["inventory"] == inventory and resumed["limit"] == "lab1,lab2"
    assert resumed["check"] is True
    assert resumed["extravars"] == {"x": 1, "y": 2, "rollout_state_dir": str(state)}
    run = json.loads((run_cli.list_runs(runs)[-1] / "run.json").read_text())
    assert run["resumed_from"] == first
    assert "resuming run" in capsys.readouterr().err
    # The previous run's inventory and state directory only.
    assert main(["deploy", "--resume", "-i", str(inventory), "--runs-dir", str(runs)]) == 2
    assert (
        main(["deploy", "--resume", "-e", "rollout_state_dir=/elsewhere", "--runs-dir", str(runs)])
        == 2
    )


def test_report_and_status_of_past_runs(tmp_path, inventory, replay, capsys):
    plan, _ = replay
    runs = tmp_path / "runs"
    plan["events"] = events("localhost-detect.json")
    state = f"rollout_state_dir={tmp_path / 'state'}"  # no records: only the run is seen
    argv = ["detect", "-i", str(inventory), "-l", "localhost", "-e", state, "--runs-dir", str(runs)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["report", "--runs-dir", str(runs), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["command"] == "detect"
    # Without report.json the report is rebuilt from run.json and the runner artifacts.
    run_dir = run_cli.list_runs(runs)[0]
    (run_dir / "report.json").unlink()
    events_dir = run_dir / "artifacts" / run_cli.ARTIFACT_IDENT / "job_events"
    events_dir.mkdir(parents=True)
    for event in plan["events"]:
        (events_dir / f"{event['counter']}-{event['uuid']}.json").write_text(json.dumps(event))
    assert main(["report", run_dir.name, "--runs-dir", str(runs), "--format", "markdown"]) == 0
    assert "| localhost | done |" in capsys.readouterr().out
    assert main(["report", "nosuchrun", "--runs-dir", str(runs)]) == 2
    capsys.readouterr()
    assert main(["status", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:2] == ["localhost", "6.18.44-fc-v857"]


def test_new_run_dirs_are_unique(tmp_path):
    first = run_cli.new_run_dir(tmp_path, now=0)
    second = run_cli.new_run_dir(tmp_path, now=0)
    assert (first.name, second.name) == ("19700101T000000Z", "19700101T000000Z-2")


def test_runs_are_private_and_an_open_runs_dir_is_tightened(tmp_path, inventory, replay):
    plan, _ = replay
    plan["events"] = events("localhost-detect.json")
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o755)
    runs.chmod(0o755)
    assert main(["detect", "-i", str(inventory), "-l", "localhost", "--runs-dir", str(runs)]) == 0
    (run_dir,) = run_cli.list_runs(runs)
    assert stat.S_IMODE(runs.stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("run.json", "report.json", "report.md", "report.html"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []


def test_state_dir_default_follows_the_environment(tmp_path, inventory, replay, monkeypatch):
    _, calls = replay
    monkeypatch.setenv(run_cli.STATE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert main(["detect", "-i", str(inventory), "--runs-dir", str(tmp_path / "runs")]) == 0
    assert calls[-1]["extravars"]["rollout_state_dir"] == str(tmp_path / "elsewhere")
