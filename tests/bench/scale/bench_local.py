"""Ansible's local connection, with the CPU of every command it runs on the "host" counted.

The scale bench (``tests/bench/bench_scale.py``) runs its simulated hosts on the
controller itself.  What a real host would spend (the module's Python, the ``mkdir`` and
``rm`` of Ansible's temporary files) then lands on the controller too.  This plugin
subtracts it honestly: around each command it reads ``RUSAGE_CHILDREN`` of the worker
process, whose only children are the commands this connection starts and reaps, and
appends the difference to ``$DAMON_FLEET_SCALE_LEDGER`` (one ``user system`` line in
seconds per command).  Everything else the run spends is the controller's own work:
templating, module packing, the strategy, the workers, the callbacks.
"""

from __future__ import annotations

import fcntl
import os
import resource
from typing import Any

from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = """
name: bench_local
short_description: the local connection, counting the CPU of the commands it runs
description:
  - Runs commands on the controller like C(ansible.builtin.local) and appends each
    command's CPU seconds to the file named by E(DAMON_FLEET_SCALE_LEDGER).
author: damon-fleet
extends_documentation_fragment:
  - connection_pipelining
"""


class Connection(LocalConnection):  # type: ignore[misc]
    """``ansible.builtin.local`` plus a ledger of the CPU its commands used."""

    transport = "bench_local"

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> Any:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ledger = os.environ.get("DAMON_FLEET_SCALE_LEDGER")
        if ledger:
            user = after.ru_utime - before.ru_utime
            system = after.ru_stime - before.ru_stime
            line = f"{user:.6f} {system:.6f}\n"
            with open(ledger, "a", encoding="ascii") as out:
                fcntl.flock(out, fcntl.LOCK_EX)
                out.write(line)
        return result
