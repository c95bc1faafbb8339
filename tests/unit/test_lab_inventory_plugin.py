"""The lab_fleet inventory plugin (plugins/inventory/lab_fleet.py), in process with
Ansible's own InventoryManager, over a lab state directory in tmp_path holding what the
lab_fleet role's template writes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from damon_fleet._paths import CONTENT_ROOT

TEMPLATE = CONTENT_ROOT / "roles" / "lab_fleet" / "templates" / "hosts.yml.j2"
DEFAULT_SOURCE = CONTENT_ROOT / "inventories" / "lab" / "hosts.yml"
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/s/known hosts"]


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch):
    monkeypatch.delenv("DAMON_FLEET_LAB_STATE", raising=False)
    inventory_loader.add_directory(str(CONTENT_ROOT / "plugins" / "inventory"))


def render_role_inventory(hosts: list[dict[str, object]]) -> str:
    """hosts.yml as roles/lab_fleet/templates/hosts.yml.j2 renders it."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    env.filters["quote"] = shlex.quote
    return env.from_string(TEMPLATE.read_text()).render(
        lab_fleet_group="lab",
        __lab_fleet_hosts=hosts,
        __lab_fleet_profiles_of_hosts={h["name"]: "icelake-sp" for h in hosts},
        __lab_fleet_ssh_key="/s/id_ed25519",
        __lab_fleet_ssh_options=SSH_OPTIONS,
    )


def source(tmp_path: Path, state_dir: Path | None) -> Path:
    path = tmp_path / "inventory" / "hosts.yml"
    path.parent.mkdir(exist_ok=True)
    lines = ["plugin: lab_fleet"] + ([f"state_dir: {state_dir}"] if state_dir else [])
    path.write_text("\n".join(lines) + "\n")
    return path


def load(path: Path) -> InventoryManager:
    return InventoryManager(loader=DataLoader(), sources=[str(path)])


def host_vars(manager: InventoryManager, name: str) -> dict[str, object]:
    return dict(manager.get_host(name).get_vars())


def test_without_a_fleet_the_inventory_is_localhost_as_the_tracked_file_had_it(tmp_path):
    manager = load(source(tmp_path, tmp_path / "state"))
    assert [h.name for h in manager.get_hosts()] == ["localhost"]
    hv = host_vars(manager, "localhost")
    assert hv["ansible_connection"] == "local"
    assert hv["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    assert hv["ansible_become"] is False
    assert manager.groups["all"].get_vars()["lab_fleet_state_dir"] == str(tmp_path / "state")


def test_a_running_fleet_is_the_lab_group_with_its_ports_key_and_profiles(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    vms = [{"name": "lab1", "ssh_port": 2222}, {"name": "lab2", "ssh_port": 2223}]
    (state / "hosts.yml").write_text(render_role_inventory(vms))
    manager = load(source(tmp_path, state))
    assert sorted(h.name for h in manager.get_hosts()) == ["lab1", "lab2"]
    assert sorted(h.name for h in manager.groups["lab"].get_hosts()) == ["lab1", "lab2"]
    lab2 = manager.get_host("lab2")
    merged = {**manager.groups["lab"].get_vars(), **lab2.get_vars()}
    assert merged["ansible_port"] == 2223
    assert merged["ansible_host"] == "127.0.0.1"
    assert merged["ansible_ssh_private_key_file"] == "/s/id_ed25519"
    assert merged["lab_profile_name"] == "icelake-sp"
    assert shlex.split(str(merged["ansible_ssh_common_args"])) == SSH_OPTIONS
    assert "localhost" not in [h.name for h in manager.get_hosts()]


def test_a_fleet_taken_down_is_localhost_again(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "hosts.yml").write_text(render_role_inventory([]))
    manager = load(source(tmp_path, state))
    assert [h.name for h in manager.get_hosts()] == ["localhost"]
    assert manager.groups["lab"].get_hosts() == []


def test_the_state_dir_comes_from_the_environment_without_an_option(tmp_path, monkeypatch):
    state = tmp_path / "from-env"
    state.mkdir()
    (state / "hosts.yml").write_text(render_role_inventory([{"name": "lab7", "ssh_port": 1}]))
    monkeypatch.setenv("DAMON_FLEET_LAB_STATE", str(state))
    manager = load(source(tmp_path, None))
    assert [h.name for h in manager.get_hosts()] == ["lab7"]
    assert manager.groups["all"].get_vars()["lab_fleet_state_dir"] == str(state)


def test_without_option_or_environment_the_state_dir_is_two_levels_up(tmp_path):
    root = tmp_path / "checkout"
    (root / "inventories" / "lab").mkdir(parents=True)
    src = root / "inventories" / "lab" / "hosts.yml"
    src.write_text("plugin: lab_fleet\n")
    manager = load(src)
    assert [h.name for h in manager.get_hosts()] == ["localhost"]
    expected = str(root / ".damon-fleet" / "lab")
    assert manager.groups["all"].get_vars()["lab_fleet_state_dir"] == expected


def test_the_default_inventory_is_this_plugin():
    assert DEFAULT_SOURCE.read_text().splitlines()[-1] == "plugin: lab_fleet"


def test_a_broken_fleet_file_names_itself(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "hosts.yml").write_text("- not a mapping\n")
    plugin = inventory_loader.get("lab_fleet")
    with pytest.raises(AnsibleParserError) as info:
        plugin.parse(InventoryData(), DataLoader(), str(source(tmp_path, state)))
    message = str(info.value).splitlines()[0]
    assert message.startswith(
        f"lab_fleet: {state / 'hosts.yml'} (written by the lab_fleet role) is not a YAML "
        "inventory: "
    )


def test_the_cli_reads_the_default_inventory_in_process(tmp_path, monkeypatch):
    """damon-fleet parses the default inventory with Ansible's InventoryManager in its own
    process (no ansible.cfg needed): before `lab up` it is localhost, after it the lab."""
    from damon_fleet import run_cli

    state = tmp_path / "state"
    monkeypatch.setenv("DAMON_FLEET_LAB_STATE", str(state))
    assert run_cli.read_inventory(DEFAULT_SOURCE, None).hosts == ["localhost"]
    state.mkdir()
    (state / "hosts.yml").write_text(render_role_inventory([{"name": "lab1", "ssh_port": 2222}]))
    assert run_cli.read_inventory(DEFAULT_SOURCE, None).hosts == ["lab1"]


def test_a_private_inventory_folder_with_group_vars(tmp_path):
    """As tests/vm/test_cli_lab.py keeps one: a folder with the plugin's config (its own
    state directory) and the lab's group_vars, given to the CLI as -i FOLDER."""
    from damon_fleet import run_cli

    state = tmp_path / "lab"
    state.mkdir()
    (state / "hosts.yml").write_text(
        render_role_inventory([{"name": "lab1", "ssh_port": 2222}, {"name": "lab2", "ssh_port": 1}])
    )
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "hosts.yml").write_text(f"plugin: lab_fleet\nstate_dir: {state}\n")
    (folder / "group_vars").symlink_to(CONTENT_ROOT / "inventories" / "lab" / "group_vars")
    assert run_cli.read_inventory(folder, None).hosts == ["lab1", "lab2"]
    manager = load(folder)
    assert manager.get_host("lab1").vars["ansible_port"] == 2222
    assert manager.groups["lab"].get_vars()["ansible_user"] == "root"
