"""The lab fleet end to end: ``damon-fleet lab up``, GRUB boots, reboots, status, down.

Runs the real CLI (ansible-runner -> playbooks/lab.yml) with a private state directory
and inventory, so it does not touch a fleet the user runs. A cold cache builds the lab
kernel packages and the debootstrap image; the timings are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.lab.qemu import (
    port_in_use,
    running_pid,
)
from lab_inventory import lab_hosts, lab_ssh

from damon_fleet._paths import REPO_ROOT

pytestmark = pytest.mark.vm

COUNT = 2
TIMINGS: dict[str, float] = {}


def _cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "damon_fleet.cli", "lab", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )


class Fleet:
    def __init__(self, root: Path) -> None:
        self.state_dir = root / "state"
        self.inventory = root / "hosts.yml"
        self.args = ["--state-dir", str(self.state_dir), "--inventory", str(self.inventory)]

    def hosts(self) -> dict[str, dict[str, Any]]:
        return lab_hosts(self.inventory)

    def ssh(self, host: str, cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return lab_ssh(self.inventory, host, cmd, timeout)

    def vm_json(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / name / "vm.json").read_text())
        return data


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    lab = Fleet(tmp_path_factory.mktemp("lab-fleet"))
    started = time.monotonic()
    up = _cli("up", "--count", str(COUNT), *lab.args)
    TIMINGS["lab up (image and kernel from cache or built)"] = time.monotonic() - started
    try:
        assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
        yield lab
    finally:
        started = time.monotonic()
        _cli("down", *lab.args, timeout=300)
        TIMINGS["lab down"] = time.monotonic() - started
        print("\nlab fleet timings:")
        for label, seconds in TIMINGS.items():
            print(f"  {label}: {seconds:.1f}s")


def test_up_writes_the_inventory_and_every_vm_answers(fleet: Fleet) -> None:
    hosts = fleet.hosts()
    assert sorted(hosts) == [f"lab{i}" for i in range(1, COUNT + 1)]
    ports = {hv["ansible_port"] for hv in hosts.values()}
    assert len(ports) == COUNT
    for name, hv in hosts.items():
        assert hv["ansible_host"] == "127.0.0.1"
        assert hv["ansible_user"] == "root"
        assert hv["ansible_python_interpreter"] == "/usr/bin/python3"
        # Host keys are checked against the lab's own known-hosts file, written at `lab up`.
        known_hosts = (fleet.state_dir / "known_hosts").resolve()
        assert "StrictHostKeyChecking=yes" in hv["ansible_ssh_common_args"]
        assert f"UserKnownHostsFile={known_hosts}" in hv["ansible_ssh_common_args"]
        assert f"[127.0.0.1]:{hv['ansible_port']} ssh-ed25519 " in known_hosts.read_text()
        assert fleet.vm_json(name)["ssh_port"] == hv["ansible_port"]
        proc = fleet.ssh(name, "uname -r")
        assert proc.returncode == 0, proc.stderr
    assert fleet.inventory.read_text().splitlines()[1].startswith("# Generated")


def test_vms_boot_through_grub(fleet: Fleet) -> None:
    for name in fleet.hosts():
        cmdline = fleet.ssh(name, "cat /proc/cmdline").stdout
        assert "BOOT_IMAGE=/boot/vmlinuz-" in cmdline
        assert "root=/dev/vda1" in cmdline
        env = fleet.ssh(name, "grub-editenv list")
        assert env.returncode == 0, env.stderr
        entries = fleet.ssh(name, "grep -c ^menuentry /boot/grub/grub.cfg").stdout.strip()
        assert int(entries) >= 1
        damon = fleet.ssh(name, "ls /sys/kernel/mm/damon/admin/kdamonds").stdout.split()
        assert "nr_kdamonds" in damon


def test_up_again_leaves_running_vms_alone(fleet: Fleet) -> None:
    pids = {name: fleet.vm_json(name)["pid"] for name in fleet.hosts()}
    started = time.monotonic()
    up = _cli("up", "--count", str(COUNT), *fleet.args)
    TIMINGS["lab up, fleet already running"] = time.monotonic() - started
    assert up.returncode == 0, up.stdout[-4000:]
    assert {name: fleet.vm_json(name)["pid"] for name in fleet.hosts()} == pids


def test_status_lists_ports_pids_and_kernels(fleet: Fleet) -> None:
    proc = _cli("status", *fleet.args, "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    kernel = fleet.ssh("lab1", "uname -r").stdout.strip()
    for name, hv in fleet.hosts().items():
        assert rows[name]["state"] == "running"
        assert rows[name]["ssh_port"] == hv["ansible_port"]
        assert rows[name]["pid"] == fleet.vm_json(name)["pid"]
        assert rows[name]["kernel"] == kernel
    table = _cli("status", *fleet.args, timeout=120).stdout.splitlines()
    assert table[0].split() == ["NAME", "SSH_PORT", "PID", "STATE", "ACCEL", "KERNEL", "PROFILE"]
    assert table[1].split()[0] == "lab1"
    # the real machine each VM plays (lab_fleet_profiles' defaults), installed in the guest
    profiles = {"lab1": "sapphirerapids", "lab2": "raptorlake-hybrid"}
    assert {name: rows[name]["profile"] for name in rows} == profiles
    for name, hv in fleet.hosts().items():
        assert hv["lab_profile_name"] == profiles[name]
        version = fleet.ssh(name, "/opt/damon-fleet-lab/profile/bin/perf --version")
        assert version.returncode == 0, version.stderr
        assert version.stdout.startswith("perf version ")


def test_grub_reboot_and_ansible_reboot(fleet: Fleet, tmp_path: Path) -> None:
    """Boot once into a named entry with grub-reboot; the VM comes back on its own."""
    playbook = tmp_path / "reboot.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Reboot once into the first GRUB entry
              hosts: lab
              gather_facts: false
              tasks:
                - name: Read the boot id
                  ansible.builtin.slurp:
                    src: /proc/sys/kernel/random/boot_id
                  register: before
                - name: Choose the entry of the next boot only
                  ansible.builtin.shell: |
                    entry=$(sed -n "s/^menuentry '\\([^']*\\)'.*/\\1/p" \\
                      /boot/grub/grub.cfg | head -1)
                    grub-reboot "$entry"
                    grub-editenv list
                  register: chosen
                  changed_when: true
                - name: Reboot
                  ansible.builtin.reboot:
                    reboot_timeout: 900
                  register: rebooted
                - name: Read the boot id again
                  ansible.builtin.slurp:
                    src: /proc/sys/kernel/random/boot_id
                  register: after
                - name: Read the GRUB environment
                  ansible.builtin.command: grub-editenv list
                  register: env
                  changed_when: false
                - name: Report
                  ansible.builtin.copy:
                    content: "{{ {'elapsed': rebooted.elapsed, 'chosen': chosen.stdout,
                      'changed_boot': before.content != after.content,
                      'env': env.stdout} | to_json }}"
                    dest: "{{ report_dir }}/{{ inventory_hostname }}.json"
                    mode: "0644"
                  delegate_to: localhost
            """
        )
    )
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(fleet.inventory),
            "-e",
            f"report_dir={tmp_path}",
            str(playbook),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    TIMINGS[f"grub-reboot + reboot of {COUNT} VMs in parallel"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    for name in fleet.hosts():
        msg = json.loads((tmp_path / f"{name}.json").read_text())
        assert "next_entry=Debian GNU/Linux" in msg["chosen"]
        assert msg["changed_boot"]
        assert "next_entry=Debian" not in msg["env"]  # GRUB consumed the one-time entry
        TIMINGS[f"reboot round trip {name} (ansible.builtin.reboot elapsed)"] = msg["elapsed"]
        # the same QEMU process kept running across the guest reboot
        assert running_pid(str(fleet.state_dir / name / "qemu.pid")) == fleet.vm_json(name)["pid"]


def test_down_leaves_no_process_and_no_port(fleet: Fleet) -> None:
    vms = {name: fleet.vm_json(name) for name in fleet.hosts()}
    started = time.monotonic()
    down = _cli("down", *fleet.args, timeout=300)
    TIMINGS["lab down"] = time.monotonic() - started
    assert down.returncode == 0, down.stdout[-4000:]
    for name, vm in vms.items():
        assert not Path(f"/proc/{vm['pid']}").exists() or (
            running_pid(str(fleet.state_dir / name / "qemu.pid")) is None
        )
        assert not port_in_use(vm["ssh_port"])
        assert not (fleet.state_dir / name / "disk.qcow2").exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert str(fleet.state_dir) not in ps.stdout
    rows = json.loads(_cli("status", *fleet.args, "--json").stdout)
    assert {row["state"] for row in rows} == {"stopped"}
    assert yaml.safe_load(fleet.inventory.read_text())["all"]["children"]["lab"]["hosts"] == {}
