"""Stopping the demo: a clean-up that more Ctrl-Cs do not cut short.

The first Ctrl-C (or SIGTERM) interrupts the run, and the clean-up stops everything the demo
started, which takes a while on a loaded machine (three regions' brokers, databases, Temporal,
the control plane). A second Ctrl-C used to interrupt that clean-up in turn, leaving the rest of
the stack running. Inside :class:`Shutdown`:

* the next Ctrl-C / SIGTERM only says ``still stopping, please wait``; the clean-up goes on;
* one more force-kills what is left: SIGKILL to every process below the demo and to every
  session one of them leads (each process the demo starts leads a session of its own, so what
  it started in turn is found even once reparented), then the demo exits 130 at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType, TracebackType
from typing import Any

from checkout_stack import proc

STILL_STOPPING = "demo: still stopping, please wait (Ctrl-C again kills what is left)"
KILLING = "demo: killing what is left"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def descendants(root: int) -> set[int]:
    """Every process below ``root``, and every process of a session one of them leads."""
    table = proc.processes()
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    own_session = os.getsid(root)
    sessions = {pid for pid in found if table[pid].sid == pid and pid != own_session}
    found |= {pid for pid, stat in table.items() if stat.sid in sessions}
    found.discard(root)
    return found


def kill_all(root: int | None = None) -> set[int]:
    """SIGKILL everything :func:`descendants` finds below ``root`` (this process by default)."""
    victims = descendants(os.getpid() if root is None else root)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return victims


def _say(line: str) -> None:
    """A line on stdout from a signal handler: straight to the file descriptor (a ``print``
    interrupted by the handler cannot be re-entered)."""
    with contextlib.suppress(OSError, ValueError):
        os.write(sys.stdout.fileno(), (line + "\n").encode())


class Shutdown:
    """While the clean-up runs: Ctrl-C / SIGTERM once more -> :data:`STILL_STOPPING`; once more
    again -> :func:`kill_all` and exit 130. The handlers before are put back on exit."""

    def __init__(self) -> None:
        self.signals = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Shutdown:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            _say(STILL_STOPPING)
            return
        _say(KILLING)
        kill_all()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os._exit(130)
