#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: check that required options survived in a kernel ``.config``."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_config_check
short_description: Check that every required option is =y in a kernel .config
version_added: "0.1.0"
description:
  - Reads a kernel C(.config) (after C(make olddefconfig)) and checks that every option in
    O(required) is C(=y). Kconfig silently drops an option whose dependencies are missing;
    this module turns that into a failure that names each dropped option and what it is
    instead (C(n), C(m), C(unset), ...).
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
      - The C(.config) file.
    type: path
    required: true
  required:
    description:
      - Options that must be C(=y), with or without the C(CONFIG_) prefix.
    type: list
    elements: str
    default: []
  fail_on_dropped:
    description:
      - Fail when an option is dropped. With V(false), report it in RV(dropped) only.
    type: bool
    default: true
seealso:
  - name: merge_config.sh
    description: Merges config fragments into a kernel .config.
    link: https://docs.kernel.org/kbuild/kconfig.html
"""

EXAMPLES = r"""
- name: Check the options the series needs
  kernel_config_check:
    path: /root/.cache/damon-fleet/builds/0123456789abcdef/src/.config
    required: [CONFIG_DAMON, CONFIG_DAMON_SYSFS, CONFIG_PERF_EVENTS]
"""

RETURN = r"""
config_sha256:
  description: sha256 of the C(.config).
  returned: success
  type: str
dropped:
  description: Required options that are not C(=y), with their value.
  returned: always
  type: list
  elements: dict
  sample: [{option: CONFIG_DAMON_SYSFS, value: unset}]
values:
  description: The value of each required option in the C(.config) (C(unset) when absent).
  returned: success
  type: dict
  sample: {CONFIG_DAMON: y, CONFIG_DAMON_SYSFS: y}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import (
    SeriesError,
    dropped_message,
    dropped_options,
    normalize_option,
    parse_kconfig,
    sha256_hex,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "required": {"type": "list", "elements": "str", "default": []},
            "fail_on_dropped": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc.strerror}", dropped=[])
    text = raw.decode("utf-8", errors="replace")
    try:
        required = [normalize_option(o) for o in module.params["required"]]
        dropped = dropped_options(text, required)
    except SeriesError as exc:
        module.fail_json(msg=str(exc), dropped=[])
    parsed = parse_kconfig(text)
    values = {option: parsed.get(option, "unset") for option in required}
    result = {"config_sha256": sha256_hex(raw), "dropped": dropped, "values": values}
    if dropped and module.params["fail_on_dropped"]:
        module.fail_json(msg=f"{path}: {dropped_message(dropped)}", **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
