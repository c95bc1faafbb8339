#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: install the boot-time DAMON applier (files, directories, unit) in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: damon_applier
short_description: Install the boot-time DAMON applier, its configuration and its unit in one run
version_added: "0.1.0"
description:
  - Installs a set of files given with their content (rendered on the controller), and the
    directories they go in, in one module run instead of one task per file.
  - Idempotent. Compares each file with what is on the host (content, mode, owner and group)
    and writes only the files that differ, each atomically (a temporary file beside it, then
    a rename). Creates missing directories and fixes their mode, owner and group.
  - With O(unit_file), the systemd unit among O(files) - after it changed, runs
    C(systemctl daemon-reload); then enables the unit unless C(systemctl is-enabled) says
    V(enabled). It never starts or restarts the unit.
  - Every input is checked before anything is written.
  - The C(damon_perf) role ships the C(damon-fleet-apply) command, the shared Python code it
    runs, the rendered configuration and the oneshot unit with it.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Compares everything and reports what would be written, created or enabled.
  diff_mode:
    support: full
    details: One entry per file or directory that differs (the old and new content).
options:
  files:
    description:
      - The files to install, in order. Each has C(path) (absolute, without control characters
        or C(.)/C(..) parts), C(content) (the text of the file, written as UTF-8 exactly as
        given) and C(mode) (an octal string such as C("0644")).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the file.
        type: str
        required: true
      content:
        description: The text of the file.
        type: str
        required: true
      mode:
        description: Octal mode string, such as C("0644").
        type: str
        required: true
  directories:
    description:
      - Directories to create (with their missing parents) before the files, each C(path)
        and C(mode).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: str
        required: true
      mode:
        description: Octal mode string, such as C("0755").
        type: str
        required: true
  owner:
    description: Owner of every file and directory (a user name).
    type: str
    default: root
  group:
    description: Group of every file and directory (a group name).
    type: str
    default: root
  unit_file:
    description:
      - The path, among O(files), of a systemd unit file; its base name is the unit name.
      - When the file changed, C(systemctl daemon-reload) runs; the unit is enabled when it
        is not.
    type: str
notes:
  - Needs root to install under C(/etc) and C(/usr/local) and to set the owner.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Install an applier command, its configuration and its unit
  damon_applier:
    directories:
      - {path: /etc/damon-fleet, mode: "0755"}
    files:
      - path: /usr/local/sbin/damon-fleet-apply
        content: "{{ lookup('ansible.builtin.template', 'damon-fleet-apply.j2') }}"
        mode: "0755"
      - path: /etc/damon-fleet/damon.yml
        content: "{{ lookup('ansible.builtin.template', 'damon.yml.j2') }}"
        mode: "0644"
      - path: /etc/systemd/system/damon-fleet-apply.service
        content: "{{ lookup('ansible.builtin.template', 'damon-fleet-apply.service.j2') }}"
        mode: "0644"
    unit_file: /etc/systemd/system/damon-fleet-apply.service
  register: applier
"""

RETURN = r"""
files:
  description: Every file and directory, in order, with what differed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path.
      type: str
    kind:
      description: V(file) or V(directory).
      type: str
    changed:
      description: Whether it was (in check mode, would be) created or changed.
      type: bool
    created:
      description: Whether it did not exist.
      type: bool
    reasons:
      description: What differed on an existing path (V(content), V(mode), V(owner), V(group)).
      type: list
      elements: str
  sample:
    - {path: /etc/damon-fleet/damon.yml, kind: file, changed: true, created: false,
       reasons: [content]}
changed_files:
  description: The paths that were (in check mode, would be) created or changed.
  returned: always
  type: list
  elements: str
  sample: [/etc/damon-fleet/damon.yml]
daemon_reload:
  description: Whether C(systemctl daemon-reload) ran (in check mode, would run).
  returned: always
  type: bool
  sample: false
enabled:
  description: Whether the unit was (in check mode, would be) enabled by this run.
  returned: always
  type: bool
  sample: false
"""

import grp
import hashlib
import pwd
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.install import (
    InstallError,
    install,
    parse_wanted,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    SpecError,
    check_unit_name,
)

_FILE = {
    "path": {"type": "str", "required": True},
    "content": {"type": "str", "required": True},
    "mode": {"type": "str", "required": True},
}
_DIR = {
    "path": {"type": "str", "required": True},
    "mode": {"type": "str", "required": True},
}
ARGUMENT_SPEC: dict[str, Any] = {
    "files": {"type": "list", "elements": "dict", "required": True, "options": _FILE},
    "directories": {"type": "list", "elements": "dict", "default": [], "options": _DIR},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "unit_file": {"type": "str"},
}


def _ids(owner: str, group: str) -> tuple[int, int]:
    problems = []
    uid = gid = -1
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        problems.append(f"owner: no user {owner!r} on this host")
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        problems.append(f"group: no group {group!r} on this host")
    if problems:
        raise SpecError(problems)
    return uid, gid


def _unit_name(params: dict[str, Any]) -> str | None:
    path = params["unit_file"]
    if path is None:
        return None
    if path not in [f["path"] for f in params["files"]]:
        raise SpecError([f"unit_file: {path!r} is not among the files' paths"])
    name: str = check_unit_name(path.rsplit("/", 1)[-1], "unit_file")
    return name


def _invocation(params: dict[str, Any]) -> dict[str, Any]:
    """The module arguments echoed in the result, each file's content as its size and
    digest: the contents are on the controller already, and echoing them would double
    what goes back over the connection."""
    args = dict(params)
    args["files"] = [
        dict(
            item,
            content=(
                f"({len(str(item['content']).encode('utf-8'))} bytes, sha256 "
                f"{hashlib.sha256(str(item['content']).encode('utf-8')).hexdigest()})"
            ),
        )
        for item in params["files"] or []
    ]
    return {"module_args": args}


def _systemctl(module: AnsibleModule, *args: str) -> tuple[int, str, str]:
    rc, out, err = module.run_command(["systemctl", *args])
    return rc, str(out), str(err)


def run(module: AnsibleModule) -> None:
    """Check every input, install, then reload and enable the unit; typed errors to fail_json."""
    params = module.params
    invocation = _invocation(params)
    try:
        dirs, files = parse_wanted(params["directories"], params["files"])
        unit = _unit_name(params)
        uid, gid = _ids(params["owner"], params["group"])
        changes = install(dirs, files, uid, gid, module.check_mode)
    except SpecError as err:
        module.fail_json(msg=f"invalid input: {err}", problems=err.problems, invocation=invocation)
    except InstallError as err:
        module.fail_json(msg=str(err), invocation=invocation)
    changed_paths = [c.path for c in changes if c.changed]
    out: dict[str, Any] = {
        "files": [c.as_dict() for c in changes],
        "changed_files": changed_paths,
        "daemon_reload": False,
        "enabled": False,
        "invocation": invocation,
    }
    if unit is not None:
        if params["unit_file"] in changed_paths:
            out["daemon_reload"] = True
            if not module.check_mode:
                rc, _out, stderr = _systemctl(module, "daemon-reload")
                if rc != 0:
                    module.fail_json(msg=f"systemctl daemon-reload failed: {stderr.strip()}", **out)
        _rc, state, _err = _systemctl(module, "is-enabled", "--", unit)
        if state.strip() != "enabled":
            out["enabled"] = True
            if not module.check_mode:
                rc, _out, stderr = _systemctl(module, "enable", "--", unit)
                if rc != 0:
                    module.fail_json(msg=f"systemctl enable {unit} failed: {stderr.strip()}", **out)
    out["changed"] = bool(changed_paths) or out["enabled"]
    if module._diff:
        out["diff"] = [c.diff() for c in changes if c.changed]
    module.exit_json(**out)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
