"""The boot-time applier runs with exactly the module_utils files the damon_perf role ships.

``damon-fleet-apply`` imports ``damon/applier.py`` from a private
``ansible_collections.damon_fleet.fleet.plugins.module_utils`` package whose only directory
holds the files listed in ``roles/damon_perf/vars/main.yml`` (``__damon_perf_module_utils``,
laid out as in ``plugins/module_utils``). A module_utils file that the applier imports but
the role does not ship breaks the unit at boot (``ModuleNotFoundError``) while every
in-repo test passes, because the repository's ``plugins/module_utils`` has every file.
These tests render the real script template, install only the shipped files as the role
does and run it with a Python that cannot import Ansible.
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
PACKAGE = "ansible_collections.damon_fleet.fleet.plugins.module_utils"
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from bench_apply_vm import render_applier  # noqa: E402  (the VM bench renders it the same way)


def role_vars() -> dict[str, list[str]]:
    data = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    return {
        "files": list(data["__damon_perf_module_utils"]),
        "packages": list(data["__damon_perf_module_utils_packages"]),
    }


def imported_module_utils(rel: str) -> set[str]:
    """Files (``<package>/<name>.py``) of the module_utils that file *rel* imports."""
    tree = ast.parse((MODULE_UTILS / rel).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        for module in modules:
            if module.startswith(f"{PACKAGE}."):
                rest = module[len(PACKAGE) + 1 :].replace(".", "/")
                if (MODULE_UTILS / f"{rest}.py").is_file():
                    found.add(f"{rest}.py")
    return found


def closure(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        todo.extend(imported_module_utils(rel))
    return seen


def test_the_role_ships_exactly_the_applier_import_closure():
    files = closure("damon/applier.py")
    packages = sorted({rel.split("/")[0] for rel in files})
    expected = files | {f"{package}/__init__.py" for package in packages}
    assert sorted(role_vars()["files"]) == sorted(expected)
    assert sorted(role_vars()["packages"]) == packages


def test_the_shipped_packages_are_plain_packages():
    for package in role_vars()["packages"]:
        assert (MODULE_UTILS / package / "__init__.py").read_text(encoding="utf-8") == ""


def test_the_rendered_applier_runs_with_only_the_shipped_files(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for package in role_vars()["packages"]:
        (lib / package).mkdir()
    for rel in role_vars()["files"]:
        shutil.copy2(MODULE_UTILS / rel, lib / rel)
    script = tmp_path / "damon-fleet-apply"
    script.write_text(render_applier(str(lib)), encoding="utf-8")
    config = tmp_path / "damon.yml"
    config.write_text(json.dumps({"damon_perf_kdamonds": []}) + "\n", encoding="utf-8")
    admin = tmp_path / "admin"  # an idle DAMON sysfs tree: no kdamond
    (admin / "kdamonds").mkdir(parents=True)
    (admin / "kdamonds" / "nr_kdamonds").write_text("0\n", encoding="utf-8")
    # -I: no user site, no PYTHONPATH, the script's folder only; -S: no site-packages, so
    # neither Ansible nor an installed collection is importable (as on a host without
    # Ansible) and nothing but LIB_DIR serves the module_utils. --check plans without
    # writing.
    python = [sys.executable, "-I", "-S"]
    probe = subprocess.run(
        [*python, "-c", "import ansible"], capture_output=True, text=True, timeout=60
    )
    assert "ModuleNotFoundError: No module named 'ansible'" in probe.stderr
    proc = subprocess.run(
        [*python, str(script), "--config", str(config), "--check", "--root", str(admin)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ModuleNotFoundError" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is False
    help_proc = subprocess.run(
        [*python, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_proc.returncode == 0, help_proc.stderr
    assert help_proc.stdout.startswith("usage: damon-fleet-apply [-h] --config CONFIG")


def test_the_applier_fails_naming_a_missing_shipped_file(tmp_path):
    """The test above would notice a missing file: without damon/plan.py the applier
    stops with the import error."""
    lib = tmp_path / "lib"
    for package in role_vars()["packages"]:
        (lib / package).mkdir(parents=True)
    for rel in role_vars()["files"]:
        if rel != "damon/plan.py":
            shutil.copy2(MODULE_UTILS / rel, lib / rel)
    script = tmp_path / "damon-fleet-apply"
    script.write_text(render_applier(str(lib)), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert (
        f"ModuleNotFoundError: No module named '{PACKAGE}.damon.plan'"
        in proc.stderr.splitlines()[-1]
    )
