"""Run an Ansible module's ``main()`` in-process and capture what it exits with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    """Raised instead of sys.exit by the patched exit_json/fail_json."""

    def __init__(self, result: dict[str, Any], failed: bool) -> None:
        super().__init__(result)
        self.result = result
        self.failed = failed


def _exit_json(self: basic.AnsibleModule, **kwargs: Any) -> None:
    raise ModuleExit(kwargs, failed=False)


def _fail_json(self: basic.AnsibleModule, msg: str, **kwargs: Any) -> None:
    raise ModuleExit({"msg": msg, **kwargs}, failed=True)


def run_module(main: Callable[[], None], args: dict[str, Any]) -> ModuleExit:
    """Call ``main()`` with ``args`` and return the exit (``.result``, ``.failed``)."""
    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json),
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
    ):
        try:
            main()
        except ModuleExit as done:
            return done
    raise AssertionError("module returned without calling exit_json or fail_json")
