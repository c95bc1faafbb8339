#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: read and update the per-host records of a kernel rollout."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_state
short_description: Read and update the per-host records of a kernel rollout
version_added: "0.1.0"
description:
  - Keeps one JSON record per host in O(state_dir) (C(<host>.json), format 1) on the
    machine it runs on - the control node, with C(delegate_to=localhost) - the build being
    rolled out (inputs hash, release), the kernel before and after, the status, and per
    phase (install, reboot, gate, default, fallback, and for a rollback rollback,
    rollback_reboot, rollback_gate) when it started and finished, how long it took and its
    results (the gate's checks).
  - With O(state=present), applies O(values) and a phase O(event) / O(result) and writes
    the record when anything but C(updated_at) changes. The read, the update and the
    write hold an C(fcntl) lock of the host's record (C(.<host>.lock) in O(state_dir)), so
    concurrent updates are never lost; the write is atomic (a temporary file, fsync,
    rename). Records are written mode 0600; a missing O(state_dir) is created mode 0700.
    A new C(inputs_hash) in O(values) starts a new record (the old one is kept under
    C(previous)).
  - With O(state=query), returns the record of O(host) (null when none) and whether it says
    the host finished the rollout of O(inputs_hash) / O(kernel_release).
  - With O(state=list), returns every record of O(state_dir) and a report table.
  - >-
    A bad record is never skipped or half used. Every record read is checked whole (UTF-8,
    JSON, every key's type, status, phases, times, gate checks). With O(state=present) or
    O(state=query), a bad record of O(host) fails that host with a message naming the file
    and the field, for example
    C(rollout record /x/lab1.json: phases.gate.checks[0]: 5 is not an object; move the
    file aside or delete it (the host's next rollout then starts a new record)).
    With O(state=list), the task fails naming every bad file and its problem, and still
    returns the good records (RV(records), RV(rows), RV(lines)) and RV(bad_records).
    C(damon-fleet status) and C(damon-fleet report) read the records the same way
    (C(kernel.rollout_state.scan) of module_utils), list the bad ones separately with their
    problem, and exit 1.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports what would change and writes nothing.
  diff_mode:
    support: full
    details: The record before and after (JSON).
options:
  state_dir:
    description:
      - Directory of the records (created when missing).
    type: path
    required: true
  host:
    description:
      - The inventory name of the host. Required unless O(state=list).
    type: str
  state:
    description:
      - V(present) updates the record, V(query) reads one, V(list) reads all.
    type: str
    choices: [present, query, list]
    default: present
  values:
    description:
      - Top-level keys to set - inputs_hash, kernel_release, series, layout, status,
        kernel_before, kernel_after, batch, error, boot_method, boot_method_reason.
      - C(status) is one of pending, installing, installed, rebooting, gate_passed, done,
        failed, reboot_required, rolling_back, rolled_back; C(boot_method) is firmware or
        kexec (how the trial boot started the new kernel), C(boot_method_reason) why a
        kexec trial boot went through the firmware instead.
    type: dict
    default: {}
  phase:
    description:
      - The phase O(event) and O(result) apply to.
    type: str
    choices: [install, reboot, gate, default, fallback, rollback, rollback_reboot, rollback_gate]
  event:
    description:
      - V(start) stamps the phase's start (clearing an earlier run of it); V(finish) stamps
        its end and its duration in seconds.
    type: str
    choices: [start, finish]
  result:
    description:
      - Keys merged into the phase (e.g. C(passed), C(checks), C(changed)).
    type: dict
    default: {}
  inputs_hash:
    description:
      - With O(state=query), the build to compare with (C(done) in the result).
    type: str
  kernel_release:
    description:
      - With O(state=query), the release to compare with.
    type: str
seealso:
  - module: damon_fleet.fleet.kernel_install_gate
"""

EXAMPLES = r"""
- name: Record the start of the install phase
  rollout_state:
    state_dir: "{{ playbook_dir }}/../.damon-fleet/state"
    host: "{{ inventory_hostname }}"
    values:
      inputs_hash: "{{ kernel_build_result.inputs_hash }}"
      kernel_release: "{{ kernel_build_result.kernel_release }}"
      status: installing
    phase: install
    event: start
  delegate_to: localhost

- name: Print the report
  rollout_state:
    state_dir: "{{ playbook_dir }}/../.damon-fleet/state"
    state: list
  delegate_to: localhost
  register: report
"""

RETURN = r"""
record:
  description: The record after the update (V(present)) or as read (V(query)); null when
    there is none.
  returned: state is present or query
  type: dict
done:
  description: Whether the record says the host finished the rollout of O(inputs_hash) and
    O(kernel_release).
  returned: state is query
  type: bool
path:
  description: The record's file.
  returned: state is present or query
  type: str
records:
  description: Every record of O(state_dir), sorted by host.
  returned: state is list
  type: list
  elements: dict
rows:
  description: One summary row per host (kernels, status, gate checks, seconds per phase).
  returned: state is list
  type: list
  elements: dict
lines:
  description: The summary as text lines.
  returned: state is list
  type: list
  elements: str
bad_records:
  description: The files of O(state_dir) that are not usable records, each with the
    problem (the field and what is wrong with it).
  returned: state is list
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    problem:
      description: What is wrong with it.
      type: str
"""

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.rollout_state import (
    FIX,
    PHASES,
    StateError,
    apply,
    format_table,
    is_done,
    read_record,
    record_path,
    render,
    scan,
    summary_rows,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "host": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "query", "list"], "default": "present"},
            "values": {"type": "dict", "default": {}},
            "phase": {"type": "str", "choices": list(PHASES)},
            "event": {"type": "str", "choices": ["start", "finish"]},
            "result": {"type": "dict", "default": {}},
            "inputs_hash": {"type": "str"},
            "kernel_release": {"type": "str"},
        },
        required_if=[("state", "present", ("host",)), ("state", "query", ("host",))],
        supports_check_mode=True,
    )
    params = module.params
    state_dir = Path(params["state_dir"])
    if params["state"] == "list":
        records, bad = scan(state_dir, None)
        rows = summary_rows(records)
        listed: dict[str, Any] = {
            "records": records,
            "rows": rows,
            "lines": format_table(rows),
            "bad_records": [{"path": str(path), "problem": problem} for path, problem in bad],
        }
        if bad:
            names = "; ".join(f"{path}: {problem}" for path, problem in bad)
            module.fail_json(msg=f"rollout state: bad records: {names}; {FIX}", **listed)
        module.exit_json(changed=False, **listed)
    host = params["host"]
    try:
        path = record_path(state_dir, host)
        if params["state"] == "query":
            record, _ = read_record(path, host)
            done = is_done(record, params["inputs_hash"] or "", params["kernel_release"] or "")
            module.exit_json(changed=False, record=record, done=done, path=str(path))
        _old, old_text, new, changed = apply(
            state_dir,
            host,
            values=params["values"],
            phase=params["phase"],
            event=params["event"],
            result=params["result"],
            write=not module.check_mode,
        )
    except StateError as exc:
        hint = f"; {FIX}" if exc.path else ""
        module.fail_json(msg=f"rollout state: {exc}{hint}")
    except OSError as exc:
        where = exc.filename or state_dir
        module.fail_json(msg=f"rollout state: cannot write {where}: {exc.strerror or exc}")
    out: dict[str, Any] = {"changed": changed, "record": new, "path": str(path)}
    if module._diff and changed:
        out["diff"] = {
            "before": old_text,
            "after": render(new),
            "before_header": str(path),
            "after_header": str(path),
        }
    module.exit_json(**out)


if __name__ == "__main__":
    main()
