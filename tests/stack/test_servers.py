"""checkout_stack.servers: the start / wait-ready / stop / kill helper both service harnesses
(tests/payments/payments_harness.py, tests/services/services_harness.py) run their processes with.
Plain Python processes here; no stack needed."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from checkout_stack import servers


def wait_for_line(log: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def test_wait_http_returns_once_the_server_answers_and_stop_ends_it(tmp_path: Path) -> None:
    port = servers.free_port()
    log = tmp_path / "http.log"
    proc = servers.spawn(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], log
    )
    try:
        servers.wait_http(f"http://127.0.0.1:{port}/", proc, log, timeout=30)
        assert proc.poll() is None
    finally:
        servers.stop(proc)
    assert proc.returncode == -signal.SIGTERM


def test_wait_http_fails_with_the_log_when_the_process_exits(tmp_path: Path) -> None:
    log = tmp_path / "dies.log"
    proc = servers.spawn(
        [sys.executable, "-c", "print('bad settings: REDIS_URL', flush=True); raise SystemExit(3)"],
        log,
    )
    with pytest.raises(AssertionError, match=r"exited with 3:\n.*bad settings: REDIS_URL"):
        servers.wait_http(f"http://127.0.0.1:{servers.free_port()}/", proc, log, timeout=30)


def test_wait_http_fails_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "silent.log"
    proc = servers.spawn([sys.executable, "-c", "import time; time.sleep(30)"], log)
    try:
        with pytest.raises(AssertionError, match=r"not up after 0\.3s"):
            servers.wait_http(f"http://127.0.0.1:{servers.free_port()}/", proc, log, timeout=0.3)
    finally:
        servers.kill(proc)
    assert proc.returncode == -signal.SIGKILL


def test_stop_kills_what_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = servers.spawn([sys.executable, "-c", code], log, {"PATH": "/usr/bin:/bin"})
    wait_for_line(log, "ready")
    started = time.monotonic()
    servers.stop(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5


@dataclass
class Holder(servers.Server):
    proc: Popen[bytes] | None = None


def test_server_mixin_stops_its_process_and_ignores_none(tmp_path: Path) -> None:
    Holder().stop()  # never started: nothing to do
    Holder().kill()
    held = Holder(
        servers.spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "l")
    )
    held.kill()
    assert held.proc is not None
    assert held.proc.returncode == -signal.SIGKILL
    held.stop()  # already gone: no error
