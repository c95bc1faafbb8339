"""Locate the Ansible content (the collection damon_fleet.fleet) and the runtime state,
and make the collection's module_utils importable.

The content root is where ``ansible.cfg``, ``deploy.yml``, ``playbooks/``, ``roles/``,
``plugins/``, ``kernel-patches/`` and ``inventories/`` live: the top level of a checkout
(this package sits in its ``src/``), or, for an installed wheel, the collection the wheel
installs as ``ansible_collections/damon_fleet/fleet`` next to this package. Everything that
needs a path to that content takes it from here (:data:`CONTENT_ROOT`); roles take theirs
from ``role_path`` within the collection.

Modules import shared code as ``ansible.module_utils.<name>`` (that is how Ansible
ships it to hosts).  The CLI and the tests use the very same files: this module
appends ``plugins/module_utils`` to the ``ansible.module_utils`` package path.

Runtime state (lab fleet, runs, rollout records) lives under :data:`STATE_ROOT`:
``$DAMON_FLEET_HOME`` when set, else ``.damon-fleet/`` of the checkout, else (installed)
``.damon-fleet/`` of the working directory.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import ansible.module_utils

COLLECTION = "damon_fleet.fleet"
COLLECTION_PACKAGE = "ansible_collections.damon_fleet.fleet"
HOME_ENV = "DAMON_FLEET_HOME"
LAB_STATE_ENV = "DAMON_FLEET_LAB_STATE"


def _is_content_root(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() and (path / "playbooks").is_dir()


def find_content_root() -> tuple[Path, bool]:
    """``(content root, whether it is a checkout)``. A checkout wins over an installed
    collection, so ``PYTHONPATH=src`` always runs the checkout's own content."""
    checkout = Path(__file__).resolve().parents[2]
    if _is_content_root(checkout):
        return checkout, True
    spec = importlib.util.find_spec(COLLECTION_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if _is_content_root(Path(location)):
            return Path(location).resolve(), False
    raise RuntimeError(
        f"the Ansible content of damon-fleet is missing: neither {checkout} (a checkout) "
        f"nor an installed collection {COLLECTION} holds galaxy.yml and playbooks/"
    )


CONTENT_ROOT, IS_CHECKOUT = find_content_root()
# The name older code uses for the content root.
REPO_ROOT = CONTENT_ROOT
PLUGINS = CONTENT_ROOT / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"
STATE_ROOT = Path(
    os.environ.get(HOME_ENV)
    or (CONTENT_ROOT / ".damon-fleet" if IS_CHECKOUT else Path.cwd() / ".damon-fleet")
).absolute()
LAB_STATE_DIR = Path(os.environ.get(LAB_STATE_ENV) or STATE_ROOT / "lab").absolute()


def register_module_utils() -> None:
    """Make ``ansible.module_utils.<name>`` resolve to ``plugins/module_utils/<name>.py``."""
    path = str(MODULE_UTILS)
    if path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(path)


def register_inventory_plugins() -> None:
    """Make the collection's inventory plugins (``lab_fleet``, the default inventory's)
    loadable by their short names in this process, as ansible.cfg's ``inventory_plugins``
    does for ansible-playbook. Imports Ansible's plugin loader: call it where an inventory
    is parsed, not at import time."""
    from ansible.plugins.loader import inventory_loader

    inventory_loader.add_directory(str(PLUGINS / "inventory"))


def runner_envvars() -> dict[str, str]:
    """Environment of an ansible-runner run: the content's ansible.cfg, the lab state
    directory the lab inventory plugin and the lab_fleet role read, and PATH with the
    directory of this Python first, so a virtualenv's ansible-playbook is the one that runs."""
    here = str(Path(sys.executable).parent)
    return {
        "ANSIBLE_CONFIG": str(CONTENT_ROOT / "ansible.cfg"),
        LAB_STATE_ENV: str(LAB_STATE_DIR),
        "PATH": os.pathsep.join([here, os.environ.get("PATH", os.defpath)]),
    }
