"""The play the integration and VM tiers run the kernel_build role with: the role on
localhost, then its result (``kernel_build_result``) saved as JSON to a file of the test's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def kernel_build_play(result: Path, name: str = "Build the series") -> list[dict[str, Any]]:
    """A one-play playbook: role kernel_build on localhost, result saved to *result*."""
    return [
        {
            "name": name,
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            # The inputs the project's plays give the role (its cache, kernel-patches/), with
            # the project's content named: the play is written outside playbooks/.
            "vars_files": [str(ROOT / "playbooks" / "vars" / "contracts.yml")],
            "pre_tasks": [
                {
                    "name": "Name the project's content",
                    "ansible.builtin.set_fact": {"damon_fleet_content_dir": str(ROOT)},
                }
            ],
            "roles": [{"role": str(ROOT / "roles" / "kernel_build")}],
            "post_tasks": [
                {
                    "name": "Save the build result",
                    "ansible.builtin.copy": {
                        "content": "{{ kernel_build_result | to_json }}",
                        "dest": str(result),
                        "mode": "0644",
                    },
                    # The test's own file: the recap counts only the role's changes.
                    "changed_when": False,
                }
            ],
        }
    ]
