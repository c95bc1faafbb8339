"""The hosts a rollout targets, as Ansible resolves them for the playbooks.

``playbooks/vars/contracts.yml`` defines the rollout's host pattern, its canary group and
its batches once; the plays load it with ``vars_files``. :func:`rollout_hosts` has
Ansible itself (its loader, variable manager and templating, with the run's inventory
and extra vars) resolve ``damon_fleet_rollout_hosts`` from that file, exactly as it does
for a play's ``hosts:``; nothing here knows the pattern.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from typing import Any

from damon_fleet._paths import CONTENT_ROOT

CONTRACTS = CONTENT_ROOT / "playbooks" / "vars" / "contracts.yml"


class TargetsError(ValueError):
    """The contracts could not be resolved (a bad extra var such as rollout_hosts)."""


def contract_values(manager: Any, loader: Any, extravars: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a play that loads contracts.yml sees on the controller, with
    *extravars* given as ``-e`` gives them."""
    from ansible.playbook.play import Play
    from ansible.plugins.loader import init_plugin_loader
    from ansible.vars.manager import VariableManager

    with warnings.catch_warnings():  # "already configured" from a second call
        warnings.simplefilter("ignore")
        init_plugin_loader([])  # as ansible-playbook does before templating (lookups)
    variables = VariableManager(loader=loader, inventory=manager)
    variables._extra_vars = dict(extravars)  # what -e hands ansible-playbook
    play = Play.load(
        {"hosts": "localhost", "gather_facts": False, "vars_files": [str(CONTRACTS)]},
        variable_manager=variables,
        loader=loader,
    )
    values: dict[str, Any] = variables.get_vars(play=play)
    return values


def rollout_hosts(manager: Any, loader: Any, extravars: Mapping[str, Any]) -> list[str]:
    """The rollout's hosts in batch order (canaries first), before any ``--limit``."""
    from ansible.errors import AnsibleError
    from ansible.template import Templar

    values = contract_values(manager, loader, extravars)
    try:
        resolved = Templar(loader=loader, variables=values).template(
            values["damon_fleet_rollout_hosts"]
        )
    except AnsibleError as exc:
        raise TargetsError(" ".join(str(exc).split())[:300]) from exc
    if not isinstance(resolved, list):
        raise TargetsError(f"damon_fleet_rollout_hosts is {type(resolved).__name__}, not a list")
    return [str(host) for host in resolved]


def controller_value(name: str, extravars: Mapping[str, Any] | None = None) -> Any:
    """The contract *name* of contracts.yml resolved on the controller (an inventory of
    localhost alone), such as ``damon_fleet_cache_root``: what a play that loads the file
    sees for it."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    with contextlib.redirect_stderr(io.StringIO()):  # "only implicit localhost"
        loader = DataLoader()
        loader.set_basedir(str(CONTRACTS.parent.parent))  # playbook_dir of a play in playbooks/
        manager = InventoryManager(loader, sources=[])
        values = contract_values(manager, loader, extravars or {})
    if name not in values:
        raise TargetsError(f"{name} is not a contract of {CONTRACTS}")
    try:
        return Templar(loader=loader, variables=values).template(values[name])
    except AnsibleError as exc:
        raise TargetsError(" ".join(str(exc).split())[:300]) from exc
