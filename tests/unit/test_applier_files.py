"""The boot-time applier runs with exactly the module_utils files the damon_perf role ships.

``damon-fleet-apply`` imports ``damon_apply`` from a private ``ansible.module_utils`` whose
only directory holds the files listed in ``roles/damon_perf/vars/main.yml``
(``__damon_perf_module_utils``). A module_utils file that the applier imports but the role
does not ship breaks the unit at boot (``ModuleNotFoundError``) while every in-repo test
passes, because the repository's ``plugins/module_utils`` has every file. These tests
render the real script template, install only the shipped files and run it.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "damon_perf"
MODULE_UTILS = ROOT / "plugins" / "module_utils"
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from bench_apply_vm import render_applier  # noqa: E402  (the VM bench renders it the same way)


def shipped() -> list[str]:
    data = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    return list(data["__damon_perf_module_utils"])


def imported_module_utils(name: str) -> set[str]:
    """Names of ``ansible.module_utils.<x>`` modules that module_utils file *name* imports."""
    tree = ast.parse((MODULE_UTILS / f"{name}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "ansible.module_utils":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("ansible.module_utils."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ansible.module_utils."):
                    found.add(alias.name.split(".")[2])
    return found


def closure(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imported_module_utils(name))
    return seen


def test_the_role_ships_exactly_the_applier_import_closure():
    assert sorted(f"{name}.py" for name in closure("damon_apply")) == sorted(shipped())


def test_the_rendered_applier_runs_with_only_the_shipped_files(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in shipped():
        shutil.copy2(MODULE_UTILS / name, lib / name)
    script = tmp_path / "damon-fleet-apply"
    script.write_text(render_applier(str(lib)), encoding="utf-8")
    config = tmp_path / "damon.yml"
    config.write_text("damon_perf_kdamonds: []\n", encoding="utf-8")
    # -I: no user site, no PYTHONPATH, the script's folder only: nothing but LIB_DIR serves
    # ansible.module_utils. --check on an empty tree plans without writing.
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(script),
            "--config",
            str(config),
            "--check",
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ModuleNotFoundError" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip(), proc.stderr
    json.loads(proc.stdout)
