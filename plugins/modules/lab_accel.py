#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: choose the QEMU accelerator for the lab fleet (probe KVM, else TCG)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_accel
short_description: Choose the QEMU accelerator for the lab fleet
version_added: "0.1.0"
description:
  - With O(accel=auto), starts a diskless KVM machine that boots O(kernel) until it finds
    no root filesystem (or, without O(kernel), only runs its firmware). When that shows on
    its console within O(timeout) seconds KVM runs guests and V(kvm) is chosen; when
    C(/dev/kvm) is missing, QEMU fails or the guest hangs (as under some nested
    virtualization, where the firmware runs but the kernel does not), V(tcg) is chosen. The
    probe machine is always killed.
  - V(kvm) and V(tcg) are returned as given, without probing.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: The probe changes nothing, so it runs in check mode too.
  diff_mode:
    support: none
options:
  accel:
    description: V(auto) probes; V(kvm) and V(tcg) are taken as they are.
    type: str
    choices: [auto, kvm, tcg]
    default: auto
  kernel:
    description:
      - A bootable kernel image (bzImage) for the probe. Without it only the firmware is
        awaited, which does not catch guests that hang once the kernel starts.
    type: path
  timeout:
    description: Seconds to wait for the probe machine.
    type: float
    default: 10
  qemu:
    description: The QEMU binary.
    type: str
    default: qemu-system-x86_64
"""

EXAMPLES = r"""
- name: Choose the accelerator
  lab_accel:
    accel: auto
  register: accel
"""

RETURN = r"""
accel:
  description: V(kvm) or V(tcg).
  returned: always
  type: str
reason:
  description: Why.
  returned: always
  type: str
"""

import os
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import (
    choose_accel,
    kvm_probe_argv,
    kvm_probe_ok,
)


def probe_kvm(qemu: str, kernel: str, timeout: float) -> tuple[bool, str]:
    """Whether a KVM guest runs here, and why (not)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not usable"
    with tempfile.TemporaryDirectory(prefix="lab-kvm-probe-") as tmp:
        out = os.path.join(tmp, "debugcon")
        proc = subprocess.Popen(
            kvm_probe_argv(out, kernel, qemu),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        ok = False
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with open(out, encoding="utf-8", errors="replace") as handle:
                        ok = kvm_probe_ok(handle.read(), kernel=bool(kernel))
                except OSError:
                    ok = False
                if ok:
                    break
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
            _out, err = proc.communicate(timeout=10)
        if ok:
            return True, "a KVM guest ran its " + ("kernel" if kernel else "firmware")
        if proc.returncode not in (None, -9) and err:
            return False, "QEMU with KVM failed: " + err.decode(errors="replace").strip()
        return False, f"a KVM guest hung (no progress within {timeout:g}s)"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "accel": {"type": "str", "choices": ["auto", "kvm", "tcg"], "default": "auto"},
            "kernel": {"type": "path"},
            "timeout": {"type": "float", "default": 10.0},
            "qemu": {"type": "str", "default": "qemu-system-x86_64"},
        },
        supports_check_mode=True,
    )
    requested = module.params["accel"]
    if requested != "auto":
        module.exit_json(changed=False, accel=requested, reason="as requested")
    usable, reason = probe_kvm(
        module.params["qemu"], module.params["kernel"] or "", module.params["timeout"]
    )
    module.exit_json(changed=False, accel=choose_accel(requested, usable), reason=reason)


if __name__ == "__main__":
    main()
