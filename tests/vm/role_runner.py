"""Run a playbook against a lab VM and collect every task result (VM tier helper).

Each run writes its variables as JSON, runs ``ansible-playbook`` with the
``damon_results`` callback (tests/vm/callback_plugins) and returns a :class:`RoleRun`.
Shared by the VM tests that apply the damon_perf role (test_damon_perf_vm.py on the
mainline lab kernel, test_perf_effective_vm.py on the lab series kernel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labvm import LabVm

VM_DIR = Path(__file__).resolve().parent
REPO = VM_DIR.parents[1]
CALLBACKS = VM_DIR / "callback_plugins"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

ROLE_RUNS: list[tuple[str, float]] = []  # (label, seconds) of each ansible-playbook run


@dataclass
class RoleRun:
    """One ansible-playbook run: exit code, output and every task result."""

    rc: int
    stdout: str
    stderr: str
    tasks: list[dict[str, Any]]
    stats: dict[str, dict[str, int]]
    seconds: float

    def results(self, name: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["task"].endswith(name)]

    def result(self, name: str) -> dict[str, Any]:
        found = self.results(name)
        assert found, f"no result for task {name!r}\n{self.output()}"
        assert len(found) == 1, f"{len(found)} results for task {name!r}"
        result: dict[str, Any] = found[0]["result"]
        return result

    def failed(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["status"] == "failed"]

    def changed_tasks(self) -> list[str]:
        return [t["task"] for t in self.tasks if t["result"].get("changed")]

    @property
    def recap(self) -> dict[str, int]:
        return self.stats.get("labvm", {})

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-3000:]}"


def role_runner(vm: LabVm, workdir: Path, playbook: Path) -> Callable[..., RoleRun]:
    """A function that runs *playbook* on *vm* with the given variables and extra args."""
    inventory = vm.inventory(workdir / "inventory.yml")
    counter = iter(range(1000))

    def run(variables: dict[str, Any], *args: str) -> RoleRun:
        n = next(counter)
        vars_file = workdir / f"vars-{n}.json"
        vars_file.write_text(json.dumps(variables, indent=1))
        results_file = workdir / f"results-{n}.json"
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED="damon_results",
            DAMON_RESULTS_FILE=str(results_file),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        )
        cmd = [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(inventory),
            "-e",
            f"@{vars_file}",
            str(playbook),
            *args,
        ]
        started = time.monotonic()
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        seconds = time.monotonic() - started
        (workdir / f"output-{n}.txt").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        try:
            data = json.loads(results_file.read_text())
        except (OSError, ValueError):
            data = {"tasks": [], "stats": {}}
        label = f"run {n} {' '.join(args)}".strip() + f" (rc {proc.returncode})"
        ROLE_RUNS.append((label, seconds))
        tasks, stats = data["tasks"], data["stats"]
        return RoleRun(proc.returncode, proc.stdout, proc.stderr, tasks, stats, seconds)

    return run
