#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: start, stop or query one lab fleet QEMU machine, by its pidfile."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_vm
short_description: Start, stop or query one lab fleet QEMU machine
version_added: "0.1.0"
description:
  - Each VM lives in C(<state_dir>/<name>/) - C(disk.qcow2) (a copy-on-write overlay of
    O(base_image)), C(qemu.pid), C(console.log) (serial console), C(qemu.log), C(vm.json).
  - V(started) creates the overlay when missing (or when it was made from another base
    image), picks the SSH port (the recorded one when still free, else a free one, never
    one of O(taken_ports) or one recorded by another VM of O(state_dir)) and starts
    C(qemu-system-x86_64 -daemonize), which boots the disk through its own GRUB and keeps
    running across guest reboots. A running VM is left alone.
  - V(stopped) kills the VM's QEMU by the pid in its pidfile (checked against
    C(/proc/<pid>/cmdline)), waits until it is gone and its SSH port is free.
    V(absent) also removes the VM's directory.
  - V(query) only reports.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports what would change and changes nothing.
  diff_mode:
    support: none
options:
  name:
    description: VM name (lower-case letters, digits, C(-)).
    type: str
    required: true
  state:
    description: The desired state.
    type: str
    choices: [started, stopped, absent, query]
    default: started
  state_dir:
    description: Directory holding one directory per VM.
    type: path
    required: true
  base_image:
    description: The raw disk image the overlay is made from. Required with V(started).
    type: path
  accel:
    description: QEMU accelerator.
    type: str
    choices: [kvm, tcg]
    default: tcg
  memory_mb:
    description: Guest memory in MiB.
    type: int
    default: 1024
  cpus:
    description: Guest CPUs.
    type: int
    default: 2
  ssh_port:
    description: Preferred host port for SSH (0 - the recorded one, else any free port).
    type: int
    default: 0
  taken_ports:
    description: Ports the VM must not take (those of the other VMs of the fleet).
    type: list
    elements: int
    default: []
  remove_disk:
    description: With V(stopped), also remove the overlay, so the next start is fresh.
    type: bool
    default: false
  stop_timeout:
    description: Seconds to wait for QEMU to exit after SIGTERM before SIGKILL.
    type: int
    default: 20
  qemu:
    description: The QEMU binary.
    type: str
    default: qemu-system-x86_64
"""

EXAMPLES = r"""
- name: Start lab1
  lab_vm:
    name: lab1
    state_dir: /work/damon-fleet/.damon-fleet/lab
    base_image: /root/.cache/damon-fleet/lab-images/disk-0123/disk.img

- name: Stop lab1 and drop its disk
  lab_vm:
    name: lab1
    state: stopped
    state_dir: /work/damon-fleet/.damon-fleet/lab
    remove_disk: true
"""

RETURN = r"""
vm:
  description: The VM after the change.
  returned: always
  type: dict
  contains:
    name: {description: VM name, type: str}
    state: {description: running or stopped, type: str}
    pid: {description: QEMU pid when running, type: int}
    ssh_port: {description: SSH port on 127.0.0.1, type: int}
    accel: {description: kvm or tcg, type: str}
    directory: {description: The VM's directory, type: str}
    console_log: {description: The serial console log, type: str}
"""

import contextlib
import os
import shutil
import signal
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import (
    LabQemuError,
    VmPaths,
    VmSpec,
    VmState,
    choose_port,
    list_vms,
    load_state,
    port_in_use,
    qemu_argv,
    running_pid,
    validate_spec,
)

START_ATTEMPTS = 5


def _report(state_dir: str, name: str) -> dict[str, Any]:
    directory = os.path.join(state_dir, name)
    paths = VmPaths(directory)
    state = load_state(directory, name)
    pid = running_pid(paths.pidfile)
    return {
        "name": name,
        "state": "running" if pid else "stopped",
        "pid": pid,
        "ssh_port": state.ssh_port,
        "accel": state.accel,
        "directory": directory,
        "console_log": paths.console_log,
    }


def _exiting(pid: int) -> bool:
    """Whether *pid* still exists and is not yet a zombie (a process being torn down has
    an empty cmdline, so :func:`running_pid` no longer names it while it still runs)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, pidfile: str, timeout: float) -> bool:
    """Wait until the VM's QEMU is no longer running, and then until its process has
    finished exiting (at most *timeout* in all; a pid taken again by another process is
    only waited for, never signalled)."""
    deadline = time.monotonic() + timeout
    while running_pid(pidfile) == pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    while _exiting(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def stop(module: AnsibleModule, paths: VmPaths, state: VmState) -> None:
    pid = running_pid(paths.pidfile)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, paths.pidfile, module.params["stop_timeout"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, paths.pidfile, 10):
                module.fail_json(msg=f"QEMU pid {pid} of {state.name} does not exit")
    if os.path.exists(paths.pidfile):
        os.unlink(paths.pidfile)
    if state.ssh_port:
        deadline = time.monotonic() + 10
        while port_in_use(state.ssh_port) and time.monotonic() < deadline:
            time.sleep(0.2)
        if port_in_use(state.ssh_port):
            module.fail_json(msg=f"port {state.ssh_port} of {state.name} is still in use")


def start(module: AnsibleModule, paths: VmPaths, state: VmState) -> None:
    params = module.params
    base = os.path.realpath(params["base_image"])
    if not os.path.isfile(base):
        module.fail_json(msg=f"base image {base} does not exist")
    os.makedirs(paths.directory, exist_ok=True)
    if not os.path.isfile(paths.disk) or state.base_image != base:
        if os.path.exists(paths.disk):
            os.unlink(paths.disk)
        rc, _out, err = module.run_command(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, paths.disk]
        )
        if rc != 0:
            module.fail_json(msg=f"qemu-img create failed: {err.strip()}")
    taken = set(params["taken_ports"])
    state_dir = params["state_dir"]
    for other in list_vms(state_dir):
        if other != state.name:
            port = load_state(os.path.join(state_dir, other), other).ssh_port
            if port:
                taken.add(port)
    preferred = params["ssh_port"] or state.ssh_port
    last_error = ""
    for _attempt in range(START_ATTEMPTS):
        port = choose_port(preferred, taken)
        spec = VmSpec(
            name=state.name,
            directory=paths.directory,
            ssh_port=port,
            accel=params["accel"],
            memory_mb=params["memory_mb"],
            cpus=params["cpus"],
        )
        argv = qemu_argv(spec, qemu=params["qemu"])
        if os.path.exists(paths.pidfile):
            os.unlink(paths.pidfile)
        with open(paths.qemu_log, "w", encoding="utf-8") as log:
            log.write(" ".join(argv) + "\n")
        rc, out, err = module.run_command(argv)
        with open(paths.qemu_log, "a", encoding="utf-8") as log:
            log.write(out + err)
        if rc == 0:
            pid = None
            deadline = time.monotonic() + 10
            while pid is None and time.monotonic() < deadline:
                pid = running_pid(paths.pidfile)
                if pid is None:
                    time.sleep(0.1)
            if pid is None:
                module.fail_json(msg=f"QEMU of {state.name} exited right after starting")
            new = VmState(
                name=state.name,
                ssh_port=port,
                pid=pid,
                accel=spec.accel,
                base_image=base,
                memory_mb=spec.memory_mb,
                cpus=spec.cpus,
                argv=argv,
            )
            with open(paths.state + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(new.to_json())
            os.replace(paths.state + ".tmp", paths.state)
            return
        last_error = (out + err).strip()
        if "hostfwd" not in last_error and "host forwarding" not in last_error:
            break
        taken.add(port)
        preferred = 0
    module.fail_json(msg=f"QEMU of {state.name} failed to start: {last_error}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {
                "type": "str",
                "choices": ["started", "stopped", "absent", "query"],
                "default": "started",
            },
            "state_dir": {"type": "path", "required": True},
            "base_image": {"type": "path"},
            "accel": {"type": "str", "choices": ["kvm", "tcg"], "default": "tcg"},
            "memory_mb": {"type": "int", "default": 1024},
            "cpus": {"type": "int", "default": 2},
            "ssh_port": {"type": "int", "default": 0},
            "taken_ports": {"type": "list", "elements": "int", "default": []},
            "remove_disk": {"type": "bool", "default": False},
            "stop_timeout": {"type": "int", "default": 20},
            "qemu": {"type": "str", "default": "qemu-system-x86_64"},
        },
        required_if=[("state", "started", ["base_image"])],
        supports_check_mode=True,
    )
    params = module.params
    name: str = params["name"]
    state_dir: str = params["state_dir"]
    directory = os.path.join(state_dir, name)
    paths = VmPaths(directory)
    try:
        validate_spec(VmSpec(name=name, directory=directory, ssh_port=1))
    except LabQemuError as exc:
        module.fail_json(msg=str(exc))
    state = load_state(directory, name)
    running = running_pid(paths.pidfile) is not None
    want = params["state"]
    changed = False
    if want == "started":
        base = os.path.realpath(params["base_image"])
        changed = not running
        if changed and not module.check_mode:
            start(module, paths, state)
        elif running and state.base_image and state.base_image != base:
            module.warn(f"{name} runs on {state.base_image}, not {base}: stop it to switch images")
    elif want in ("stopped", "absent"):
        has_disk = os.path.exists(paths.disk)
        changed = running or (want == "absent" and os.path.isdir(directory))
        changed = changed or (params["remove_disk"] and has_disk)
        if changed and not module.check_mode:
            stop(module, paths, state)
            if want == "absent":
                shutil.rmtree(directory, ignore_errors=True)
            elif params["remove_disk"] and has_disk:
                os.unlink(paths.disk)
    module.exit_json(changed=changed, vm=_report(state_dir, name))


if __name__ == "__main__":
    main()
