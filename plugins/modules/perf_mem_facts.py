#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: detect the perf event DAMON's perf-event access check should use."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: perf_mem_facts
short_description: Detect a host's memory-sampling perf event for DAMON
version_added: "0.1.0"
description:
  - Runs C(perf mem record -vv) on a short workload (bounded in time, with C(LC_ALL=C), into
    a temporary output file that is removed afterwards), parses the attribute blocks perf
    prints, reads the PMU sysfs files and C(/proc/sys/kernel/perf_event_paranoid), and
    classifies the host as C(pebs) (Intel with a usable load-latency event), C(ibs), C(spe),
    or C(none) with a reason.
  - Returns the values DAMON's perf-event sysfs files need (C(type), C(config), C(config1),
    C(config2)) as O(ignore:damon_perf_events) in the C(damon_perf) fact.
  - When O(pinned_events) is given (inventory pins the events), perf is not run and the
    facts say so.
  - Changes nothing on the host.
options:
  perf_path:
    description:
      - The perf binary. A bare name is looked up in C(PATH).
      - When it cannot be found the module does not fail; the facts say C(classification=none)
        with the reason.
    type: str
    default: perf
  workload:
    description:
      - The command perf records (argv list; no shell).
    type: list
    elements: str
    default: [sleep, "0.2"]
  timeout:
    description:
      - Seconds perf may run before it is stopped.
    type: float
    default: 30
  events:
    description:
      - Which events DAMON should get when perf opened loads and stores on the same PMU.
    type: str
    choices: [loads, stores, all]
    default: loads
  pinned_events:
    description:
      - Events pinned in inventory (C(damon_perf_events)). When set, detection is skipped and
        these are validated and returned.
      - Each item has C(type) and C(config), optionally C(config1), C(config2) (integers or
        C(0x) strings), C(sample_freq) and C(sample_phys_addr) (passed through as given, for
        the C(damon_perf) role, which reads the same list), and the labels C(pmu) and C(name).
    type: list
    elements: dict
  sysfs_root:
    description:
      - Root of the sysfs tree to read PMUs from (for testing).
    type: path
    default: /sys
  proc_root:
    description:
      - Root of the procfs tree to read C(cpuinfo) and the perf sysctls from (for testing).
    type: path
    default: /proc
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Read-only; runs the same way in check mode.
  diff_mode:
    support: none
  facts:
    support: full
notes:
  - Run it as root (C(become)) unless C(kernel.perf_event_paranoid) allows the user to sample.
  - Installing the distribution's perf package is the perf_detect role's job, opt-in by
    variable.
seealso:
  - name: perf-mem(1)
    description: The perf mem command.
    link: https://man7.org/linux/man-pages/man1/perf-mem.1.html
author:
  - damon-fleet contributors (@damon-fleet)
"""

EXAMPLES = r"""
- name: Detect the perf event DAMON should use
  perf_mem_facts:
  become: true

- name: Show what was found
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: {{ ansible_facts.damon_perf.summary }}"

- name: Use pinned values from inventory instead of running perf
  perf_mem_facts:
    pinned_events: "{{ damon_perf_events }}"
  when: damon_perf_events is defined
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    damon_perf:
      description: What the host offers DAMON's perf-event access check.
      returned: always
      type: dict
      contains:
        source:
          description: C(detected) or C(pinned) (inventory pinned the events).
          type: str
          sample: detected
        classification:
          description: C(pebs), C(ibs), C(spe) or C(none).
          type: str
          sample: pebs
        reason:
          description: Why the host is C(none) (or that events were pinned); null otherwise.
          type: str
          sample: "no PMU memory events: memory events not supported (this is a virtual machine)"
        damon_perf_events:
          description: The events to write to DAMON's perf_events directory.
          type: list
          elements: dict
          sample: [{pmu: cpu, type: 4, config: 461, config1: 31, config2: 0}]
        opened_events:
          description: Every event perf really opened, with its sample type and role.
          type: list
          elements: dict
        cpu:
          description: vendor, family, model, model_name, hypervisor (from /proc/cpuinfo).
          type: dict
        pmu_name:
          description: C(caps/pmu_name) of the core PMU, e.g. C(sapphire_rapids).
          type: str
        pmus:
          description: PMUs with name, type, pmu_name, max_precise and memory events.
          type: list
          elements: dict
        perf_path:
          description: The perf binary used.
          type: str
        perf_version:
          description: C(perf --version), e.g. C(6.1.187).
          type: str
        kernel_release:
          description: The running kernel release.
          type: str
        perf_event_paranoid:
          description: C(/proc/sys/kernel/perf_event_paranoid).
          type: int
        perf_event_max_sample_rate:
          description: C(/proc/sys/kernel/perf_event_max_sample_rate).
          type: int
        perf_rc:
          description: Exit code of C(perf mem record) (124 when it timed out).
          type: int
        perf_error:
          description: The fatal error text perf printed, if any.
          type: str
        summary:
          description: One line with the classification and the event values or the reason.
          type: str
          sample: "pebs cpu: type=4 config=0x1cd config1=0x1f config2=0x0"
        warnings:
          description: Things to know about the chosen events.
          type: list
          elements: str
"""

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.facts import (
    Options,
    PerfFactsError,
    gather,
)


def _reader(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "perf_path": {"type": "str", "default": "perf"},
            "workload": {"type": "list", "elements": "str", "default": ["sleep", "0.2"]},
            "timeout": {"type": "float", "default": 30},
            "events": {"type": "str", "choices": ["loads", "stores", "all"], "default": "loads"},
            "pinned_events": {"type": "list", "elements": "dict"},
            "sysfs_root": {"type": "path", "default": "/sys"},
            "proc_root": {"type": "path", "default": "/proc"},
        },
        supports_check_mode=True,
    )
    params = module.params
    perf_path = params["perf_path"]
    if os.sep not in perf_path:
        perf_path = module.get_bin_path(perf_path)
    timeout_bin = module.get_bin_path("timeout")

    def run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, str, str]:
        command = list(argv)
        if timeout_bin:
            command = [timeout_bin, "--kill-after=5", f"{timeout:g}", *command]
        rc, out, err = module.run_command(command, environ_update=dict(env))
        return rc, out, err

    workdir = tempfile.mkdtemp(prefix="perf_mem_facts.")
    try:
        facts = gather(
            run,
            _reader,
            Options(
                perf_path=perf_path,
                workload=params["workload"],
                timeout=params["timeout"],
                sysfs_root=params["sysfs_root"],
                proc_root=params["proc_root"],
                kind=params["events"],
                output_path=os.path.join(workdir, "perf.data"),
                pinned_events=params["pinned_events"],
                uid=os.geteuid(),
            ),
        )
    except PerfFactsError as exc:
        module.fail_json(msg=str(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    module.exit_json(changed=False, ansible_facts={"damon_perf": facts})


if __name__ == "__main__":
    main()
