"""The hosts of an inventory the lab_fleet role wrote, and SSH to them (VM tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import SSH_OPTIONS


def lab_hosts(inventory: Path) -> dict[str, dict[str, Any]]:
    """``{host: its variables}`` of the ``lab`` group (group vars merged under host vars)."""
    group = yaml.safe_load(inventory.read_text())["all"]["children"]["lab"]
    common = group.get("vars") or {}
    return {name: {**common, **(hv or {})} for name, hv in (group["hosts"] or {}).items()}


def lab_ssh(
    inventory: Path, host: str, cmd: str, timeout: float = 60, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run *cmd* as root on lab *host* with the inventory's key and port."""
    hv = lab_hosts(inventory)[host]
    return subprocess.run(
        [
            "ssh",
            *SSH_OPTIONS,
            "-i",
            hv["ansible_ssh_private_key_file"],
            "-p",
            str(hv["ansible_port"]),
            f"root@{hv['ansible_host']}",
            cmd,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
    )
