#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: hash a kernel build's inputs, tell whether it is built, record it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_build_manifest
short_description: Hash a kernel build's inputs, tell whether it is already built, record it
version_added: "0.1.0"
description:
  - Computes the inputs hash of a kernel build - the sha256 of the canonical JSON of
    O(inputs) plus the sha256 of every file in O(input_files) - and from it the build
    directory (C(<builds_dir>/<first 16 hex digits>)) and the C(LOCALVERSION)
    (C(-<name>-<first 8 hex digits>)).
  - With O(state=query), reads C(manifest.json) of that build directory and reports whether
    the build is current (same inputs hash, every recorded package present with its sha256),
    so an unchanged build is skipped.
  - With O(state=present), after a build, hashes the C(.config) and every package matching
    O(package_patterns) in the build directory and writes C(manifest.json) (atomically).
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: O(state=present) reports whether the manifest would change and writes nothing.
  diff_mode:
    support: full
    details: O(state=present) shows the manifest before and after.
options:
  state:
    description:
      - V(query) computes the hash and reads the manifest; V(present) writes it.
    type: str
    choices: [query, present]
    default: query
  builds_dir:
    description:
      - Directory holding one directory per build.
    type: path
    required: true
  name:
    description:
      - The name in the C(LOCALVERSION) (the series name, or C(base)). Lower-case letters,
        digits, C(.), C(+), C(-); at most 40 characters.
    type: str
    required: true
  inputs:
    description:
      - Every build input that is not a file (base tree identity, series pins, config
        targets, options, make targets...). Any JSON-serializable mapping.
    type: dict
    required: true
  input_files:
    description:
      - Files whose content is an input (tarball, fragments, config), as label -> path. Only
        the sha256 goes into the hash, so moving a file does not change it.
    type: dict
    default: {}
  kernel_release:
    description:
      - The built kernel's release (C(make -s kernelrelease)). Required with O(state=present).
    type: str
  config_path:
    description:
      - The final C(.config). Required with O(state=present).
    type: path
  required:
    description:
      - The options that were checked in the C(.config), recorded in the manifest.
    type: list
    elements: str
    default: []
  package_patterns:
    description:
      - Shell patterns of the package files in the build directory.
    type: list
    elements: str
    default: ["*.deb", "*.rpm"]
  started:
    description:
      - When the build started (seconds since the epoch), to record the build time.
    type: float
  build:
    description:
      - Free-form facts about the build to record (builder, jobs, ccache, make targets...).
    type: dict
    default: {}
seealso:
  - module: damon_fleet.fleet.kernel_series_check
  - module: damon_fleet.fleet.kernel_config_check
"""

EXAMPLES = r"""
- name: Is this build already done?
  kernel_build_manifest:
    builds_dir: /root/.cache/damon-fleet/builds
    name: lab-perf-events-abi
    inputs: {recipe: 1, base: {type: tarball}, config: {target: tinyconfig}}
    input_files: {tarball: /usr/src/linux-source-6.12.tar.xz}
  register: plan

- name: Record the build
  kernel_build_manifest:
    state: present
    builds_dir: /root/.cache/damon-fleet/builds
    name: lab-perf-events-abi
    inputs: {recipe: 1, base: {type: tarball}, config: {target: tinyconfig}}
    input_files: {tarball: /usr/src/linux-source-6.12.tar.xz}
    kernel_release: "6.12.117{{ plan.localversion }}"
    config_path: "{{ plan.build_dir }}/src/.config"
  when: not plan.current
"""

RETURN = r"""
inputs_hash:
  description: sha256 of every input.
  returned: success
  type: str
localversion:
  description: The C(LOCALVERSION) to build with.
  returned: success
  type: str
  sample: -lab-perf-events-abi-1a2b3c4d
build_dir:
  description: The build directory (packages, C(manifest.json), C(build.log), C(src/)).
  returned: success
  type: str
manifest_path:
  description: Path of C(manifest.json).
  returned: success
  type: str
current:
  description: Whether a successful build of exactly these inputs is recorded and intact.
  returned: success
  type: bool
reason:
  description: Why the build is (not) current.
  returned: success
  type: str
  sample: inputs changed
inputs:
  description: O(inputs) with C(files) (label -> sha256) added; what was hashed.
  returned: success
  type: dict
manifest:
  description: The build manifest (the recorded one for V(query), null if none; the new one
    for V(present)).
  returned: success
  type: dict
"""

import glob
import hashlib
import os
import tempfile
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import (
    SeriesError,
    build_is_current,
    inputs_hash,
    localversion,
    new_build_manifest,
    parse_build_manifest,
    render_build_manifest,
)


def _sha256_file(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _read_manifest(path: str) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(manifest, text, why it is corrupt): a corrupt cache entry is rebuilt, not fatal."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, None, None
    except OSError as exc:
        return None, None, f"cannot read it: {exc.strerror}"
    text = raw.decode("utf-8", errors="replace")
    try:
        return parse_build_manifest(text), text, None
    except SeriesError as exc:
        return None, text, str(exc)
    except RecursionError:
        return None, text, "build manifest: nested too deeply"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["query", "present"], "default": "query"},
            "builds_dir": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
            "inputs": {"type": "dict", "required": True},
            "input_files": {"type": "dict", "default": {}},
            "kernel_release": {"type": "str"},
            "config_path": {"type": "path"},
            "required": {"type": "list", "elements": "str", "default": []},
            "package_patterns": {"type": "list", "elements": "str", "default": ["*.deb", "*.rpm"]},
            "started": {"type": "float"},
            "build": {"type": "dict", "default": {}},
        },
        required_if=[("state", "present", ("kernel_release", "config_path"))],
        supports_check_mode=True,
    )
    params = module.params
    files: dict[str, str] = {}
    for label, path in sorted(params["input_files"].items()):
        file_digest = _sha256_file(os.path.expanduser(str(path)))
        if file_digest is None:
            module.fail_json(msg=f"input file {label!r} ({path}) cannot be read")
        files[str(label)] = str(file_digest)
    inputs = dict(params["inputs"])
    inputs["files"] = files
    try:
        digest = inputs_hash(inputs)
        version = localversion(params["name"], digest)
    except (SeriesError, TypeError, ValueError) as exc:
        module.fail_json(msg=f"cannot hash the build inputs: {exc}")
    build_dir = os.path.join(params["builds_dir"], digest[:16])
    manifest_path = os.path.join(build_dir, "manifest.json")
    old, old_text, corrupt = _read_manifest(manifest_path)
    current, reason = build_is_current(
        old, digest, lambda name: _sha256_file(os.path.join(build_dir, name))
    )
    if corrupt is not None:
        reason = f"the cached build manifest {manifest_path} is corrupt ({corrupt}): rebuilding"
        module.warn(reason)
    result: dict[str, Any] = {
        "inputs_hash": digest,
        "localversion": version,
        "build_dir": build_dir,
        "manifest_path": manifest_path,
        "inputs": inputs,
    }
    if params["state"] == "query":
        module.exit_json(changed=False, current=current, reason=reason, manifest=old, **result)

    packages = []
    for pattern in params["package_patterns"]:
        for path in sorted(glob.glob(os.path.join(build_dir, pattern))):
            packages.append(
                {
                    "file": os.path.basename(path),
                    "format": os.path.splitext(path)[1].lstrip("."),
                    "sha256": _sha256_file(path),
                    "size": os.path.getsize(path),
                }
            )
    if not packages:
        module.fail_json(
            msg=f"no package matching {params['package_patterns']} in {build_dir}", **result
        )
    config_sha = _sha256_file(params["config_path"])
    if config_sha is None:
        module.fail_json(msg=f"cannot read the config {params['config_path']}", **result)
    started = params["started"]
    now = time.time()
    manifest = new_build_manifest(
        inputs=inputs,
        digest=digest,
        localversion_value=version,
        kernel_release=params["kernel_release"],
        config_sha256=str(config_sha),
        required=params["required"],
        packages=packages,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        build_seconds=None if started is None else now - started,
        build=params["build"],
    )
    if old is not None and old.get("inputs_hash") == digest and current:
        # Same inputs, same packages: keep the recorded build (and its build time).
        module.exit_json(changed=False, current=True, reason=reason, manifest=old, **result)
    text = render_build_manifest(manifest)
    if not module.check_mode:
        os.makedirs(build_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=build_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, manifest_path)
    out: dict[str, Any] = {
        "changed": True,
        "current": True,
        "reason": "recorded",
        "manifest": manifest,
        **result,
    }
    if module._diff:
        out["diff"] = {
            "before": old_text or "",
            "after": text,
            "before_header": manifest_path,
            "after_header": manifest_path,
        }
    module.exit_json(**out)


if __name__ == "__main__":
    main()
