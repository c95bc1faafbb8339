"""One definition per contract: where a list must be written out (module choices, role
argument specs, a series manifest's schema), it is checked here against the definition.

Layouts: damon_spec.LAYOUTS. Phases: rollout_state.PHASES. Stages and the structured
events: damon_fleet.events. The rollout's targets, canary, batches, builder and records
folder: playbooks/vars/contracts.yml, which the CLI has Ansible resolve.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import damon_sysfs
import pytest
import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import plan as damon_plan
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon import spec as damon_spec
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel import (
    install_gate as kernel_install_gate,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel import (
    series as kernel_series,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import PHASES

from damon_fleet import events as ev
from damon_fleet import report, run_cli

ROOT = Path(__file__).resolve().parents[2]
PATTERN = "all:!localhost:!builder"


def arg_spec(role: str) -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options: dict[str, Any] = spec["argument_specs"]["main"]["options"]
    return options


def test_layouts_are_damon_specs_everywhere() -> None:
    assert damon_plan.LAYOUTS is damon_spec.LAYOUTS
    assert set(damon_plan.PERF_EVENTS_DIRS) == set(damon_spec.LAYOUTS)
    assert ("auto", *damon_spec.LAYOUTS) == damon_spec.LAYOUT_CHOICES
    assert damon_sysfs.ARGUMENT_SPEC["layout"]["choices"] == list(damon_spec.LAYOUT_CHOICES)
    documented = yaml.safe_load(damon_sysfs.DOCUMENTATION)["options"]["layout"]["choices"]
    assert documented == list(damon_spec.LAYOUT_CHOICES)
    assert arg_spec("damon_perf")["damon_perf_layout"]["choices"] == list(damon_spec.LAYOUT_CHOICES)


def test_series_layouts_are_sysfs_layouts_or_their_aliases() -> None:
    aliases = kernel_install_gate.LAYOUT_ALIASES
    assert set(aliases.values()) <= set(damon_spec.LAYOUTS)
    assert set(kernel_series.LAYOUTS) <= set(damon_spec.LAYOUTS) | set(aliases)
    assert set(arg_spec("kernel_install")["kernel_install_layout"]["choices"]) == (
        {""} | set(damon_spec.LAYOUTS) | set(aliases)
    )


def test_the_report_and_the_events_use_the_records_phases() -> None:
    assert report.PHASES is PHASES
    assert not set(ev.PRE_PHASES) & set(PHASES)


def markers() -> list[tuple[Path, dict[str, Any]]]:
    """Every damon_fleet event the playbooks and roles emit (set_stats data)."""
    found = []
    files = [ROOT / "deploy.yml", *(ROOT / "playbooks").glob("*.yml")]
    files += (ROOT / "roles").glob("*/tasks/*.yml")
    for path in files:
        text = path.read_text()
        for match in re.finditer(r"damon_fleet: \{([^}]*)\}", text):
            pairs = dict(p.split(": ") for p in match.group(1).split(", "))
            found.append((path, pairs))
        for match in re.finditer(r"damon_fleet:\n\s+event: (\w+)", text):
            found.append((path, {"event": match.group(1)}))
    return found


def test_every_emitted_event_is_one_the_cli_reads() -> None:
    found = markers()
    keys = [(path, tuple(sorted(marker.items()))) for path, marker in found]
    assert sorted({k for k in keys if keys.count(k) > 1}) == []  # each is emitted once
    kinds = {m["event"] for _, m in found}
    assert kinds == set(ev.KINDS)
    for path, marker in found:
        if marker["event"] == "stage":
            assert marker["stage"] in ev.KNOWN_STAGES, path
        if marker["event"] == "phase":
            assert marker["phase"] in (*ev.PRE_PHASES, *PHASES), path
    phases = {m["phase"] for _, m in found if m["event"] == "phase"}
    # every phase of a rollout is announced (rollback's phases are recorded, not announced)
    assert phases >= {"check", "install", "reboot", "gate", "default", "fallback"}
    stages = {m["stage"] for _, m in found if m["event"] == "stage"}
    assert stages == set(ev.KNOWN_STAGES)


def test_the_target_pattern_builder_and_state_dir_are_defined_once() -> None:
    contracts = (ROOT / "playbooks" / "vars" / "contracts.yml").read_text()
    assert PATTERN.replace("builder", "' ~ damon_fleet_builder_group") in contracts
    for path in (
        ROOT / "deploy.yml",
        ROOT / "playbooks" / "rollout.yml",
        ROOT / "playbooks" / "report.yml",
        ROOT / "playbooks" / "rollback.yml",
        ROOT / "playbooks" / "benchmark.yml",
        ROOT / "playbooks" / "build.yml",
        *(ROOT / "src" / "damon_fleet").glob("*.py"),
    ):
        text = path.read_text()
        assert PATTERN not in text, path
        assert "groups['builder']" not in text, path
        assert "'/../.damon-fleet/state'" not in text, path


CANARY_INVENTORY = """\
all:
  hosts:
    localhost: {ansible_connection: local}
    web1: {}
    web2: {}
    web3: {}
    build1: {}
  children:
    canary:
      hosts:
        web3: {}
    builder:
      hosts:
        build1: {}
"""


@pytest.mark.parametrize(
    ("extravars", "limit", "rollout"),
    [
        ({}, None, ["web3", "web1", "web2"]),  # the canary group is the first batch
        ({"rollout_canary_group": "none"}, None, ["web1", "web2", "web3"]),
        ({"rollout_hosts": "web2:web1"}, None, ["web2", "web1"]),
        ({"rollout_hosts": "web*:&canary"}, None, ["web3"]),
        ({}, "web1:web2", ["web1", "web2"]),
        ({"rollout_hosts": "nothing"}, None, []),
    ],
)
def test_the_cli_takes_the_rollout_hosts_from_ansible(
    tmp_path: Path, extravars: dict[str, Any], limit: str | None, rollout: list[str]
) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(CANARY_INVENTORY)
    info = run_cli.read_inventory(inventory, limit, extravars)
    assert info.stage_hosts["rollout"] == rollout
    assert "build1" not in info.stage_hosts["rollout"]
    assert ("build1" in info.hosts) is (limit is None)


def test_the_example_fleet_starts_with_its_canary_group() -> None:
    info = run_cli.read_inventory(ROOT / "inventories" / "example" / "hosts.yml", None, {})
    assert info.stage_hosts["rollout"] == [
        "db-01.example.com",
        "db-02.example.com",
        "db-03.example.com",
    ]


# The inputs of the roles that name the project's content, its runtime state or a cache:
# role default -> the contract of playbooks/vars/contracts.yml the default takes.
ROLE_CONTRACTS = {
    ("kernel_build", "kernel_build_cache_dir"): "damon_fleet_builder_cache_root",
    ("kernel_build", "kernel_build_patches_dir"): "damon_fleet_patches_dir",
    ("lab_fleet", "lab_fleet_cache_dir"): "damon_fleet_cache_root",
    ("lab_fleet", "lab_fleet_kernel_fragment"): "damon_fleet_lab_kernel_fragment",
    ("damon_bench", "damon_bench_record_dir"): "damon_fleet_bench_dir",
    ("damon_perf", "damon_perf_bench_record_dir"): "damon_fleet_bench_dir",
}


def role_defaults(role: str) -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load(
        (ROOT / "roles" / role / "defaults" / "main.yml").read_text()
    )
    return defaults


def yaml_strings(node: Any, skip: frozenset[str] = frozenset({"description"})) -> list[str]:
    """Every string value of a YAML document (keys in *skip* left out): what Ansible
    templates, not the comments."""
    if isinstance(node, dict):
        return [s for k, v in node.items() if k not in skip for s in yaml_strings(v, skip)]
    if isinstance(node, list):
        return [s for v in node for s in yaml_strings(v, skip)]
    return [node] if isinstance(node, str) else []


def content_yaml() -> list[Path]:
    """Every YAML file of the roles and playbooks (what a play templates)."""
    files = [ROOT / "deploy.yml", *(ROOT / "playbooks").rglob("*.yml")]
    return files + sorted(p for p in (ROOT / "roles").rglob("*.yml") if "/files/" not in str(p))


def test_each_role_input_takes_its_contract_with_no_value_of_its_own() -> None:
    for (role, name), contract in ROLE_CONTRACTS.items():
        expected = "{{ " + contract + " | default('') }}"
        assert role_defaults(role)[name] == expected, (role, name)
        assert arg_spec(role)[name]["default"] == expected, (role, name)


@pytest.mark.parametrize(
    "spelling",
    [
        r"\.cache/damon-fleet",  # the cache roots
        r"DAMON_FLEET_CACHE",
        r"/bench\b",  # the bench's records
        r"\.damon-fleet",  # the runtime state
        r"kernel-patches",  # the project's content
        r"lab-kernel\.config",
    ],
)
def test_the_cache_state_and_content_paths_are_defined_once(spelling: str) -> None:
    """Each path is spelled once in contracts.yml and in no role or play (what they
    template: comments, descriptions, task names and messages aside); the caches in no
    module of the CLI or of the test tiers' harness either."""
    words = frozenset({"description", "name", "msg", "fail_msg"})
    found = []
    for path in content_yaml():
        for text in yaml_strings(yaml.safe_load(path.read_text()), words):
            found += [path.relative_to(ROOT).as_posix()] * len(re.findall(spelling, text))
    assert found == ["playbooks/vars/contracts.yml"], spelling
    if "cache" in spelling.lower():  # the CLI and the test tiers' harness ask Ansible
        harness = [ROOT / "tests" / "labvm.py", ROOT / "tests" / "integration" / "git_base.py"]
        for path in [*(ROOT / "src" / "damon_fleet").glob("*.py"), *harness]:
            assert not re.search(spelling.replace("/", r"[/\"', ]+"), path.read_text()), path


# Paths out of a role's own folder that remain (variable of each): the applier's
# module_utils, shipped from the collection's plugins (changed with the way the applier
# ships), and the lab_profile role's index of profiles, a sibling role of the collection.
REACHING_OUT = {
    ("roles/damon_perf/vars/main.yml", "__damon_perf_module_utils_dir"),
    ("roles/lab_fleet/vars/main.yml", "__lab_fleet_known_profiles"),
}


def test_no_role_or_play_reaches_into_the_repository_by_a_relative_path() -> None:
    reaching = set()
    contracts = ROOT / "playbooks" / "vars" / "contracts.yml"  # where the content is found
    for path in (p for p in content_yaml() if p != contracts):
        data = yaml.safe_load(path.read_text())
        for item in data if isinstance(data, list) else [data]:
            for key, value in (item or {}).items():
                for text in yaml_strings(value, frozenset()):
                    if re.search(r"(role_path|playbook_dir)\b.*\.\./", text, flags=re.S):
                        reaching.add((path.relative_to(ROOT).as_posix(), key))
    assert reaching == REACHING_OUT


def test_the_contracts_resolve_to_the_project_and_its_caches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from damon_fleet.targets import controller_value

    monkeypatch.delenv("DAMON_FLEET_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert controller_value("damon_fleet_cache_root") == f"{tmp_path}/home/.cache/damon-fleet"
    monkeypatch.setenv("DAMON_FLEET_CACHE", str(tmp_path / "cache"))
    assert controller_value("damon_fleet_cache_root") == str(tmp_path / "cache")
    assert controller_value("damon_fleet_content_dir") == str(ROOT)
    assert controller_value("damon_fleet_patches_dir") == str(ROOT / "kernel-patches")
    fragment = controller_value("damon_fleet_lab_kernel_fragment")
    assert Path(fragment) == ROOT / "kernel-patches" / "lab-kernel.config"
    assert Path(fragment).is_file()
    state = controller_value("damon_fleet_state_dir")
    assert controller_value("damon_fleet_bench_dir") == f"{state}/bench"
    given = {"rollout_state_dir": str(tmp_path / "records")}
    assert controller_value("damon_fleet_bench_dir", given) == f"{tmp_path}/records/bench"
    with pytest.raises(ValueError, match=r"^damon_fleet_nothing is not a contract of "):
        controller_value("damon_fleet_nothing")


def test_the_runtime_dir_is_the_clis_state_root_in_every_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The plays' runtime state (damon_fleet_runtime_dir) is $DAMON_FLEET_HOME, else the
    folder beside ansible.cfg; the CLI exports its own state root to every run it starts,
    so the two never differ, not even for an installed collection (whose ansible.cfg is in
    site-packages)."""
    from damon_fleet import _paths
    from damon_fleet.targets import controller_value

    monkeypatch.delenv("DAMON_FLEET_HOME", raising=False)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    assert controller_value("damon_fleet_runtime_dir") == str(ROOT / ".damon-fleet")
    monkeypatch.setenv("DAMON_FLEET_HOME", str(tmp_path / "home"))
    assert controller_value("damon_fleet_runtime_dir") == str(tmp_path / "home")
    assert controller_value("damon_fleet_state_dir") == f"{tmp_path}/home/state"
    assert controller_value("damon_fleet_packages_root") == f"{tmp_path}/home/packages"
    monkeypatch.delenv("DAMON_FLEET_HOME")
    # an installed CLI keeps its state in the working directory's .damon-fleet
    monkeypatch.setattr(_paths, "STATE_ROOT", tmp_path / "work" / ".damon-fleet")
    for name, value in _paths.runner_envvars().items():
        monkeypatch.setenv(name, value)
    assert controller_value("damon_fleet_runtime_dir") == str(_paths.STATE_ROOT)


@pytest.mark.parametrize(
    ("cache_env", "expected"), [(None, "/home/b/.cache/damon-fleet"), ("/srv/c", "/srv/c")]
)
def test_the_role_defaults_resolve_to_the_contract_values(
    monkeypatch: pytest.MonkeyPatch, cache_env: str | None, expected: str
) -> None:
    """Each role default, templated as a play that loads contracts.yml templates it (the
    builder's facts giving its HOME), is the contract's value; without the contracts it is
    empty, which the role refuses."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    from damon_fleet.targets import contract_values

    if cache_env is None:
        monkeypatch.delenv("DAMON_FLEET_CACHE", raising=False)
    else:
        monkeypatch.setenv("DAMON_FLEET_CACHE", cache_env)
    loader = DataLoader()
    loader.set_basedir(str(ROOT / "playbooks"))
    values = contract_values(InventoryManager(loader, sources=[]), loader, {})
    values["ansible_facts"] = {"env": {"HOME": "/home/b"}}
    templar = Templar(loader=loader, variables=values)
    bare = Templar(loader=loader, variables={})
    for (role, name), contract in ROLE_CONTRACTS.items():
        default = trust_as_template(role_defaults(role)[name])
        assert templar.template(default) == templar.template(values[contract]), name
        assert bare.template(default) == "", name
    assert templar.template(values["damon_fleet_builder_cache_root"]) == expected
