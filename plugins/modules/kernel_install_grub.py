#!/usr/bin/python
# Copyright: damon-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: GRUB entries of a kernel rollout (query, trial entry, default, boot once)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_install_grub
short_description: GRUB entries of a kernel rollout - query, trial entry, default, boot once
version_added: "0.1.0"
description:
  - Reads the generated C(grub.cfg) and the GRUB environment and finds the regular (not
    recovery) entry of a kernel release by its C(linux /boot/vmlinuz-<release>) line,
    preferring the per-version id C(gnulinux-<release>-advanced-<uuid>).
  - Every action also reports the running kernel's release and boot id (from C(/proc)),
    so that one module run reads all a rollout needs to know about the host's boot.
  - V(query) reports the entries, the regular entry of O(release), C(saved_entry),
    C(next_entry) and whether the saved default boots O(release). With
    O(keep_running_default), it also makes the running kernel the saved default when that
    kernel is not O(release).
  - V(trial) writes O(trial_script), an C(/etc/grub.d) script emitting a copy of the
    regular entry of O(release) under the id C(damon-fleet-trial) with C(panic=)
    O(panic_timeout) and O(extra_args) on its command line, and puts that entry in
    C(grub.cfg) as the script's C(### BEGIN/END) section, where C(grub-mkconfig) would put
    it (the kernel package's own C(update-grub) has just made the rest current), without
    running every other script again; O(mkconfig) runs for a C(grub.cfg) without
    C(grub-mkconfig) sections. With O(boot_once), it then does what V(boot_once) does.
  - V(boot_once) runs C(grub-reboot damon-fleet-trial), so the next boot (only) uses the
    trial entry; a kernel that panics reboots into the saved default.
  - V(default) makes the regular entry of O(release) the saved default
    (C(grub-set-default)) unless it already is. With O(clean_trial), it then does what
    V(clean) does.
  - V(clean) removes O(trial_script), its section of C(grub.cfg) (what C(grub-mkconfig)
    writes once the script is gone) and a pending C(next_entry) naming the trial entry.
author:
  - damon-fleet contributors (@damon-fleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports what would change; runs no GRUB tool that writes.
  diff_mode:
    support: partial
    details: The trial script and the saved default, before and after.
options:
  action:
    description:
      - What to do (see the description).
    type: str
    choices: [query, trial, boot_once, default, clean]
    default: query
  release:
    description:
      - The kernel release (C(uname -r)). Required for V(trial) and V(default).
      - Refused, whatever the action, unless it is a release C(uname -r) could print (a
        digit first, then letters, digits, C(._+~-), at most 64 characters), as it goes
        into the trial entry's title and script.
    type: str
  extra_args:
    description:
      - Kernel arguments added to the trial entry only (letters, digits, C(_.,:/=+@%-)).
      - C(panic=) is refused (checked whatever the action) - the trial entry sets
        C(panic=N) from O(panic_timeout), and the kernel takes the last C(panic=), so
        C(panic=0) would keep a panicking kernel from rebooting into the previous one.
    type: list
    elements: str
    default: []
  panic_timeout:
    description:
      - Seconds after a panic before the trial kernel reboots (C(panic=N)).
    type: int
    default: 10
  grub_cfg:
    description:
      - The generated GRUB configuration.
    type: path
    default: /boot/grub/grub.cfg
  trial_script:
    description:
      - The C(/etc/grub.d) script of the trial entry.
    type: path
    default: /etc/grub.d/42_damon_fleet_trial
  tool_prefix:
    description:
      - Prefix of the GRUB tools - V(grub) (Debian) or V(grub2) (Fedora, RHEL).
    type: str
    default: grub
  mkconfig:
    description:
      - Command that regenerates O(grub_cfg). Default C(update-grub) when it exists, else
        C(<tool_prefix>-mkconfig -o <grub_cfg>).
    type: list
    elements: str
  boot_once:
    description:
      - With O(action=trial), also choose the trial entry for the next boot only, as
        V(boot_once) does (one module run instead of two).
    type: bool
    default: false
  clean_trial:
    description:
      - With O(action=default), also remove the trial entry, as V(clean) does, once the
        saved default is set (one module run instead of two).
    type: bool
    default: false
  keep_running_default:
    description:
      - With O(action=query), when the running kernel is not O(release), also make the
        regular entry of the running kernel the saved default (C(grub-set-default))
        unless it already is - what a trial boot of O(release) that fails falls back to.
        The same as V(default) with the running kernel's release, in the query's module
        run. Fails, changing nothing, when the running kernel has no regular entry.
    type: bool
    default: false
seealso:
  - module: damon_fleet.fleet.kernel_install_gate
"""

EXAMPLES = r"""
- name: Write the trial entry of the new kernel
  kernel_install_grub:
    action: trial
    release: 6.12.117-lab-perf-events-abi-1a2b3c4d
    panic_timeout: 10

- name: Boot it once
  kernel_install_grub:
    action: boot_once

- name: Or both in one module run
  kernel_install_grub:
    action: trial
    release: 6.12.117-lab-perf-events-abi-1a2b3c4d
    boot_once: true

- name: Read the entries, keeping the running kernel as the default to fall back to
  kernel_install_grub:
    action: query
    release: 6.12.117-lab-perf-events-abi-1a2b3c4d
    keep_running_default: true

- name: Make it the default after the gate passed, and remove the trial entry
  kernel_install_grub:
    action: default
    release: 6.12.117-lab-perf-events-abi-1a2b3c4d
    clean_trial: true
"""

RETURN = r"""
entries:
  description: Every menu entry (title, id, submenu_id, kernel, args, initrd, recovery,
    ref).
  returned: always
  type: list
  elements: dict
entry:
  description: The regular entry of O(release) (null without O(release) or when none).
  returned: always
  type: dict
saved_entry:
  description: C(saved_entry) of the GRUB environment after the action (empty when unset).
  returned: always
  type: str
next_entry:
  description: C(next_entry) of the GRUB environment after the action.
  returned: always
  type: str
default_is_release:
  description: Whether the saved default designates the regular entry of O(release).
  returned: always
  type: bool
trial_present:
  description: Whether O(trial_script) exists (after the action).
  returned: always
  type: bool
running_release:
  description: The release of the running kernel (C(/proc/sys/kernel/osrelease)).
  returned: always
  type: str
boot_id:
  description: The id of the current boot (C(/proc/sys/kernel/random/boot_id)).
  returned: always
  type: str
"""

import os
import shutil
import stat
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.grub_entries import (
    TRIAL_ID,
    GrubError,
    MenuEntry,
    check_extra_args,
    check_release,
    drop_script_section,
    entry_matches,
    entry_ref,
    find_kernel_entry,
    parse_grub_cfg,
    parse_grubenv,
    put_script_section,
    render_trial_entry,
    render_trial_script,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel.install_gate import (
    BOOT_ID_PATH,
)


class Grub:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.prefix = self.params["tool_prefix"]

    def run(self, argv: list[str]) -> str:
        rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        if rc != 0:
            raise GrubError(f"{' '.join(argv)} failed (rc {rc}): {(err or out).strip()}")
        return str(out)

    def entries(self) -> list[MenuEntry]:
        try:
            with open(self.params["grub_cfg"], encoding="utf-8", errors="replace") as handle:
                text = str(handle.read())
        except OSError as exc:
            raise GrubError(f"cannot read {self.params['grub_cfg']}: {exc}") from exc
        entries: list[MenuEntry] = parse_grub_cfg(text)
        return entries

    def env(self) -> dict[str, str]:
        env: dict[str, str] = parse_grubenv(self.run([f"{self.prefix}-editenv", "-", "list"]))
        return env

    def mkconfig(self) -> None:
        argv = self.params["mkconfig"]
        if not argv:
            if shutil.which("update-grub") and self.prefix == "grub":
                argv = ["update-grub"]
            else:
                argv = [f"{self.prefix}-mkconfig", "-o", self.params["grub_cfg"]]
        self.run(list(argv))

    def read_cfg(self) -> str:
        path = self.params["grub_cfg"]
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                return str(handle.read())
        except OSError as exc:
            raise GrubError(f"cannot read {path}: {exc}") from exc

    def write_cfg(self, text: str) -> None:
        """Replace grub.cfg atomically, keeping its mode."""
        path = self.params["grub_cfg"]
        mode = stat.S_IMODE(os.stat(path).st_mode)
        tmp = path + ".damon-fleet.new"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def put_section(self, script: str, output: str | None) -> None:
        """Set (or, with output None, take out) *script*'s section of grub.cfg: what
        grub-mkconfig writes with that script, without running every other script again
        (put_script_section, drop_script_section). mkconfig for a grub.cfg without
        grub-mkconfig sections."""
        text = self.read_cfg()
        if output is None:
            new = drop_script_section(text, script)
        else:
            new = put_script_section(text, script, output)
        if new is None:
            self.mkconfig()
        else:
            self.write_cfg(new)


def _entry(entries: list[MenuEntry], release: str | None, required: bool) -> MenuEntry | None:
    if not release:
        return None
    try:
        return find_kernel_entry(entries, release)
    except GrubError:
        if required:
            raise
        return None


def _set_default(
    module: AnsibleModule, grub: Grub, env: dict[str, str], entry: MenuEntry
) -> tuple[bool, dict[str, Any]]:
    """grub-set-default *entry* unless it is the saved default; whether it changed and
    the diff."""
    saved = env.get("saved_entry", "")
    diff = {"before": f"saved_entry={saved}\n", "after": f"saved_entry={entry_ref(entry)}\n"}
    if saved == entry_ref(entry):
        return False, diff
    if not module.check_mode:
        grub.run([f"{grub.prefix}-set-default", entry_ref(entry)])
    return True, diff


def _has_trial(entries: list[MenuEntry]) -> bool:
    return any(e.entry_id == TRIAL_ID for e in entries)


def _trial(
    module: AnsibleModule,
    grub: Grub,
    entries: list[MenuEntry],
    entry: MenuEntry,
    release: str,
) -> tuple[bool, dict[str, Any], list[MenuEntry]]:
    """Write the trial script and its grub.cfg section; whether it changed, the diff and
    the entries after."""
    params = module.params
    script_path = params["trial_script"]
    text = render_trial_script(entry, release, params["extra_args"], params["panic_timeout"])
    try:
        with open(script_path, encoding="utf-8") as handle:
            old = handle.read()
    except FileNotFoundError:
        old = ""
    diff: dict[str, Any] = {"before": old, "after": text, "after_header": script_path}
    changed = old != text or not _has_trial(entries)
    if changed and not module.check_mode:
        tmp = script_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, script_path)
        grub.put_section(
            script_path,
            render_trial_entry(entry, release, params["extra_args"], params["panic_timeout"]),
        )
        entries = grub.entries()
        if not _has_trial(entries):
            raise GrubError(
                f"{params['grub_cfg']} has no entry {TRIAL_ID} after regenerating "
                f"it with {script_path}"
            )
    return changed, diff, entries


def _boot_once(
    module: AnsibleModule, grub: Grub, entries: list[MenuEntry], env: dict[str, str]
) -> bool:
    """grub-reboot the trial entry unless it is the next entry already; whether it
    changed. In check mode, a trial entry the same run would have written counts."""
    if not _has_trial(entries) and not (module.check_mode and module.params["action"] == "trial"):
        raise GrubError(f"{module.params['grub_cfg']} has no entry {TRIAL_ID}")
    if env.get("next_entry") == TRIAL_ID:
        return False
    if not module.check_mode:
        grub.run([f"{grub.prefix}-reboot", TRIAL_ID])
    return True


def _clean(
    module: AnsibleModule, grub: Grub, entries: list[MenuEntry], env: dict[str, str]
) -> tuple[bool, list[MenuEntry]]:
    """Remove the trial script, its grub.cfg section and a next_entry naming it; whether
    anything changed and the entries after."""
    script_path = module.params["trial_script"]
    changed = False
    in_cfg = _has_trial(entries)
    if os.path.exists(script_path) or in_cfg:
        changed = True
        if not module.check_mode:
            if os.path.exists(script_path):
                os.unlink(script_path)
            if in_cfg:
                grub.put_section(script_path, None)
            entries = grub.entries()
    if env.get("next_entry") == TRIAL_ID:
        changed = True
        if not module.check_mode:
            grub.run([f"{grub.prefix}-editenv", "-", "unset", "next_entry"])
    return changed, entries


def _read_proc(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise GrubError(f"cannot read {path}: {exc}") from exc


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {
                "type": "str",
                "choices": ["query", "trial", "boot_once", "default", "clean"],
                "default": "query",
            },
            "release": {"type": "str"},
            "extra_args": {"type": "list", "elements": "str", "default": []},
            "panic_timeout": {"type": "int", "default": 10},
            "grub_cfg": {"type": "path", "default": "/boot/grub/grub.cfg"},
            "trial_script": {"type": "path", "default": "/etc/grub.d/42_damon_fleet_trial"},
            "tool_prefix": {"type": "str", "default": "grub"},
            "mkconfig": {"type": "list", "elements": "str"},
            "boot_once": {"type": "bool", "default": False},
            "clean_trial": {"type": "bool", "default": False},
            "keep_running_default": {"type": "bool", "default": False},
        },
        required_if=[("action", "trial", ("release",)), ("action", "default", ("release",))],
        supports_check_mode=True,
    )
    params = module.params
    grub = Grub(module)
    action = params["action"]
    release = params["release"]
    script_path = params["trial_script"]
    changed = False
    diff: dict[str, Any] = {"before": "", "after": ""}
    try:
        # Refused before anything is read or changed, whatever the action.
        if release is not None:
            check_release(release)
        check_extra_args(params["extra_args"])
        for option, with_action in (
            ("boot_once", "trial"),
            ("clean_trial", "default"),
            ("keep_running_default", "query"),
        ):
            if params[option] and action != with_action:
                raise GrubError(f"{option}: true goes with action {with_action} only, not {action}")
        if params["panic_timeout"] < 1:
            raise GrubError(
                "panic_timeout (kernel_install_panic_timeout): must be at least 1 second"
            )
        running = _read_proc("/proc/sys/kernel/osrelease")
        boot_id = _read_proc(BOOT_ID_PATH)
        entries = grub.entries()
        env = grub.env()
        entry = _entry(entries, release, required=action in ("trial", "default"))
        if action == "query" and params["keep_running_default"] and running != release:
            try:
                running_entry = find_kernel_entry(entries, running)
            except GrubError as exc:
                raise GrubError(
                    f"keep_running_default: the running kernel {running} has no regular "
                    f"entry to keep as the default: {exc}"
                ) from exc
            changed, diff = _set_default(module, grub, env, running_entry)
        elif action == "trial":
            assert entry is not None and release is not None
            changed, diff, entries = _trial(module, grub, entries, entry, release)
            if params["boot_once"]:
                changed = _boot_once(module, grub, entries, env) or changed
        elif action == "boot_once":
            changed = _boot_once(module, grub, entries, env)
        elif action == "default":
            assert entry is not None
            changed, diff = _set_default(module, grub, env, entry)
            if params["clean_trial"]:
                cleaned, entries = _clean(module, grub, entries, env)
                changed = cleaned or changed
        elif action == "clean":
            changed, entries = _clean(module, grub, entries, env)
        if changed and not module.check_mode:
            env = grub.env()
            entry = _entry(entries, release, required=False)
    except GrubError as exc:
        module.fail_json(msg=f"kernel_install_grub ({action}): {exc}")
    saved = env.get("saved_entry", "")
    result: dict[str, Any] = {
        "changed": changed,
        "entries": [e.as_dict() for e in entries],
        "entry": entry.as_dict() if entry else None,
        "saved_entry": saved,
        "next_entry": env.get("next_entry", ""),
        "default_is_release": bool(entry and entry_matches(entries, saved, entry)),
        "trial_present": os.path.exists(script_path),
        "running_release": running,
        "boot_id": boot_id,
    }
    if module._diff and changed:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
