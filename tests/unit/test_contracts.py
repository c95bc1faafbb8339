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
