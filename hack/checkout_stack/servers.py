"""The checkout services' own server processes, as the test harnesses run them.

``checkout-services NAME`` (payments, the PSP simulator, inventory, orders, ...) on loopback:
started in its own session with its output in a log file, waited for until an HTTP probe
answers 200 (failing with the log if it exits or never answers), stopped with SIGTERM (SIGKILL
after a grace period) or killed outright with SIGKILL. Used by tests/payments/payments_harness.py
and tests/services/services_harness.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from checkout_stack import proc as stack_proc

BIN = Path(sys.executable).parent / "checkout-services"

free_port = stack_proc.free_port


def spawn(
    argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log``; ``env`` is the
    whole environment (None: this process's)."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            list(argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Until GET ``url`` answers 200; AssertionError with the log if ``proc`` exits first or
    nothing answers within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"{url}: process exited with {proc.returncode}:\n{log.read_text()}"
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not up after {timeout}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``grace`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: no cleanup, whatever was in flight is cut."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


class Server:
    """``stop`` and ``kill`` for a harness object holding its process in ``proc``."""

    proc: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        stop(self.proc)

    def kill(self) -> None:
        kill(self.proc)
