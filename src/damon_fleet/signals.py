"""Stopping a run on a signal: SIGTERM, SIGHUP and SIGINT all stop it the way ctrl-C does.

A run command (``deploy``, ``detect``, ``configure``, ``verify``) holds a
:class:`StopSignals` while it runs. Its handlers only record the signal and set a
:class:`threading.Event` (handlers run in the main thread; ansible-runner runs in another
one and polls the event through its ``cancel_callback``, then kills ansible-playbook). The
run then keeps its records, writes its report, says ``canceled`` in ``run.json`` and exits
``128 + signal number``: 130 for SIGINT, 129 for SIGHUP, 143 for SIGTERM.

A second signal while stopping does not wait: the *on_second* callback kills what is left
of ansible-playbook, says what may be left half-done, and ends the process at once.

Which signals are honoured:

* SIGTERM always (schedulers, CI cancellation, ``systemctl stop``, ``kill``, AWX).
* SIGINT and SIGHUP unless the process started with them ignored. A shell starts
  background jobs with SIGINT ignored, and ``nohup`` ignores SIGHUP: both ask for a process
  that keeps running through ctrl-C in the terminal or the terminal going away, so an
  inherited ignore is left as it is.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# An inherited "ignore" of these is kept (background jobs, nohup); SIGTERM is always honoured.
IGNORE_KEPT = (signal.SIGINT, signal.SIGHUP)


def exit_code(signum: int) -> int:
    """The exit code of a run stopped by *signum*: 128 + its number, as shells report it."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """While held: SIGTERM, SIGHUP and SIGINT set :attr:`requested` (see the module docs).

    *on_second* is called, in the main thread, for a signal that comes after the first; it
    should end the process. The previous handlers are restored on exit.
    """

    def __init__(self, on_second: Callable[[int], None] | None = None) -> None:
        self.requested = threading.Event()
        self.signum: int | None = None
        self.on_second = on_second
        self.kept_ignored: list[int] = []
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def is_set(self) -> bool:
        """Whether a stop was asked for (ansible-runner's ``cancel_callback``)."""
        return self.requested.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested.is_set():
            self.signum = signum
            self.requested.set()
            return
        if self.on_second is not None:
            self.on_second(signum)

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if signum in IGNORE_KEPT and current == signal.SIG_IGN:
                self.kept_ignored.append(signum)
                continue
            self._previous[signum] = current
            signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
