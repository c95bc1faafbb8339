#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: validate a kernel patch series and verify its mbox against the pins."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_series_check
short_description: Validate a kernel patch series folder and verify its mbox pins
version_added: "0.1.0"
description:
  - Loads C(manifest.yml) of a series folder (C(kernel-patches/<name>/), format 1 as
    documented in C(kernel-patches/README.md)) and validates it. Every error names the key
    and what is accepted; unknown keys are errors.
  - Verifies the mbox that will be applied before anything is applied - its sha256 against
    C(pins.mbox_sha256), its patch subjects against C(patches[].subject) in order, and, when
    O(patch_ids=true) and git is available, C(git patch-id --stable) against
    C(patches[].patch_id).
  - A series whose pins are null (a fetched series before its first review; for a C(git)
    base also C(base.commit)) is refused unless O(allow_unpinned=true); the message names
    the manifest, the mbox to review and the values to pin, and the result carries them.
  - A pinned value that does not match fails whatever O(allow_unpinned) says; a patch whose
    C(git patch-id) differs is named by its subject.
  - Changes nothing.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Read-only; runs the same way in check mode.
  diff_mode:
    support: none
options:
  path:
    description:
      - The series folder (holding C(manifest.yml)) or the manifest file itself.
    type: path
    required: true
  mbox:
    description:
      - The mbox to verify instead of the one the manifest names. Required for C(source.type)
        V(b4) (the mbox C(b4 am) wrote); for V(mbox) it overrides C(source.path).
    type: path
  patch_ids:
    description:
      - Compare C(git patch-id --stable) of each patch with C(patches[].patch_id). Skipped
        with a warning when git is not installed.
    type: bool
    default: true
  allow_unpinned:
    description:
      - Accept null C(pins.mbox_sha256), C(patch_id) and (with O(pin_base)) C(base.commit)
        values (report them instead). Without it, an unpinned series fails with a message
        naming the manifest, the mbox to review and the values to pin.
    type: bool
    default: false
  pin_base:
    description:
      - Count a null C(base.commit) of a C(git) base as unpinned. Set V(false) when the
        build takes its base tree from elsewhere than the manifest.
    type: bool
    default: true
notes:
  - Relative paths in the manifest are relative to the series folder.
seealso:
  - module: damon_fleet.fleet.kernel_series_apply
  - module: damon_fleet.fleet.kernel_build_manifest
"""

EXAMPLES = r"""
- name: Verify the lab series before anything is applied
  kernel_series_check:
    path: "{{ playbook_dir }}/../kernel-patches/lab-perf-events-abi"
  register: series

- name: Verify a b4-fetched series
  kernel_series_check:
    path: kernel-patches/damon-perf-rfc-v3
    mbox: /var/cache/damon-fleet/fetch/damon-perf-rfc-v3.mbx
    allow_unpinned: true
"""

RETURN = r"""
name:
  description: The series name (its folder name).
  returned: success
  type: str
  sample: lab-perf-events-abi
layout:
  description: The DAMON sysfs layout a kernel with the series has.
  returned: success
  type: str
  sample: rfc-v3
stand_in:
  description: Whether the series is a stand-in (files present, no effect).
  returned: success
  type: bool
source_type:
  description: C(bundled), C(mbox) or C(b4).
  returned: success
  type: str
base:
  description: The manifest's C(base) mapping (the tree the series applies to).
  returned: success
  type: dict
  sample:
    type: debian-package
    package: linux-source-6.12
    tarball: /usr/src/linux-source-6.12.tar.xz
mbox:
  description: Absolute path of the verified mbox.
  returned: success
  type: str
mbox_sha256:
  description: sha256 of the mbox.
  returned: success
  type: str
subjects:
  description: Patch subjects of the mbox in C(git am) order.
  returned: success
  type: list
  elements: str
patch_ids:
  description: C(git patch-id --stable) of each patch; null when not computed.
  returned: success
  type: list
  elements: str
pinned:
  description: Whether the manifest pins the sha256, every patch id and (with O(pin_base))
    a git base's commit.
  returned: success
  type: bool
manifest_sha256:
  description: sha256 of C(manifest.yml).
  returned: success
  type: str
fragment:
  description: Absolute path of the series' config fragment.
  returned: success
  type: str
fragment_sha256:
  description: sha256 of the config fragment.
  returned: success
  type: str
required:
  description: The C(CONFIG_*) options that must be C(=y) in the final C(.config).
  returned: success
  type: list
  elements: str
  sample: [CONFIG_DAMON, CONFIG_DAMON_SYSFS]
unpinned:
  description: The manifest keys that are null (C(pins.mbox_sha256), C(patches[0].patch_id),
    C(base.commit)...); empty when pinned.
  returned: success, and on failure when the series is not pinned
  type: list
  elements: str
errors:
  description: Every problem found (on failure).
  returned: failure
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import (
    SeriesError,
    load_manifest,
    parse_patch_ids,
    sha256_hex,
    unpinned_keys,
    unpinned_message,
    verify_mbox,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "mbox": {"type": "path"},
            "patch_ids": {"type": "bool", "default": True},
            "allow_unpinned": {"type": "bool", "default": False},
            "pin_base": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg="kernel_series_check needs PyYAML on the target")
    path = os.path.abspath(module.params["path"])
    manifest_path = os.path.join(path, "manifest.yml") if os.path.isdir(path) else path
    directory = os.path.dirname(manifest_path)
    name = os.path.basename(directory)
    try:
        raw = _read(manifest_path)
    except OSError as exc:
        module.fail_json(msg=f"series {name!r}: cannot read {manifest_path}: {exc.strerror}")
    try:
        manifest = load_manifest(
            yaml.safe_load(raw), name, lambda rel: os.path.isfile(os.path.join(directory, rel))
        )
    except yaml.YAMLError as exc:
        module.fail_json(msg=f"series {name!r}: {manifest_path} is not YAML: {exc}")
    except SeriesError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors)

    source = manifest["source"]
    mbox = module.params["mbox"]
    if mbox is None:
        if source["type"] == "b4":
            module.fail_json(
                msg=f"series {name!r} is fetched with b4 (Message-ID {source['message_id']}):"
                " pass the mbox `b4 am` wrote as mbox"
            )
        mbox = os.path.join(directory, source["path"])
    mbox = os.path.abspath(mbox)
    try:
        data = _read(mbox)
    except OSError as exc:
        module.fail_json(msg=f"series {name!r}: cannot read the mbox {mbox}: {exc.strerror}")

    patch_ids = None
    git = module.get_bin_path("git") if module.params["patch_ids"] else None
    if module.params["patch_ids"] and git is None:
        module.warn("git not found: patch ids not checked")
    if git is not None:

        def patch_ids(mbox_data: bytes) -> list[str]:
            rc, out, err = module.run_command(
                [git, "patch-id", "--stable"],
                data=mbox_data,
                binary_data=True,
                check_rc=False,
            )
            if rc != 0:
                raise SeriesError(f"git patch-id failed ({rc}): {err.strip()}")
            ids: list[str] = parse_patch_ids(str(out))
            return ids

    # Null pins are accepted here and judged below: a pinned value that does not match
    # fails first, whatever allow_unpinned says.
    try:
        report = verify_mbox(data, manifest, patch_ids, allow_unpinned=True)
    except SeriesError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors, mbox=mbox, mbox_sha256=sha256_hex(data))
    unpinned = unpinned_keys(manifest, module.params["pin_base"])
    if unpinned:
        message = unpinned_message(manifest, manifest_path, mbox, report, unpinned)
        if not module.params["allow_unpinned"]:
            module.fail_json(
                msg=message,
                errors=[f"{key} is null" for key in unpinned],
                unpinned=unpinned,
                mbox=mbox,
                mbox_sha256=report.sha256,
                patch_ids=report.patch_ids,
            )
        module.warn(message)
    fragment = os.path.join(directory, manifest["config"]["fragment"])
    module.exit_json(
        changed=False,
        name=manifest["name"],
        layout=manifest["layout"],
        stand_in=manifest["stand_in"],
        source_type=source["type"],
        base=manifest["base"],
        mbox=mbox,
        mbox_sha256=report.sha256,
        subjects=report.subjects,
        patch_ids=report.patch_ids,
        pinned=not unpinned,
        unpinned=unpinned,
        manifest_sha256=sha256_hex(raw),
        fragment=fragment,
        fragment_sha256=sha256_hex(_read(fragment)),
        required=list(manifest["config"]["required"]),
    )


if __name__ == "__main__":
    main()
