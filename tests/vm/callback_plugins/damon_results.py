"""Ansible callback for the VM tests: every task result and the recap, as one JSON file.

Enabled with ``ANSIBLE_CALLBACKS_ENABLED=damon_results`` (plus
``ANSIBLE_CALLBACK_PLUGINS`` pointing here); the file is ``$DAMON_RESULTS_FILE``.
The normal stdout callback keeps printing for humans.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: damon_results
type: aggregate
short_description: Write all task results and the recap to $DAMON_RESULTS_FILE as JSON
description:
  - Test-only callback of damon-fleet's VM tests.
"""


def _result_of(result: Any) -> dict[str, Any]:
    data = getattr(result, "result", None)  # ansible-core 2.19+
    if data is None:
        data = result._result
    return dict(data)


def _task_of(result: Any) -> Any:
    return getattr(result, "task", None) or result._task


def _host_of(result: Any) -> Any:
    return getattr(result, "host", None) or result._host


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "damon_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []
        self._started: dict[str, float] = {}

    def _start(self, task: Any) -> None:
        self._started[task._uuid] = time.monotonic()

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._start(task)

    def _record(self, result: Any, status: str) -> None:
        task = _task_of(result)
        self.records.append(
            {
                "task": task.get_name(),
                "action": task.action,
                "handler": bool(getattr(task, "implicit", False))
                or type(task).__name__ == "Handler",
                "host": _host_of(result).get_name(),
                "status": status,
                "seconds": round(
                    time.monotonic() - self._started.get(task._uuid, time.monotonic()), 2
                ),
                "result": _result_of(result),
            }
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        path = os.environ.get("DAMON_RESULTS_FILE")
        if not path:
            return
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"tasks": self.records, "stats": summary}, out, default=str, indent=1)
