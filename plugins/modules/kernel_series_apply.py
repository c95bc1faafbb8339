#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: apply a verified patch series to a kernel git tree with ``git am -3``."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_series_apply
short_description: Apply a kernel patch series with git am -3, naming the patch that fails
version_added: "0.1.0"
description:
  - Applies an mbox to a git work tree with C(git am -3).
  - Idempotent - when the newest commits of the tree already carry the series' subjects in
    order, nothing is applied.
  - When a patch does not apply, the C(git am) session is aborted (the tree is left as it
    was) and the module fails with the subject of the patch and the conflicting files.
  - Verify the mbox first (M(damon_fleet.fleet.kernel_series_check)); this module does not
    check pins.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports whether the series would be applied; applies nothing.
  diff_mode:
    support: none
options:
  chdir:
    description:
      - The git work tree (a kernel source tree) to apply the series to.
    type: path
    required: true
  mbox:
    description:
      - The mbox to apply.
    type: path
    required: true
  subjects:
    description:
      - The series' patch subjects in order (without the C([PATCH ...]) prefix), used to tell
        whether the series is already applied.
    type: list
    elements: str
    required: true
  series:
    description:
      - The series name, used in messages.
    type: str
  committer_name:
    description:
      - Committer name for the commits C(git am) creates.
    type: str
    default: damon-fleet
  committer_email:
    description:
      - Committer e-mail for the commits C(git am) creates.
    type: str
    default: damon-fleet@localhost
seealso:
  - module: damon_fleet.fleet.kernel_series_check
"""

EXAMPLES = r"""
- name: Apply the series
  kernel_series_apply:
    chdir: /root/.cache/damon-fleet/builds/0123456789abcdef/src
    mbox: "{{ series.mbox }}"
    subjects: "{{ series.subjects }}"
    series: "{{ series.name }}"
"""

RETURN = r"""
applied:
  description: The subjects applied by this run (empty when the series was already there).
  returned: success
  type: list
  elements: str
head:
  description: The commit the tree is at afterwards.
  returned: success
  type: str
failed_patch:
  description: Subject of the patch C(git am) stopped at.
  returned: failure
  type: str
  sample: "mm/damon/sysfs: add sample/primitives directory (lab stand-in)"
conflicting_files:
  description: The files that patch could not be applied to.
  returned: failure
  type: list
  elements: str
  sample: [mm/damon/sysfs.c]
output:
  description: The output of C(git am) (on failure).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.series import (
    applied_count,
    parse_am_failure,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "chdir": {"type": "path", "required": True},
            "mbox": {"type": "path", "required": True},
            "subjects": {"type": "list", "elements": "str", "required": True},
            "series": {"type": "str"},
            "committer_name": {"type": "str", "default": "damon-fleet"},
            "committer_email": {"type": "str", "default": "damon-fleet@localhost"},
        },
        supports_check_mode=True,
    )
    params = module.params
    git = module.get_bin_path("git", required=True)
    cwd = params["chdir"]
    subjects = params["subjects"]
    env = {
        "LC_ALL": "C",
        "GIT_COMMITTER_NAME": params["committer_name"],
        "GIT_COMMITTER_EMAIL": params["committer_email"],
    }

    def git_run(*args: str) -> tuple[int, str, str]:
        rc, out, err = module.run_command([git, *args], cwd=cwd, environ_update=env)
        return int(rc), str(out), str(err)

    rc, out, err = git_run("log", f"-{len(subjects)}", "--format=%s", "--")
    if rc != 0:
        module.fail_json(msg=f"{cwd} is not a git tree with commits: {err.strip()}")
    if applied_count(out.splitlines(), subjects):
        rc, head, _ = git_run("rev-parse", "--verify", "HEAD")
        module.exit_json(changed=False, applied=[], head=head.strip())
    if module.check_mode:
        module.exit_json(changed=True, applied=subjects, head=None)

    rc, out, err = git_run("am", "-3", "--no-signoff", "--", params["mbox"])
    if rc != 0:
        output = out + err
        failure = parse_am_failure(output)
        git_run("am", "--abort")
        module.fail_json(
            msg=failure.message(params["series"]),
            failed_patch=failure.subject,
            conflicting_files=failure.files,
            output=output,
        )
    rc, head, _ = git_run("rev-parse", "--verify", "HEAD")
    module.exit_json(changed=True, applied=subjects, head=head.strip())


if __name__ == "__main__":
    main()
