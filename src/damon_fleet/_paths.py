"""Locate the repository's Ansible content and make its module_utils importable.

Modules import shared code as ``ansible.module_utils.<name>`` (that is how Ansible
ships it to hosts).  The CLI and the tests use the very same files: this module
appends ``plugins/module_utils`` to the ``ansible.module_utils`` package path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"


def register_module_utils() -> None:
    """Make ``ansible.module_utils.<name>`` resolve to ``plugins/module_utils/<name>.py``."""
    path = str(MODULE_UTILS)
    if path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(path)


def runner_envvars() -> dict[str, str]:
    """Environment of an ansible-runner run: this checkout's ansible.cfg, and PATH with the
    directory of this Python first, so a virtualenv's ansible-playbook is the one that runs."""
    here = str(Path(sys.executable).parent)
    return {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "PATH": os.pathsep.join([here, os.environ.get("PATH", os.defpath)]),
    }
