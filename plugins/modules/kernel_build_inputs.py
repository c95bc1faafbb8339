#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: refuse kernel_build inputs that would reach git, make or b4 as options."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_build_inputs
short_description: Validate the kernel_build role's inputs before anything runs
version_added: "0.1.0"
description:
  - Checks every role input that reaches a command line or a path - git URLs and refs,
    make targets, ARCH, the series name, the Debian source package, config override lines -
    and, when given, the series manifest (format 1).
  - Fails with one line naming the first bad input, the value and what is accepted; a git
    URL or make target that starts with C(-) (an option such as C(--upload-pack) or
    C(--eval)) or a series name that leaves C(kernel-patches/) never reaches a command.
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
  series:
    description:
      - The series folder name (role input C(kernel_build_series)), or V(none).
    type: str
  base_git_url:
    description:
      - Git URL of the base tree (C(kernel_build_base_git_url)); empty for none.
    type: str
    default: ""
  base_git_ref:
    description:
      - Branch, tag or commit of the base tree (C(kernel_build_base_git_ref)); empty for none.
    type: str
    default: ""
  base_package:
    description:
      - Debian source package (C(kernel_build_base_package)); empty for none.
    type: str
    default: ""
  base_tarball:
    description:
      - Tarball on the builder (C(kernel_build_base_tarball)); empty or an absolute path.
    type: str
    default: ""
  config_target:
    description:
      - Make config target (C(kernel_build_config_target)).
    type: str
  config_make_targets:
    description:
      - Extra make targets (C(kernel_build_config_make_targets)).
    type: list
    elements: str
    default: []
  config_overrides:
    description:
      - Config lines merged last (C(kernel_build_config_overrides)).
    type: list
    elements: str
    default: []
  arch:
    description:
      - ARCH= for make (C(kernel_build_arch)); empty for the builder's.
    type: str
    default: ""
  manifest:
    description:
      - The series manifest (the parsed C(manifest.yml)) to validate, with O(series) as its
        folder name.
    type: raw
seealso:
  - module: damon_fleet.fleet.kernel_series_check
"""

EXAMPLES = r"""
- name: Refuse hostile or malformed inputs before anything runs
  kernel_build_inputs:
    series: "{{ kernel_build_series }}"
    base_git_url: "{{ kernel_build_base_git_url }}"
    base_git_ref: "{{ kernel_build_base_git_ref }}"
    config_target: "{{ kernel_build_config_target }}"
    config_make_targets: "{{ kernel_build_config_make_targets }}"
    arch: "{{ kernel_build_arch }}"
"""

RETURN = r"""
series:
  description: The series name that was checked.
  returned: success
  type: str
"""

from collections.abc import Callable, Mapping

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import (
    SeriesError,
    check_arch,
    check_config_line,
    check_git_ref,
    check_git_url,
    check_make_target,
    check_package_name,
    check_series_name,
    load_manifest,
    shown,
)

Check = Callable[[str, object], str]


def _optional(check: Check) -> Check:
    def run(name: str, value: object) -> str:
        return "" if value == "" else check(name, value)

    return run


def _absolute(name: str, value: object) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        raise SeriesError(f"{name}: {shown(value)} is not accepted (an absolute path)")
    return value


# option -> (role input named in errors, check)
SCALARS: dict[str, tuple[str, Check]] = {
    "series": ("kernel_build_series", check_series_name),
    "base_git_url": ("kernel_build_base_git_url", _optional(check_git_url)),
    "base_git_ref": ("kernel_build_base_git_ref", _optional(check_git_ref)),
    "base_package": ("kernel_build_base_package", check_package_name),
    "base_tarball": ("kernel_build_base_tarball", _absolute),
    "config_target": ("kernel_build_config_target", check_make_target),
    "arch": ("kernel_build_arch", check_arch),
}
LISTS: dict[str, tuple[str, Check]] = {
    "config_make_targets": ("kernel_build_config_make_targets", check_make_target),
    "config_overrides": ("kernel_build_config_overrides", check_config_line),
}


def validate(params: Mapping[str, object]) -> None:
    """Raise :class:`SeriesError` for the first bad input, naming the role input."""
    for option, (name, check) in SCALARS.items():
        if params.get(option) is not None:
            check(name, params[option])
    for option, (name, check) in LISTS.items():
        items = params.get(option)
        for index, item in enumerate(items if isinstance(items, list) else []):
            check(f"{name}[{index}]", item)
    manifest = params.get("manifest")
    series = params.get("series")
    if manifest is not None and isinstance(series, str):
        try:
            load_manifest(manifest, series)
        except SeriesError as exc:
            raise SeriesError(f"kernel-patches/{series}/manifest.yml: {exc}", exc.errors) from exc


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "series": {"type": "str"},
            "base_git_url": {"type": "str", "default": ""},
            "base_git_ref": {"type": "str", "default": ""},
            "base_package": {"type": "str", "default": ""},
            "base_tarball": {"type": "str", "default": ""},
            "config_target": {"type": "str"},
            "config_make_targets": {"type": "list", "elements": "str", "default": []},
            "config_overrides": {"type": "list", "elements": "str", "default": []},
            "arch": {"type": "str", "default": ""},
            "manifest": {"type": "raw"},
        },
        supports_check_mode=True,
    )
    try:
        validate(module.params)
    except SeriesError as exc:
        module.fail_json(msg=f"kernel_build: {exc}", errors=exc.errors)
    module.exit_json(changed=False, series=module.params["series"])


if __name__ == "__main__":
    main()
