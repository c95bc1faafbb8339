#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: kexec trial boot of a kernel rollout (probe, load, unload)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_install_kexec
short_description: kexec trial boot of a kernel rollout - probe, load the trial entry, unload
version_added: "0.1.0"
description:
  - V(probe) tells whether this host can start a kernel with kexec, and if not why - the
    running kernel has no kexec support (C(/sys/kernel/kexec_loaded) missing), kexec is
    disabled (C(/proc/sys/kernel/kexec_load_disabled)), kernel lockdown (Secure Boot)
    forbids C(kexec_load), or the C(kexec) program (kexec-tools) is not installed.
  - V(load) loads the kernel, initrd and command line of the trial entry
    (C(damon-fleet-trial), written by M(damon_fleet.fleet.kernel_install_grub) with C(panic=N)) with
    C(kexec -l), so C(systemctl kexec) starts it without the firmware. GRUB's saved
    default is not touched - a trial kernel that panics reboots through the firmware into
    it.
  - V(unload) unloads a loaded kernel (C(kexec -u)), so nothing is left for a later
    reboot.
  - Every value reaches C(kexec) as its own argv element, options before C(--) and the
    kernel; paths and kernel arguments are checked first.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Probes; loads and unloads nothing.
  diff_mode:
    support: none
options:
  action:
    description:
      - What to do (see the description).
    type: str
    choices: [probe, load, unload]
    default: probe
  grub_cfg:
    description:
      - The generated GRUB configuration holding the trial entry (V(load)).
    type: path
    default: /boot/grub/grub.cfg
seealso:
  - module: damon_fleet.fleet.kernel_install_grub
"""

EXAMPLES = r"""
- name: Can this host kexec?
  kernel_install_kexec:
    action: probe
  register: kexec_probe

- name: Load the trial entry's kernel
  kernel_install_kexec:
    action: load
  when: kexec_probe.possible
"""

RETURN = r"""
possible:
  description: Whether this host can start a kernel with kexec.
  returned: always
  type: bool
blocker:
  description: What keeps it from kexec - V(no_kexec) (no kexec in the kernel), V(disabled),
    V(lockdown), V(no_tool) (kexec-tools not installed; the only one an install cures);
    null when it can.
  returned: always
  type: str
reason:
  description: Why it cannot, in words (null when it can).
  returned: always
  type: str
kexec:
  description: The kexec program's path (null when not installed).
  returned: always
  type: str
loaded:
  description: Whether a kernel is loaded for kexec after the action (C(/sys/kernel/kexec_loaded)).
  returned: always
  type: bool
argv:
  description: The C(kexec -l) command run (V(load)).
  returned: action is load
  type: list
  elements: str
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.grub_entries import (
    TRIAL_ID,
    GrubError,
    parse_grub_cfg,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.kexec_boot import (
    KexecError,
    boot_paths,
    kexec_blocker,
    load_argv,
)

KEXEC_LOADED = "/sys/kernel/kexec_loaded"
LOAD_DISABLED = "/proc/sys/kernel/kexec_load_disabled"
LOCKDOWN = "/sys/kernel/security/lockdown"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return str(handle.read())
    except OSError:
        return None


def _loaded() -> bool:
    return (_read(KEXEC_LOADED) or "").strip() == "1"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "choices": ["probe", "load", "unload"], "default": "probe"},
            "grub_cfg": {"type": "path", "default": "/boot/grub/grub.cfg"},
        },
        supports_check_mode=True,
    )
    action = module.params["action"]
    kexec = module.get_bin_path("kexec", required=False, opt_dirs=["/sbin", "/usr/sbin"])
    blocker = kexec_blocker(_read(KEXEC_LOADED), _read(LOAD_DISABLED), _read(LOCKDOWN), kexec)
    reason = blocker[1] if blocker else None
    result: dict[str, Any] = {
        "changed": False,
        "possible": blocker is None,
        "blocker": blocker[0] if blocker else None,
        "reason": reason,
        "kexec": kexec,
    }
    try:
        if action == "load":
            if blocker is not None or kexec is None:
                raise KexecError(f"cannot kexec: {reason}")
            cfg = module.params["grub_cfg"]
            text = _read(cfg)
            if text is None:
                raise KexecError(f"cannot read {cfg}")
            trial = [e for e in parse_grub_cfg(text) if e.entry_id == TRIAL_ID]
            if not trial or trial[0].kernel is None:
                raise KexecError(f"{cfg} has no entry {TRIAL_ID} with a linux line")
            entry = trial[0]
            kernel = boot_paths(entry.kernel or "", os.path.isfile)
            initrd = boot_paths(entry.initrd[0], os.path.isfile) if entry.initrd else None
            argv = load_argv(kexec, kernel, initrd, entry.args)
            result["argv"] = argv
            result["changed"] = True
            if not module.check_mode:
                rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
                if rc != 0:
                    raise KexecError(f"kexec -l failed (rc {rc}): {(err or out).strip()[:300]}")
                if not _loaded():
                    raise KexecError(f"kexec -l ran, but {KEXEC_LOADED} does not say 1")
        elif action == "unload" and _loaded():
            result["changed"] = True
            if not module.check_mode:
                if kexec is None:
                    raise KexecError(
                        "a kernel is loaded for kexec, but no kexec program unloads it"
                    )
                rc, out, err = module.run_command([kexec, "-u"], environ_update={"LC_ALL": "C"})
                if rc != 0:
                    raise KexecError(f"kexec -u failed (rc {rc}): {(err or out).strip()[:300]}")
    except (KexecError, GrubError) as exc:
        module.fail_json(msg=f"kernel_install_kexec ({action}): {exc}", **result)
    result["loaded"] = _loaded()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
