"""`hack/stack` by hand: up, env, status, down, and Ctrl-C, on a private state file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from checkout_stack.paths import REPO

pytestmark = pytest.mark.stack

STACK = str(REPO / "hack" / "stack")


def stack_cmd(state: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHECKOUT_STACK_STATE": str(state)}
    return subprocess.run(
        [STACK, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def processes_under(folder: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # the servers, not `hack/stack up --dir <folder>` itself
        if str(folder) in cmdline and state != "Z" and "checkout_stack" not in cmdline:
            found.append(cmdline)
    return found


def redis_ping(url: str) -> bytes:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16)


def test_up_env_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    run_dir = tmp_path / "run"
    up = stack_cmd(state, "up", "--components", "postgres,redis", "--dir", str(run_dir))
    assert up.returncode == 0, up.stderr
    try:
        assert "export REDIS_URL=" in up.stdout
        env = json.loads(stack_cmd(state, "env", "--json").stdout)
        assert env["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
        assert redis_ping(env["REDIS_URL"]) == b"+PONG\r\n"
        status = stack_cmd(state, "status")
        assert status.returncode == 0, status.stdout
        assert "postgres" in status.stdout
        assert "total RSS" in status.stdout
        again = stack_cmd(state, "up", "--components", "redis")
        assert again.returncode == 1
        assert "already up" in again.stderr
    finally:
        down = stack_cmd(state, "down")
    assert down.returncode == 0, down.stderr
    assert not state.exists()
    assert processes_under(run_dir) == []
    assert not run_dir.exists()
    assert stack_cmd(state, "status").returncode == 1
    assert "no stack is up" in stack_cmd(state, "env").stderr


def test_bad_arguments_exit_nonzero_with_a_message(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    bad = stack_cmd(state, "up", "--components", "postgres,mongodb")
    assert bad.returncode == 2
    assert "unknown component(s) mongodb" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not state.exists()


def test_ctrl_c_during_up_stops_everything(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    run_dir = tmp_path / "run"
    env = {**os.environ, "CHECKOUT_STACK_STATE": str(state)}
    proc = subprocess.Popen(
        [STACK, "up", "--components", "kafka,redis", "--num-regions", "1", "--dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not processes_under(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not processes_under(run_dir):
        proc.kill()
        pytest.fail(f"no server started within 60 s: {proc.communicate()}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert processes_under(run_dir) == []
    assert not state.exists()
