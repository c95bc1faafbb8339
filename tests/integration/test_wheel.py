"""``pip install`` of the wheel in a fresh virtual environment gives a working
``damon-fleet``, run from a folder outside any checkout.

The wheel is built from a copy of this working tree in tmp_path (building writes
``build/`` and ``*.egg-info`` beside the sources, never into the checkout), installed with
its dependencies from the package index into a new virtual environment, and run with no
trace of the checkout in its environment (no ANSIBLE_CONFIG, no PYTHONPATH): the command
must find the Ansible collection the wheel installs
(``site-packages/ansible_collections/damon_fleet/fleet``) and run its playbooks, roles,
modules and module_utils.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import parse, summarize

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "tests" / "fixtures" / "perf-mem-logs" / "rfc-v3-cover-letter-example-PARTIAL.log"
NOT_SHIPPED = (
    ".git",
    ".venv",
    ".damon-fleet",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
    "build",
    "dist",
    "*.egg-info",
    "tests",
)
LOCALHOST = """\
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


@dataclass
class Installed:
    venv: Path
    elsewhere: Path

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """*argv* with the virtual environment's bin first on PATH, from outside the checkout."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "DAMON_FLEET_")) and k not in ("PYTHONPATH",)
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        env["ANSIBLE_NOCOLOR"] = "1"
        return subprocess.run(
            [str(self.venv / "bin" / argv[0]), *argv[1:]],
            cwd=self.elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SHIPPED), symlinks=True)
    dist = base / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("damon_fleet-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(venv, elsewhere)


def test_help(installed: Installed) -> None:
    proc = installed.run("damon-fleet", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: damon-fleet ")
    assert proc.stderr == ""


def test_the_content_is_the_installed_collection(installed: Installed) -> None:
    proc = installed.run(
        "python",
        "-c",
        "import json, damon_fleet._paths as p; "
        "print(json.dumps([str(p.CONTENT_ROOT), p.IS_CHECKOUT, str(p.STATE_ROOT)]))",
    )
    assert proc.returncode == 0, proc.stderr
    content, is_checkout, state = json.loads(proc.stdout)
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert content == str(site / "ansible_collections" / "damon_fleet" / "fleet")
    assert is_checkout is False
    assert state == str(installed.elsewhere / ".damon-fleet")
    for shipped in ("galaxy.yml", "ansible.cfg", "deploy.yml", "playbooks/detect.yml"):
        assert (Path(content) / shipped).is_file(), shipped
    assert (Path(content) / "plugins" / "inventory" / "lab_fleet.py").is_file()
    assert not (Path(content) / "tests").exists()
    for package in ("perf", "damon", "kernel", "lab", "shared"):
        assert (Path(content) / "plugins" / "module_utils" / package / "__init__.py").is_file()


def test_the_module_utils_import_from_the_installed_collection(installed: Installed) -> None:
    proc = installed.run(
        "python",
        "-c",
        "import ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.applier as m; "
        "print(m.__file__)",
    )
    assert proc.returncode == 0, proc.stderr
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    collection = site / "ansible_collections" / "damon_fleet" / "fleet"
    assert proc.stdout.strip() == str(collection / "plugins/module_utils/damon/applier.py")


def test_ansible_finds_the_collection(installed: Installed) -> None:
    proc = installed.run("ansible-doc", "damon_fleet.fleet.perf_mem_facts")
    assert proc.returncode == 0, proc.stderr
    assert "damon_fleet.fleet.perf_mem_facts" in proc.stdout


def test_perf_parse_answers_as_the_checkout(installed: Installed) -> None:
    proc = installed.run("damon-fleet", "perf", "parse", str(LOG))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(
        json.dumps(summarize(parse(LOG.read_bytes().decode("utf-8", errors="replace")), "loads"))
    )


def test_detect_runs_the_installed_playbooks(installed: Installed) -> None:
    inventory = installed.elsewhere / "hosts.yml"
    inventory.write_text(LOCALHOST)
    runs = installed.elsewhere / "runs"
    proc = installed.run(
        "damon-fleet", "detect", "-i", str(inventory), "--runs-dir", str(runs), "--no-progress-bar"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = runs.iterdir()
    envvars = json.loads((run / "env" / "envvars").read_text())
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    collection = site / "ansible_collections" / "damon_fleet" / "fleet"
    assert envvars["ANSIBLE_CONFIG"] == str(collection / "ansible.cfg")
    report = json.loads((run / "report.json").read_text())
    (host,) = report["hosts"]
    assert (host["host"], host["outcome"]) == ("localhost", "done")
    assert host["perf"]["source"] == "detected"
    assert host["perf"]["classification"] in ("pebs", "ibs", "spe", "none")
