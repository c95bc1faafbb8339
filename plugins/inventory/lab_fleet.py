# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory plugin: the lab fleet of QEMU machines, read from the lab state directory."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: lab_fleet
short_description: The lab fleet of QEMU machines, read from the lab state directory
version_added: "0.1.0"
description:
  - "The default inventory of damon-fleet (C(inventories/lab/hosts.yml) holds
    C(plugin: lab_fleet)). The lab_fleet role (C(damon-fleet lab up)) writes the running
    fleet into its state directory as C(<state_dir>/hosts.yml), a YAML inventory; this
    plugin reads it with Ansible's own YAML inventory plugin. The tracked files of the
    checkout never change."
  - When that file is missing or names no host (before the first C(lab up), after
    C(lab down)), the fleet is this machine alone - C(localhost) with a local
    connection, this controller's Python and no privilege escalation - so C(deploy.yml)
    detects perf on it and rolls out nothing.
  - Sets O(state_dir), resolved, as the variable C(lab_fleet_state_dir) of the group
    C(all), so the lab_fleet role and this inventory agree on one state directory.
author:
  - damon-fleet contributors (@damon-fleet)
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [lab_fleet, damon_fleet.fleet.lab_fleet]
  state_dir:
    description:
      - The lab state directory (one folder per VM, C(fleet.json), C(hosts.yml)).
      - Default, without the environment variable - C(.damon-fleet/lab) two levels above
        the folder of this inventory source, that is the checkout's own when the source is
        C(inventories/lab/hosts.yml).
    type: path
    env:
      - name: DAMON_FLEET_LAB_STATE
"""

EXAMPLES = r"""
# inventories/lab/hosts.yml is "plugin: lab_fleet" alone. A private lab (as the VM tests
# keep one) names its own state directory:
plugin: lab_fleet
state_dir: /tmp/my-lab/state
"""

import os
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseFileInventoryPlugin
from ansible.plugins.loader import inventory_loader

try:  # ansible-core 2.19+: values an inventory plugin sets are not templates unless trusted
    from ansible.template import trust_as_template
except ImportError:  # older ansible-core trusts them as they are

    def trust_as_template(value: Any) -> Any:
        return value


# The file the lab_fleet role writes into its state directory (lab_fleet_inventory_path).
HOSTS_FILE = "hosts.yml"
# This machine when no lab VM runs (as the tracked inventory had it before the lab).
LOCALHOST_VARS = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    # Runs as the invoking user; run deploy.yml as root so perf may sample.
    "ansible_become": False,
}


class InventoryModule(BaseFileInventoryPlugin):  # type: ignore[misc]
    """The lab fleet of the state directory, or localhost when it has no host."""

    NAME = "damon_fleet.fleet.lab_fleet"

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and path.endswith((".yml", ".yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        configured = self.get_option("state_dir")
        if configured:
            state_dir = os.path.realpath(os.path.expanduser(str(configured)))
        else:
            source_dir = os.path.dirname(os.path.abspath(path))
            state_dir = os.path.realpath(
                os.path.join(source_dir, "..", "..", ".damon-fleet", "lab")
            )
        hosts_file = os.path.join(state_dir, HOSTS_FILE)
        before = set(inventory.hosts)
        if os.path.isfile(hosts_file):
            # By its short name too: outside ansible's own commands (ansible-runner, tests)
            # the collection loader that resolves ansible.builtin.* may not be installed.
            try:
                yaml_plugin = inventory_loader.get("ansible.builtin.yaml")
            except ImportError:  # no collection loader in this process
                yaml_plugin = None
            yaml_plugin = yaml_plugin or inventory_loader.get("yaml")
            if yaml_plugin is None:  # pragma: no cover - part of ansible-core
                raise AnsibleParserError("lab_fleet: the ansible.builtin.yaml plugin is missing")
            try:
                yaml_plugin.parse(inventory, loader, hosts_file, cache=False)
            except AnsibleParserError as exc:
                raise AnsibleParserError(
                    f"lab_fleet: {hosts_file} (written by the lab_fleet role) is not a YAML "
                    f"inventory: {exc}"
                ) from exc
        if not set(inventory.hosts) - before:
            inventory.add_host("localhost")
            for key, value in LOCALHOST_VARS.items():
                trusted = trust_as_template(value) if isinstance(value, str) else value
                inventory.set_variable("localhost", key, trusted)
        inventory.set_variable("all", "lab_fleet_state_dir", state_dir)
