#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: the health gate of a freshly booted kernel (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_install_gate
short_description: Health gate of a freshly booted kernel
version_added: "0.1.0"
description:
  - Checks, without changing anything on the host, that the kernel a rollout just
    booted is healthy. Each check is reported with its result and reason.
  - C(release) - C(uname -r) is O(expected_release).
  - C(boot_id) - C(/proc/sys/kernel/random/boot_id) differs from O(previous_boot_id) (the
    host really rebooted).
  - C(layout) - the DAMON sysfs interface has the layout O(expected_layout) (C(rfc-v3),
    C(rfc-v1), C(rfc-v2), C(successor), C(mainline)). The layout shows only under a
    context directory; when no kdamond exists the module creates one kdamond with one
    context, looks, and sets C(nr_kdamonds) back to 0 (nothing runs).
  - C(kernel_log) - the kernel log since boot (C(dmesg), else C(journalctl -k -b)) has no
    line matching O(log_patterns) (oops, BUG, WARNING, panic) other than O(log_ignore).
  - C(command:<name>) - each of O(commands) exits with its expected status.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Runs the same read-only checks (the layout probe is skipped when it would have
      to create a kdamond).
  diff_mode:
    support: none
options:
  expected_release:
    description:
      - The release the host must run.
    type: str
    required: true
  previous_boot_id:
    description:
      - The boot id before the reboot; omit to skip the C(boot_id) check.
    type: str
  expected_layout:
    description:
      - The DAMON sysfs layout the kernel's series promises; omit to skip the check.
    type: str
  damon_root:
    description:
      - The DAMON sysfs admin directory.
    type: path
    default: /sys/kernel/mm/damon/admin
  log_patterns:
    description:
      - Python regular expressions of kernel log lines that fail the gate.
    type: list
    elements: str
    default: ['\bOops\b', '\bBUG:', '\bWARNING:', 'Kernel panic', 'general protection fault']
  log_ignore:
    description:
      - Regular expressions of matching lines to accept anyway.
    type: list
    elements: str
    default: []
  commands:
    description:
      - Extra checks, each C({name, command, expect_rc}) (C(command) runs in C(/bin/sh);
        C(expect_rc) defaults to 0).
    type: list
    elements: dict
    default: []
seealso:
  - module: damon_fleet.fleet.kernel_install_grub
"""

EXAMPLES = r"""
- name: Gate the new kernel
  kernel_install_gate:
    expected_release: 6.12.117-lab-perf-events-abi-1a2b3c4d
    previous_boot_id: "{{ boot_id_before }}"
    expected_layout: rfc-v3
    commands:
      - {name: sshd, command: systemctl is-active ssh}
  register: gate
"""

RETURN = r"""
passed:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description: Every check, in order, as C({name, ok, detail}).
  returned: always
  type: list
  elements: dict
release:
  description: C(uname -r) of the host.
  returned: always
  type: str
boot_id:
  description: The host's boot id.
  returned: always
  type: str
layout:
  description: The DAMON sysfs layout found (null when it could not be determined).
  returned: always
  type: str
summary:
  description: The failed checks, one string (empty when the gate passed).
  returned: always
  type: str
"""

import os
import platform
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    LayoutError,
    detect_layout,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.install_gate import (
    BOOT_ID_PATH,
    CommandResult,
    GateError,
    Observed,
    evaluate,
    failed_summary,
    passed,
)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(value)


def _layout(root: str, check_mode: bool) -> tuple[str | None, str | None]:
    """(layout, error): probe with a temporary kdamond when none exists."""
    try:
        return detect_layout(root), None
    except LayoutError as exc:
        if not os.path.isdir(os.path.join(root, "kdamonds")):
            return None, str(exc)
        first = str(exc)
    nr_path = os.path.join(root, "kdamonds", "nr_kdamonds")
    try:
        if _read(nr_path) != "0":
            return None, first
        if check_mode:
            return None, "layout not probed in check mode (no kdamond exists)"
        _write(nr_path, "1")
        try:
            _write(os.path.join(root, "kdamonds", "0", "contexts", "nr_contexts"), "1")
            return detect_layout(root), None
        except LayoutError as exc:
            return None, str(exc)
        finally:
            _write(nr_path, "0")
    except OSError as exc:
        return None, f"cannot probe the DAMON sysfs layout under {root}: {exc}"


def _kernel_log(module: AnsibleModule) -> str | None:
    for argv in (["dmesg"], ["journalctl", "-k", "-b", "0", "--no-pager", "-o", "cat"]):
        if module.get_bin_path(argv[0]) is None:
            continue
        rc, out, _ = module.run_command(argv, environ_update={"LC_ALL": "C"})
        if rc == 0:
            return str(out)
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "expected_release": {"type": "str", "required": True},
            "previous_boot_id": {"type": "str"},
            "expected_layout": {"type": "str"},
            "damon_root": {"type": "path", "default": "/sys/kernel/mm/damon/admin"},
            "log_patterns": {
                "type": "list",
                "elements": "str",
                "default": [
                    r"\bOops\b",
                    r"\bBUG:",
                    r"\bWARNING:",
                    "Kernel panic",
                    "general protection fault",
                ],
            },
            "log_ignore": {"type": "list", "elements": "str", "default": []},
            "commands": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    release = platform.release()
    try:
        boot_id = _read(BOOT_ID_PATH)
    except OSError as exc:
        module.fail_json(msg=f"cannot read the boot id: {exc}")
    layout: str | None = None
    layout_error: str | None = None
    if params["expected_layout"]:
        layout, layout_error = _layout(params["damon_root"], module.check_mode)
    commands = []
    for index, item in enumerate(params["commands"]):
        if not isinstance(item, dict) or not item.get("command"):
            module.fail_json(msg=f"commands[{index}] needs a command (and a name)")
        rc, out, err = module.run_command(str(item["command"]), use_unsafe_shell=True)
        commands.append(
            CommandResult(
                name=str(item.get("name") or f"#{index}"),
                rc=rc,
                stdout=str(out),
                stderr=str(err),
                expect_rc=int(item.get("expect_rc", 0)),
            )
        )
    observed = Observed(
        release=release,
        boot_id=boot_id,
        layout=layout,
        layout_error=layout_error,
        kernel_log=_kernel_log(module),
        commands=tuple(commands),
    )
    try:
        checks = evaluate(
            observed,
            params["expected_release"],
            params["previous_boot_id"],
            params["expected_layout"],
            params["log_patterns"],
            params["log_ignore"],
        )
    except GateError as exc:
        module.fail_json(msg=str(exc))
    result: dict[str, Any] = {
        "changed": False,
        "passed": passed(checks),
        "checks": [c.as_dict() for c in checks],
        "release": release,
        "boot_id": boot_id,
        "layout": layout,
        "summary": failed_summary(checks),
    }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
