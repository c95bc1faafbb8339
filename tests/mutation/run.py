#!/usr/bin/env python3
"""Mutation testing of the pure modules with mutmut, in a throw-away copy of the checkout.

    python tests/mutation/run.py                     every module in MODULES
    python tests/mutation/run.py rollout_state ...   only these
    python tests/mutation/run.py --list              the modules and their files

Prints, per module, the number of mutants, how many the unit tier kills and the kill rate;
lists every survivor that ``tests/mutation/accepted-<module>.txt`` does not accept, with its diff;
exits 1 when a module's kill rate (accepted survivors counted as killed) is under
``GOAL``, 2 on bad arguments. Each module runs in its own copy against its own tests
(``TESTS``). Nothing is written into the checkout: mutmut works in a temporary folder
(``--keep DIR`` keeps the copies in ``DIR/<module>`` for ``mutmut show``/``browse``).

How the copy is laid out: modules import shared code as
``ansible_collections.damon_fleet.fleet.plugins.module_utils.<package>.<name>``. mutmut
names a mutant after the file's path (``src/`` stripped), so the module_utils file under
test is also placed at ``src/ansible_collections/damon_fleet/fleet/plugins/module_utils/
<package>/<name>.py``, and the pytest plugin ``mutation_paths`` puts that folder first on
the package's ``__path__``; the tests then import the mutated file under the name mutmut
expects.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOAL = 0.85

# name -> file (relative to the checkout). The mutant keys start with the module path.
MODULES: dict[str, str] = {
    "perf_mem_vv": "plugins/module_utils/perf/mem_vv.py",
    "perf_pmu": "plugins/module_utils/perf/pmu.py",
    "damon_spec": "plugins/module_utils/damon/spec.py",
    "damon_plan": "plugins/module_utils/damon/plan.py",
    "damon_adapters": "plugins/module_utils/damon/adapters.py",
    "damon_engine": "plugins/module_utils/damon/engine.py",
    "damon_applier": "plugins/module_utils/damon/applier.py",
    "rollout_state": "plugins/module_utils/kernel/rollout_state.py",
    "kernel_install_gate": "plugins/module_utils/kernel/install_gate.py",
    "report": "src/damon_fleet/report.py",
}
# The tests that judge each module's mutants (globs under tests/unit): the module's own
# tests. A mutant they miss may still be caught elsewhere in the unit tier, so a rate is a
# lower bound; the whole tier per mutant costs hours on 2 cores.
DAMON_APPLY_TESTS = (
    "test_damon_apply*.py",
    "test_damon_sysfs_module.py",
    "test_perf_evidence.py",
    "test_hostile_damon.py",
)
TESTS: dict[str, tuple[str, ...]] = {
    "perf_mem_vv": ("test_perf_mem_vv*.py", "test_hostile_parser.py"),
    "perf_pmu": ("test_perf_pmu*.py",),
    "damon_spec": ("test_damon_spec*.py", "test_hostile_damon.py"),
    "damon_plan": ("test_damon_plan*.py", "test_damon_kernel_facts.py"),
    "damon_adapters": DAMON_APPLY_TESTS,
    "damon_engine": DAMON_APPLY_TESTS,
    "damon_applier": DAMON_APPLY_TESTS,
    "rollout_state": ("test_rollout_state*.py",),
    "kernel_install_gate": ("test_kernel_install_gate*.py",),
    "report": ("test_report*.py",),
}
# Accepted survivors: tests/mutation/accepted-<module>.txt, one file per module.
ACCEPTED_DIR = Path(__file__).parent
# Statuses mutmut reports; a timeout means the tests noticed (an endless loop).
KILLED = {"killed", "timeout"}
# A mutant mutmut did not get to: the run is incomplete, and no rate is printed for it.
UNCHECKED = {"not checked"}
# Survivors shown with their diff (``mutmut show`` takes about a second each).
SHOW = 60


# Where the collection's files sit in the copy's src/ (mutmut's source path).
COLLECTION_SRC = "src/ansible_collections/damon_fleet/fleet/"


def workspace_path(name: str) -> str:
    path = MODULES[name]
    if path.startswith("plugins/module_utils/"):
        return COLLECTION_SRC + path
    return path


def key_prefix(name: str) -> str:
    return workspace_path(name)[len("src/") : -len(".py")].replace("/", ".") + "."


def read_accepted() -> dict[str, str]:
    """``mutant-name  reason`` lines of every ``accepted-*.txt``; ``#`` starts a comment."""
    accepted: dict[str, str] = {}
    lines = [
        line
        for path in sorted(ACCEPTED_DIR.glob("accepted-*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, reason = line.partition(" ")
            accepted[name] = reason.strip()
    return accepted


def copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def write_config(ws: Path, name: str) -> None:
    target = ws / workspace_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / MODULES[name], target)
    tests = sorted(
        str(path.relative_to(ROOT))
        for pattern in TESTS[name]
        for path in (ROOT / "tests" / "unit").glob(pattern)
    )
    copied = ["src/", "plugins/", "roles/", "playbooks/", "kernel-patches/", "inventories/"]
    also = ", ".join(f'"{p}"' for p in [*copied, "ansible.cfg", "deploy.yml"])
    section = f"""
[tool.mutmut]
source_paths = ["src/"]
only_mutate = ["{workspace_path(name)}"]
also_copy = [{also}]
pytest_add_cli_args = ["-p", "mutation_paths", "-p", "no:cacheprovider", "-x", "-q"]
pytest_add_cli_args_test_selection = [{", ".join(f'"{t}"' for t in tests)}]
use_git_change_detection = false
"""
    pyproject = ws / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8") + section, encoding="utf-8")


def mutmut(ws: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ws / "tests" / "mutation"), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.pop("MUTANT_UNDER_TEST", None)
    exe = shutil.which("mutmut") or str(Path(sys.executable).with_name("mutmut"))
    return subprocess.run(
        [exe, *args],
        cwd=ws,
        env=env,
        text=True,
        check=False,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
    )


RESULT = re.compile(r"\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+?)\s*")


def results(ws: Path) -> dict[str, str]:
    out = mutmut(ws, "results", "--all", "true", capture=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        match = RESULT.fullmatch(line)
        if match:
            found[match["name"]] = match["status"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", metavar="MODULE")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.list:
        for name, path in MODULES.items():
            print(f"{name}\t{path}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        print(
            f"mutation: unknown module {', '.join(unknown)} (accepted: {', '.join(MODULES)})",
            file=sys.stderr,
        )
        return 2
    names = args.modules or list(MODULES)
    base = args.keep
    cleanup = None
    if base is None:
        cleanup = tempfile.TemporaryDirectory(prefix="damon-fleet-mutation-")
        base = Path(cleanup.name)
    try:
        start = time.monotonic()
        found: dict[str, tuple[Path, str]] = {}  # mutant -> (its workspace, status)
        for name in names:
            ws = base / name
            if ws.exists():
                shutil.rmtree(ws)
            ws.mkdir(parents=True)
            copy_checkout(ws)
            write_config(ws, name)
            run = mutmut(ws, "run", "--max-children", str(max(1, args.jobs)), capture=True)
            mine = results(ws)
            if not mine:
                print(run.stdout[-3000:], run.stderr[-3000:], sep="\n", file=sys.stderr)
                print(f"mutation: mutmut reported no mutant of {name}", file=sys.stderr)
                return 1
            found.update({key: (ws, status) for key, status in mine.items()})
            print(f"{name}: {len(mine)} mutants in {time.monotonic() - start:.0f} s", flush=True)
        return report(names, found, time.monotonic() - start)
    finally:
        if cleanup is not None:
            cleanup.cleanup()


def report(names: list[str], found: dict[str, tuple[Path, str]], seconds: float) -> int:
    accepted = read_accepted()
    status = {key: value for key, (_ws, value) in found.items()}
    failing = []
    print(f"{'module':<22}{'mutants':>8}{'killed':>8}{'rate':>8}{'accepted':>10}{'with':>8}")
    for name in names:
        mine = {k: v for k, v in status.items() if k.startswith(key_prefix(name))}
        killed = sum(1 for v in mine.values() if v in KILLED)
        survivors = sorted(k for k, v in mine.items() if v not in KILLED)
        ok = [k for k in survivors if k in accepted]
        total = len(mine) or 1
        rate, with_accepted = killed / total, (killed + len(ok)) / total
        print(f"{name:<22}{len(mine):>8}{killed:>8}{rate:>8.1%}{len(ok):>10}{with_accepted:>8.1%}")
        if with_accepted < GOAL:
            failing.append(name)
    print(f"time: {seconds:.0f} s; goal: {GOAL:.0%} per module (accepted survivors counted)")
    survivors = sorted(k for k, v in status.items() if v not in KILLED and k not in accepted)
    if survivors:
        print(f"\n{len(survivors)} survivors not accepted (tests/mutation/accepted-*.txt):")
        for name in survivors[:SHOW]:
            diff = mutmut(found[name][0], "show", name, capture=True).stdout
            changed = [
                line
                for line in diff.splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            ]
            print(f"  {name} ({status[name]}): {' | '.join(changed)[:200]}")
        for name in survivors[SHOW:]:
            print(f"  {name} ({status[name]})")
    used = [k for k in accepted if k in status]
    if used:
        print(f"\naccepted survivors ({len(used)}):")
        for name in used:
            print(f"  {name}: {accepted[name]}")
    unchecked = sorted(k for k, v in status.items() if v in UNCHECKED)
    if unchecked:
        print(
            f"\nmutation: the run is incomplete, {len(unchecked)} mutants not checked",
            file=sys.stderr,
        )
        return 1
    if failing:
        print(f"\nunder {GOAL:.0%}: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
