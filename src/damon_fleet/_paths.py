"""Locate the Ansible content (the collection damon_fleet.fleet) and the runtime state,
and make the collection's module_utils importable.

The content root is where ``ansible.cfg``, ``deploy.yml``, ``playbooks/``, ``roles/``,
``plugins/``, ``kernel-patches/`` and ``inventories/`` live: the top level of a checkout
(this package sits in its ``src/``), or, for an installed wheel, the collection the wheel
installs as ``ansible_collections/damon_fleet/fleet`` next to this package. Everything that
needs a path to that content takes it from here (:data:`CONTENT_ROOT`); roles take theirs
from ``role_path`` within the collection.

Modules import shared code in the collection form,
``ansible_collections.damon_fleet.fleet.plugins.module_utils.<domain>.<name>``, which
Ansible resolves through its collections path and ships to hosts. A checkout is made a
collection by the link :data:`COLLECTION_LINK` (``.damon-fleet/collections/
ansible_collections/damon_fleet/fleet`` -> the checkout; ``collections_path`` in
``ansible.cfg`` names its root). The CLI and the tests import the very same files: an
installed wheel holds the collection in ``site-packages``, an editable install maps the
package to the checkout, and :func:`register_module_utils` puts the link's root on
``sys.path`` for a plain ``PYTHONPATH=src``.

Runtime state (lab fleet, runs, rollout records) lives under :data:`STATE_ROOT`:
``$DAMON_FLEET_HOME`` when set, else ``.damon-fleet/`` of the checkout, else (installed)
``.damon-fleet/`` of the working directory. Every run the CLI starts gets it as
``$DAMON_FLEET_HOME`` (:func:`runner_envvars`), the variable ``damon_fleet_runtime_dir`` of
``playbooks/vars/contracts.yml`` reads first, so the plays never place state elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

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
# The collections root of a checkout (ansible.cfg's collections_path names it) and the link
# in it that makes the checkout the collection damon_fleet.fleet. Runtime state: in the
# checkout's .damon-fleet/ whatever DAMON_FLEET_HOME says, as ansible.cfg's path is
# relative to ansible.cfg.
COLLECTIONS_ROOT = CONTENT_ROOT / ".damon-fleet" / "collections"
COLLECTION_LINK = COLLECTIONS_ROOT / "ansible_collections" / "damon_fleet" / "fleet"


def ensure_collection_link() -> None:
    """In a checkout, create (or repair) :data:`COLLECTION_LINK`, a relative symlink to
    the checkout, so that Ansible finds damon_fleet.fleet and the modules' imports of its
    module_utils. An installed wheel needs none: the collection is in ``site-packages``."""
    if not IS_CHECKOUT:
        return
    target = os.path.relpath(CONTENT_ROOT, COLLECTION_LINK.parent)
    if COLLECTION_LINK.is_symlink() and os.readlink(COLLECTION_LINK) == target:
        return
    if COLLECTION_LINK.exists() and not COLLECTION_LINK.is_symlink():
        raise RuntimeError(
            f"{COLLECTION_LINK} is not a symlink: remove it, damon-fleet links it to "
            f"the checkout ({target})"
        )
    COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
    staged = COLLECTION_LINK.with_name(f".fleet.{os.getpid()}")
    staged.unlink(missing_ok=True)
    os.symlink(target, staged)
    os.replace(staged, COLLECTION_LINK)


def register_module_utils() -> None:
    """Make ``ansible_collections.damon_fleet.fleet.plugins.module_utils`` importable in
    this process (the checkout's, when this package is a checkout's) without creating
    anything: the link's collections root goes on ``sys.path`` when it exists."""
    if IS_CHECKOUT and COLLECTION_LINK.is_dir():
        root = str(COLLECTIONS_ROOT)
        if root not in sys.path:
            sys.path.append(root)


def register_inventory_plugins() -> None:
    """Make the collection's inventory plugins (``lab_fleet``, the default inventory's)
    loadable by their short names in this process, as ansible.cfg's ``inventory_plugins``
    does for ansible-playbook. Imports Ansible's plugin loader: call it where an inventory
    is parsed, not at import time."""
    from ansible.plugins.loader import inventory_loader

    inventory_loader.add_directory(str(PLUGINS / "inventory"))


def runner_envvars() -> dict[str, str]:
    """Environment of an ansible-runner run: the content's ansible.cfg, the runtime state
    root (``damon_fleet_runtime_dir`` of contracts.yml takes it from ``$DAMON_FLEET_HOME``,
    so the plays keep their state where the CLI keeps its own, installed or not), the lab
    state directory the lab inventory plugin and the lab_fleet role read, and PATH with the
    directory of this Python first, so a virtualenv's ansible-playbook is the one that runs."""
    here = str(Path(sys.executable).parent)
    return {
        "ANSIBLE_CONFIG": str(CONTENT_ROOT / "ansible.cfg"),
        HOME_ENV: str(STATE_ROOT),
        LAB_STATE_ENV: str(LAB_STATE_DIR),
        "PATH": os.pathsep.join([here, os.environ.get("PATH", os.defpath)]),
    }
