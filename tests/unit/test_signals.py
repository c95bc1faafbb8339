"""Stopping a run on a signal: SIGTERM (143), SIGHUP (129), SIGINT (130), a second signal,
and an inherited ignored SIGINT.

``ansible_runner.run_async`` is replaced by a fake that behaves like the real one: it runs
in a thread, feeds REAL runner events (tests/fixtures/runner-events) to the event handler,
polls ``cancel_callback`` while its "ansible-playbook" runs and, once canceled, ends with
status ``canceled`` and rc 254. The signals are real: the fake sends them to this process
with ``os.kill`` while ``run_playbook`` polls in the main thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import ansible_runner
import pytest
from conftest import FIXTURES, ROOT

from damon_fleet import run_cli, signals
from damon_fleet.cli import main

EVENTS = FIXTURES / "runner-events"


def events(name):
    return json.loads((EVENTS / name).read_text())["events"]


@pytest.fixture(autouse=True)
def restore_handlers():
    """Each test starts with the dispositions of a foreground job, whatever the tier
    inherited (started in the background, SIGINT is ignored; under nohup, SIGHUP), and
    the inherited ones are back afterwards."""
    inherited = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    for signum, handler in inherited.items():
        signal.signal(signum, handler)


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n")
    return path


class FakeRunner:
    def __init__(self):
        self.rc = None
        self.status = "unstarted"
        self.canceled = False


class FakeAnsible:
    """``run_async`` as ansible-runner has it: events in a thread, ``cancel_callback``
    polled while the playbook runs, status ``canceled`` and rc 254 once canceled.

    *script*: (events to feed, signal to send after them or None), in order; after the
    last step the playbook "runs" until canceled or *run_for* seconds passed.
    """

    def __init__(self, script, run_for=3.0):
        self.script = script
        self.run_for = run_for
        self.calls = []
        self.saw_cancel = False
        self.sent = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        runner = FakeRunner()
        handler = kwargs["event_handler"]
        cancel = kwargs["cancel_callback"]
        private = Path(kwargs["private_data_dir"])
        # ansible-runner writes the extra vars here, 0600, and runs ansible-playbook -e @it
        (private / "env").mkdir(mode=0o700, exist_ok=True)
        extravars = private / "env" / "extravars"
        extravars.write_text(json.dumps(kwargs["extravars"]))
        extravars.chmod(0o600)

        def play():
            runner.status = "running"
            for evs, signum in self.script:
                for event in evs:
                    handler(dict(event))
                if signum is not None:
                    self.sent.append(signum)
                    os.kill(os.getpid(), signum)
                    time.sleep(0.05)
            deadline = time.monotonic() + self.run_for
            while time.monotonic() < deadline:
                if cancel():
                    self.saw_cancel = runner.canceled = True
                    runner.status, runner.rc = "canceled", 254
                    return
                time.sleep(0.05)
            runner.status, runner.rc = "successful", 0

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        return thread, runner


def interrupted_detect(signum):
    evs = events("localhost-detect-interrupted.json")
    return FakeAnsible([(evs, signum)])


def deploy(inventory, runs, *extra):
    return main(
        ["deploy", "-i", str(inventory), "-l", "localhost", "--runs-dir", str(runs), *extra]
    )


@pytest.mark.parametrize(
    ("signum", "code", "name"),
    [
        (signal.SIGTERM, 143, "SIGTERM"),
        (signal.SIGHUP, 129, "SIGHUP"),
        (signal.SIGINT, 130, "SIGINT"),
    ],
)
def test_a_signal_stops_ansible_keeps_the_report_and_exits_128_plus_n(
    tmp_path, inventory, monkeypatch, capsys, restore_handlers, signum, code, name
):
    fake = interrupted_detect(signum)
    monkeypatch.setattr(ansible_runner, "run_async", fake)
    runs = tmp_path / "runs"
    state = f"rollout_state_dir={tmp_path / 'state'}"
    assert deploy(inventory, runs, "-e", state) == code
    assert fake.saw_cancel  # ansible-runner's cancel stopped "ansible-playbook"
    (run_dir,) = run_cli.list_runs(runs)
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["status"], run["exit_code"], run["signal"]) == ("canceled", code, name)
    assert run["ansible_rc"] == 254
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run"]["status"] == "canceled" and report["run"]["exit_code"] == code
    (row,) = report["hosts"]
    assert row["outcome"] == "interrupted"
    assert row["last_task"]["task"] == "Detect the perf event DAMON should use"
    out, err = capsys.readouterr()
    assert "localhost  interrupted" in out
    assert f"damon-fleet: {name}: stopping ansible (the report follows;" in err
    assert f"damon-fleet deploy: interrupted ({name}); the hosts' state is in the report" in err
    assert "Continue with: damon-fleet deploy --resume" in err
    assert "Traceback" not in err
    # the handlers of before the run are back
    assert {s: signal.getsignal(s) for s in signals.STOP_SIGNALS} == restore_handlers


def test_resume_after_sigterm_continues_the_canceled_run(tmp_path, inventory, monkeypatch):
    monkeypatch.setattr(ansible_runner, "run_async", interrupted_detect(signal.SIGTERM))
    runs = tmp_path / "runs"
    state = tmp_path / "state"
    assert deploy(inventory, runs, "-e", f"rollout_state_dir={state}", "-e", "x=1") == 143
    (canceled,) = run_cli.list_runs(runs)
    finished = FakeAnsible([(events("localhost-detect.json"), None)], run_for=0)
    monkeypatch.setattr(ansible_runner, "run_async", finished)
    assert main(["deploy", "--resume", "--runs-dir", str(runs)]) == 0
    (call,) = finished.calls
    assert call["limit"] == "localhost" and call["inventory"] == str(inventory)
    assert call["extravars"] == {"x": 1, "rollout_state_dir": str(state)}
    resumed = json.loads((run_cli.list_runs(runs)[-1] / "run.json").read_text())
    assert resumed["resumed_from"] == canceled.name
    assert (resumed["status"], resumed["exit_code"]) == ("successful", 0)


def test_inherited_ignored_sigint_stays_ignored(tmp_path, inventory, monkeypatch, capsys):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a shell starts
    fake = FakeAnsible([(events("localhost-detect.json"), signal.SIGINT)], run_for=0.5)
    monkeypatch.setattr(ansible_runner, "run_async", fake)
    runs = tmp_path / "runs"
    assert deploy(inventory, runs, "-e", f"rollout_state_dir={tmp_path / 's'}") == 0
    assert fake.sent == [signal.SIGINT] and not fake.saw_cancel
    (run_dir,) = run_cli.list_runs(runs)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "successful"
    assert "stopping ansible" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_sigterm_is_honoured_even_when_inherited_ignored(tmp_path, inventory, monkeypatch):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    monkeypatch.setattr(ansible_runner, "run_async", interrupted_detect(signal.SIGTERM))
    assert deploy(inventory, tmp_path / "runs", "-e", f"rollout_state_dir={tmp_path}/s") == 143
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # restored as it was


def test_stop_signals_keeps_inherited_ignores_of_sigint_and_sighup_only():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with signals.StopSignals() as stop:
        assert sorted(stop.kept_ignored) == sorted([signal.SIGINT, signal.SIGHUP])
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_exit_codes_and_names():
    assert [signals.exit_code(s) for s in signals.STOP_SIGNALS] == [143, 129, 130]
    assert signals.signal_name(signal.SIGHUP) == "SIGHUP"


# --- a second signal: a real process, since it ends the process -------------------------

SECOND_SIGNAL_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys, threading, time
    from pathlib import Path
    sys.path[:0] = [{src!r}, {tests!r}]
    import conftest  # noqa: F401  (module_utils importable)
    import ansible_runner
    from damon_fleet.cli import main

    events = json.loads(Path({events!r}).read_text())["events"]

    class Runner:
        rc = None
        status = "running"
        canceled = False

    def run_async(**kwargs):
        # ansible-playbook in a session of its own, as pexpect starts it; it does not stop
        # on cancel here, so only the second signal can end the run
        env = Path(kwargs["private_data_dir"], "env")
        env.mkdir(mode=0o700, exist_ok=True)
        (env / "extravars").write_text(json.dumps(kwargs["extravars"]))
        child = subprocess.Popen(
            ["sleep", "120"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        Path({pidfile!r}).write_text(str(child.pid))
        def play():
            for event in events:
                kwargs["event_handler"](dict(event))
            child.wait()
        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        return thread, Runner()

    ansible_runner.run_async = run_async
    sys.exit(main(sys.argv[1:]))
    """
)


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_second_signal_stops_at_once_and_kills_ansible(tmp_path, inventory):
    pidfile = tmp_path / "ansible.pid"
    script = tmp_path / "cli.py"
    script.write_text(
        SECOND_SIGNAL_SCRIPT.format(
            src=str(ROOT / "src"),
            tests=str(ROOT / "tests"),
            events=str(EVENTS / "localhost-detect-interrupted.json"),
            pidfile=str(pidfile),
        )
    )
    runs = tmp_path / "runs"
    state = tmp_path / "state"
    argv = [sys.executable, str(script), "deploy", "-i", str(inventory), "--runs-dir", str(runs)]
    argv += ["-e", f"rollout_state_dir={state}", "--no-progress-bar"]

    def defaults():
        for signum in signals.STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)

    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=defaults,
        env={**os.environ, run_cli.STATE_DIR_ENV: str(state)},
    )
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.is_file() and pidfile.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the fake ansible-playbook never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the first signal is being handled: the run is stopping
        assert proc.poll() is None  # ... and waits for ansible, which does not stop
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert took < 3
    assert "damon-fleet: SIGTERM: stopping ansible" in err
    assert (
        "damon-fleet deploy: second signal (SIGTERM): stopped at once, ansible-playbook "
        "killed, no report written" in err
    )
    assert f"a host may be mid-install or mid-reboot (its rollout record in {state}" in err
    assert "run: damon-fleet deploy --resume" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    (run_dir,) = run_cli.list_runs(runs)
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["status"], run["exit_code"], run["stopped_at_once"]) == (
        "canceled",
        143,
        "SIGTERM",
    )
    assert not (run_dir / "report.json").exists()
    assert not (run_dir / "env" / "extravars").exists()  # the extra vars may hold secrets
