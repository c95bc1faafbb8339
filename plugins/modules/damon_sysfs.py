#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: configure DAMON kdamonds (with perf-event access check) through sysfs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: damon_sysfs
short_description: Configure DAMON kdamonds, with the perf-event access check, through sysfs
version_added: "0.1.0"
description:
  - Writes the DAMON sysfs files under C(/sys/kernel/mm/damon/admin) so that the running
    kernel monitors the given processes or physical memory, using perf events (hardware
    samples, the perf-event access check RFC series) where the kernel has them.
  - Detects the sysfs layout of the running kernel (RFC v3
    C(monitoring_attrs/sample/primitives/perf_events), RFC v1/v2 C(perf_events), the
    successor RFC C(monitoring_attrs/sample/perf_events), or mainline without perf events)
    and fails with the paths it looked for when it finds none it knows.
  - Idempotent. Reads every file first and writes only what differs, in the kernel's order
    (C(nr_*) files rebuild the numbered directories beside them, so they come before the
    values beneath them). A kdamond that is already running gets its new values with
    C(commit); one that is off is turned C(on).
  - Reads every value back and checks that each kdamond that should run has a C(pid).
  - Decides from evidence whether the perf-event access check is in effect
    (RV(perf_effective) V(yes), V(no) or V(unknown), with RV(perf_evidence)). V(yes) only
    when the kernel log has no C(perf event create on CPU N failed with E) line since the
    kdamond started (the kernel logs it when it drops an event, and with every event dropped
    silently monitors with page-table accessed bits) and C(kdamonds/<K>/total_reports) grows
    over O(evidence_window) seconds. V(no) with the failure lines or the flat counter as the
    reason. V(unknown) on a layout without C(total_reports), where the kernel log is the only
    evidence.
  - O(no_event_policy) says what to do before DAMON starts when a kdamond has no perf event
    to configure; O(fallback_policy) what to do after it started when the configured events
    are not in effect.
  - Pidfile, unit (its C(MainPID)) and process-name targets are resolved on the host without
    a shell. Values are only ever written to files below O(root).
  - The same code runs at boot without Ansible (C(damon-fleet-apply), installed by the
    C(damon_perf) role).
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reads the current values and reports the writes it would make.
  diff_mode:
    support: full
    details: The writes as C(path = value) lines, paths relative to O(root).
options:
  kdamonds:
    description:
      - The kdamonds to run, one context each (the kernel accepts at most one).
      - The same structure as the C(damon_perf_kdamonds) role input.
      - Each item has C(operations) (C(vaddr), C(fvaddr) or C(paddr)); C(targets), a list of
        C({pid}), C({pidfile}), C({unit}) or C({process}) (C(fvaddr) adds C(regions)), or of
        C({start, end}) regions for C(paddr) (none means the System RAM ranges of
        C(/proc/iomem)); C(intervals) C({sample_us, aggr_us, update_us}) in microseconds or
        as durations like C(5s); C(nr_regions) C({min, max}) with C(min >= 3); C(perf_events),
        a list of C({type, config, config1, config2, sample_freq, sample_phys_addr}) (integers
        or hex strings); and C(state) (C(on) or C(off), default C(on)).
      - An empty list removes every kdamond (after turning them off).
    type: list
    elements: dict
    required: true
  default_perf_events:
    description:
      - Perf events for kdamonds that do not list C(perf_events), normally the detected
        C(damon_perf_events) facts.
      - A kdamond with C(perf_events=[]) uses the accessed-bit check on purpose.
    type: list
    elements: dict
    default: []
  sample_freq:
    description:
      - C(sample_freq) of events that do not give one. At most
        C(/proc/sys/kernel/perf_event_max_sample_rate).
    type: int
    default: 5000
  no_event_policy:
    description:
      - What to do, before anything starts, with a kdamond that has no perf event to configure
        (none listed nor detected, or a kernel without the perf-event DAMON files).
      - V(fail) fails the task. V(accessed_bit) runs DAMON with the page-table accessed-bit
        check and warns. V(skip) leaves DAMON alone on the host.
      - Events that are configured but not in effect once DAMON runs are O(fallback_policy)'s.
    type: str
    choices: [fail, accessed_bit, skip]
    default: fail
  fallback_policy:
    description:
      - What to do when perf events are configured and DAMON runs, but the evidence says they
        are not in effect (RV(perf_effective) V(no)).
      - V(accessed_bits) keeps monitoring (where the kernel dropped every event it uses the
        page-table accessed bits) and warns with the reason. V(fail) fails the task with the
        reason; the kdamonds are left running.
      - V(unknown) never fails.
    type: str
    choices: [accessed_bits, fail]
    default: accessed_bits
  evidence_window:
    description:
      - Seconds C(kdamonds/<K>/total_reports) is watched after the settle time; it must grow
        for RV(perf_effective) to be V(yes). From 0 to 60; 0 does not watch it
        (RV(perf_effective) is then at best V(unknown)).
    type: float
    default: 3.0
  collect_evidence:
    description:
      - V(false) skips the evidence (the kernel log and the counter); RV(perf_effective) is
        then V(unknown). For a validation run that should not spend the window.
    type: bool
    default: true
  stand_in_kernels:
    description:
      - Kernel releases (C(uname -r)) built from a stand-in series (a kernel-patches manifest
        with C(stand_in) true). When the running kernel is one of them RV(perf_evidence)
        says so (C(stand_in)), and reports name it next to RV(perf_effective).
    type: list
    elements: str
    default: []
  layout:
    description:
      - The sysfs layout to expect. V(auto) uses what the running kernel has; any other value
        fails when the kernel differs.
    type: str
    choices: [auto, rfc-v3, rfc-v1, successor, mainline]
    default: auto
  settle_time:
    description:
      - Seconds to wait after C(on) or C(commit) before checking C(pid) and the kernel log
        (perf events are created by the kdamond thread once it runs).
    type: float
    default: 1.0
  root:
    description:
      - The DAMON admin directory. Every path written is below it; anything else is refused.
    type: path
    default: /sys/kernel/mm/damon/admin
  kernel_log:
    description:
      - The kernel log device read for dropped perf events.
    type: path
    default: /dev/kmsg
  boot_unit:
    description:
      - Inputs of the boot-time unit and applier the C(damon_perf) role installs, checked
        here so that a bad value fails before anything on the host changes. They are not
        used otherwise.
      - C(after_units) are checked as systemd unit names (C(prefix[@instance].suffix) of
        C([A-Za-z0-9:_.@\-]), a unit type suffix, at most 255 characters).
      - C(config_dir), C(lib_dir), C(applier_path) and C(python) must be absolute paths
        without control characters; C(python) (a C(#!) line) also without spaces.
    type: dict
    suboptions:
      after_units:
        description: Units the boot-time unit orders itself after.
        type: list
        elements: raw
        default: []
      config_dir:
        description: Where the rendered config goes.
        type: raw
      lib_dir:
        description: Where the applier's Python code goes.
        type: raw
      applier_path:
        description: The applier command.
        type: raw
      python:
        description: The applier's interpreter.
        type: raw
notes:
  - Needs root (sysfs files are mode 0600) and C(CONFIG_DAMON_SYSFS=y).
  - With several perf events per kdamond a single failure line cannot be tied to one event;
    any failure makes RV(perf_effective) V(no).
  - In check mode the evidence is read (it changes nothing) only when nothing would be
    written; otherwise RV(perf_effective) is V(unknown).
  - A kdamond that is already running and gets nothing written is judged on the kernel log
    since it started (its start time from C(/proc/<pid>/stat), with a second of slack).
  - In check mode on a host whose kdamond directories do not exist yet the layout cannot be
    seen; the module then reports only the directory writes and warns.
seealso:
  - name: DAMON sysfs interface
    description: The kernel's documentation of the files this module writes.
    link: https://docs.kernel.org/admin-guide/mm/damon/usage.html
"""

EXAMPLES = r"""
- name: Monitor memcached with the load-latency PEBS event (the RFC v3 example)
  damon_sysfs:
    kdamonds:
      - operations: vaddr
        targets:
          - unit: memcached.service
        intervals: {sample_us: 5s, aggr_us: 60s, update_us: 300s}
        nr_regions: {min: 1000000000, max: 1000000000}
        perf_events:
          - {sample_freq: 5000, sample_phys_addr: 0, type: 0x4, config: 0x1cd,
             config1: 0x1f, config2: 0}

- name: Physical memory, events from the perf_detect facts, accessed bits as a fallback
  damon_sysfs:
    kdamonds:
      - operations: paddr
    default_perf_events: "{{ ansible_facts.damon_perf.damon_perf_events }}"
    no_event_policy: accessed_bit
  register: damon

- name: Fail when the configured events do not take effect (dropped, or no sample in 5 s)
  damon_sysfs:
    kdamonds:
      - operations: paddr
        perf_events: [{type: 1, config: 0, sample_freq: 1000}]
    fallback_policy: fail
    evidence_window: 5
    stand_in_kernels: ["6.12.117-lab-perf-events-abi-0c853a0d"]

- name: Stop and remove every kdamond
  damon_sysfs:
    kdamonds: []
"""

RETURN = r"""
layout:
  description: The sysfs layout of the running kernel.
  returned: success
  type: str
  sample: rfc-v3
writes:
  description: The writes made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: list
  sample: [["kdamonds/nr_kdamonds", "1"], ["kdamonds/0/state", "on"]]
perf_effective:
  description:
    - Whether the perf-event access check is in effect, from evidence (see the description).
    - V(yes), V(no) (also when no perf event is configured) or V(unknown) (no counter in the
      layout, the kernel log unreadable, or not measured).
  returned: always
  type: str
  sample: "yes"
perf_summary:
  description:
    - RV(perf_effective) with its reason in one line, as every damon-fleet report prints it;
      a stand-in kernel is named next to the value.
  returned: always
  type: str
  sample: "no (perf event create on CPU 0 failed with -2; monitoring with accessed bits)"
perf_evidence:
  description: What RV(perf_effective) was decided from.
  returned: always
  type: dict
  contains:
    reason:
      description: The reason in words, e.g. C(total_reports stayed at 0 over 3 s).
      type: str
    failures:
      description: The failure lines found, quoted (at most 8, each at most 160 characters).
      type: list
      elements: str
    failure_count:
      description: How many failure lines were found.
      type: int
    total_reports:
      description: C(total_reports) at the start and the end of the window, per kdamond.
      type: list
      elements: dict
      sample: [{"kdamond": 0, "first": 0, "last": 1200}]
    window_s:
      description: The window in seconds; null when the counter was not watched.
      type: float
    stand_in:
      description: Whether the running kernel is one of O(stand_in_kernels).
      type: bool
    fallback:
      description: V(accessed_bits) when DAMON monitors without perf events; else null.
      type: str
  sample:
    reason: "perf event create on CPU 0 failed with -2; monitoring with accessed bits"
    failures: ["damon: perf event create on CPU 0 failed with -2"]
    failure_count: 1
    total_reports: [{"kdamond": 0, "first": 0, "last": 0}]
    window_s: 3.0
    stand_in: true
    fallback: accessed_bits
perf_failures:
  description: The C(perf event create on CPU N failed with E) lines found, parsed.
  returned: always
  type: list
  elements: dict
  sample: [{"cpu": 0, "error": "-95"}]
kdamonds:
  description: State and pid of each kdamond after the run.
  returned: success
  type: list
  elements: dict
  sample: [{"index": 0, "state": "on", "pid": 4242}]
skipped:
  description:
    - True when DAMON was left alone (or stopped) under O(no_event_policy=skip); Ansible then
      reports the task as skipped.
    - Left out otherwise, because Ansible ignores C(changed_when) and C(failed_when) on any
      result that has a C(skipped) key.
  returned: when true
  type: bool
  sample: true
warnings:
  description: What was stopped, fallen back (with the RV(perf_effective) reason) or not checked.
  returned: always
  type: list
  elements: str
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    HostResolver,
    KmsgLog,
    RealSysfs,
    host_max_sample_rate,
    running_release,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    ApplyError,
    apply_spec,
    evidence_settings,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import (
    LayoutError,
    PlanError,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    LAYOUT_CHOICES,
    SpecError,
    check_boot_unit,
    parse_spec,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "kdamonds": {"type": "list", "elements": "dict", "required": True},
    "default_perf_events": {"type": "list", "elements": "dict", "default": []},
    "sample_freq": {"type": "int", "default": 5000},
    "no_event_policy": {
        "type": "str",
        "choices": ["fail", "accessed_bit", "skip"],
        "default": "fail",
    },
    "layout": {
        "type": "str",
        "choices": list(LAYOUT_CHOICES),  # damon.plan.LAYOUTS and auto
        "default": "auto",
    },
    "fallback_policy": {
        "type": "str",
        "choices": ["accessed_bits", "fail"],
        "default": "accessed_bits",
    },
    "evidence_window": {"type": "float", "default": 3.0},
    "collect_evidence": {"type": "bool", "default": True},
    "stand_in_kernels": {"type": "list", "elements": "str", "default": []},
    "settle_time": {"type": "float", "default": 1.0},
    "root": {"type": "path", "default": "/sys/kernel/mm/damon/admin"},
    "kernel_log": {"type": "path", "default": "/dev/kmsg"},
    "boot_unit": {
        "type": "dict",
        "options": {
            "after_units": {"type": "list", "elements": "raw", "default": []},
            "config_dir": {"type": "raw"},
            "lib_dir": {"type": "raw"},
            "applier_path": {"type": "raw"},
            "python": {"type": "raw"},
        },
    },
}


def _drop_false_skipped(out: dict[str, Any]) -> None:
    """Ansible takes a result with any ``skipped`` key as a skipped task and then ignores
    ``changed_when``/``failed_when``: report ``skipped`` only when it is true."""
    if not out.get("skipped"):
        out.pop("skipped", None)


def _sleep(seconds: float) -> None:
    """The settle time and the evidence window (replaced in unit tests)."""
    time.sleep(seconds)


def run(module: AnsibleModule) -> None:
    """Map the typed errors of module_utils to fail_json, in one place."""
    params = module.params
    try:
        if params["boot_unit"] is not None:
            check_boot_unit(params["boot_unit"])
        spec = parse_spec(
            params["kdamonds"],
            params["no_event_policy"],
            params["default_perf_events"],
            params["sample_freq"],
        )
        evidence = evidence_settings(
            params["evidence_window"],
            params["fallback_policy"],
            params["stand_in_kernels"],
            running_release(),
            params["collect_evidence"],
        )
        result = apply_spec(
            spec,
            RealSysfs(params["root"]),
            params["root"],
            KmsgLog(params["kernel_log"]),
            HostResolver(),
            check_mode=module.check_mode,
            layout=params["layout"],
            max_sample_rate=host_max_sample_rate(),
            settle_time=params["settle_time"],
            sleep=_sleep,
            evidence=evidence,
        )
    except SpecError as err:
        module.fail_json(msg=f"invalid input: {err}", problems=err.problems)
    except (PlanError, LayoutError) as err:
        module.fail_json(msg=str(err))
    except ApplyError as err:
        partial = err.result.as_dict() if err.result is not None else {}
        partial.pop("diff", None)
        _warn(module, partial)
        _drop_false_skipped(partial)
        module.fail_json(msg=str(err), **partial)
    else:
        out = result.as_dict()
        diff = out.pop("diff")
        _warn(module, out)
        _drop_false_skipped(out)
        if module._diff:
            out["diff"] = diff
        module.exit_json(**out)


def _warn(module: AnsibleModule, out: dict[str, Any]) -> None:
    """Turn ``out["warnings"]`` into task warnings with ``module.warn`` (Ansible returns
    them in the result's ``warnings``; passing them to exit_json is deprecated)."""
    for warning in out.pop("warnings", None) or []:
        module.warn(str(warning))


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
