"""SIGTERM (a cancelled CI job, `kill`) stops the demo as Ctrl-C does: its clean-up runs and it
exits 130 with one line, instead of dying at once and leaving the whole stack running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkout_stack.proc import processes, stat_of

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys, time
from checkout_demo import cli

def _main(args, workdir):
    try:
        print("running", flush=True)  # inside: a signal right after it still meets the finally
        time.sleep(60)
    finally:
        print("cleaned up", flush=True)  # where the demo stops what it started
    return 0

cli._main = _main
sys.exit(cli.main(["demo"]))
"""


def test_sigterm_runs_the_clean_up_and_exits_130() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "hack")}
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - started < 10
    assert "cleaned up" in out
    assert proc.returncode == 130, (out, err)
    assert "interrupted; everything it started was stopped" in err
    assert "Traceback" not in err


# -- more Ctrl-Cs during the clean-up -------------------------------------------------------------

SLOW_CLEAN_UP = """
import os, signal, subprocess, sys, time
from pathlib import Path
from checkout_demo import demo

class Slow:
    '''A part of the stack that takes a while to stop (a broker, a database).'''
    def __init__(self):
        # a session leader with children of its own, as the demo's processes are
        self.proc = subprocess.Popen(
            ["sh", "-c", "sleep 300 & sleep 300 & wait"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,  # the test reads the demo's output to its end
            stderr=subprocess.DEVNULL,
        )
    def stop(self):
        print("stop begins", flush=True)
        time.sleep(4)
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()
        print("stopped", flush=True)

def up(self):
    part = Slow()
    self.stoppables.append(part)
    time.sleep(0.3)  # its children exist
    print("running", part.proc.pid, flush=True)  # run()'s finally stops it from here on
    time.sleep(60)

demo.Demo.up = up
try:
    demo.run(demo.Options(workdir=Path(sys.argv[1])))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def alive_in_session(sid: int) -> list[int]:
    """Processes of session ``sid`` that still run (a zombie waiting for its reaper is dead)."""
    return [pid for pid, stat in processes().items() if stat.sid == sid and stat.running]


IGNORING_SIGINT = "/bin/sh", "-c", 'trap "" INT; exec "$0" "$@"'
"""Prefix of a command line: run it with SIGINT ignored (exec keeps the disposition)."""


def start_slow(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """The slow program, started as CI starts jobs: with SIGINT ignored (a background job of a
    shell without job control), which Python keeps unless the demo installs its own handler."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "hack")}
    proc = subprocess.Popen(
        [*IGNORING_SIGINT, sys.executable, "-c", SLOW_CLEAN_UP, str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    words = proc.stdout.readline().split()
    assert words[0] == "running", words
    session = int(words[1])
    deadline = time.monotonic() + 10  # sh forks its two sleeps (late on a loaded machine)
    while len(alive_in_session(session)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(alive_in_session(session)) == 3  # sh and its two sleeps
    return proc, session


def read_until(proc: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} never came: {seen}")


@pytest.fixture
def sessions() -> Iterator[list[int]]:
    """The test program's child sessions: whatever a failing run leaves is killed."""
    started: list[int] = []
    yield started
    for sid in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGKILL)


def ctrl_c_twice(
    tmp_path: Path, sessions: list[int]
) -> tuple[subprocess.Popen[str], int, list[str]]:
    """The slow program, interrupted, and again once its clean-up began: it said it is still
    stopping. Returns it, its child's session and what it printed so far."""
    proc, session = start_slow(tmp_path)
    sessions.append(session)
    seen: list[str] = []
    proc.send_signal(signal.SIGINT)
    read_until(proc, "stop begins", seen)
    proc.send_signal(signal.SIGINT)
    read_until(proc, "still stopping, please wait", seen)
    return proc, session, seen


def test_a_second_ctrl_c_lets_the_clean_up_finish(tmp_path: Path, sessions: list[int]) -> None:
    proc, session, seen = ctrl_c_twice(tmp_path, sessions)
    out, err = proc.communicate(timeout=30)
    seen.append(out)
    text = "".join(seen)
    assert "stopped" in text  # the clean-up went on to the end
    assert proc.returncode == 130, (text, err)
    assert "interrupted" in text
    assert "Traceback" not in err
    deadline = time.monotonic() + 5  # SIGTERMed sleeps die a moment after sh is reaped
    while alive_in_session(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive_in_session(session) == []


def test_a_third_ctrl_c_kills_every_child_process_at_once(
    tmp_path: Path, sessions: list[int]
) -> None:
    proc, session, seen = ctrl_c_twice(tmp_path, sessions)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    text = "".join(seen) + out
    assert time.monotonic() - started < 3  # not after the 4 s the clean-up would take
    assert "killing what is left" in text
    assert "stopped" not in text
    assert proc.returncode == 130, (text, err)
    deadline = time.monotonic() + 5
    while alive_in_session(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive_in_session(session) == []  # sh and both of its sleeps


def running(pid: int) -> bool:
    stat = stat_of(pid)
    return stat is not None and stat.running


@pytest.mark.stack
def test_a_real_gameday_stops_everything_it_started_through_a_second_ctrl_c(
    tmp_path: Path,
) -> None:
    """The demo itself (control plane, operator, three regions' PostgreSQL, Redis, Kafka and
    Temporal, the PSP simulator...), interrupted while its regions come up, and again while it
    stops them: it says so, finishes the clean-up, exits 130, and nothing it started runs."""
    from checkout_demo import stopping

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "hack"), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "checkout_demo", "gameday", "--warmup", "0", "--before", "5",
            "--during", "5", "--after", "5", "--out", str(tmp_path / "report"),
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    below: set[int] = set()
    seen: list[str] = []
    try:
        read_until(proc, "waiting for every CheckoutRegion to be Ready", seen)
        below = stopping.descendants(proc.pid)
        assert len(below) >= 10, below  # the control plane, the regions' backing services...
        proc.send_signal(signal.SIGINT)
        read_until(proc, "demo: stopping everything it started", seen)
        proc.send_signal(signal.SIGINT)
        read_until(proc, "still stopping, please wait", seen)
        out, err = proc.communicate(timeout=300)
        seen.append(out)
        assert proc.returncode == 130, ("".join(seen)[-3000:], err[-3000:])
        assert "interrupted; everything it started was stopped" in err
        assert "Traceback" not in err
        deadline = time.monotonic() + 10
        while any(running(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in below if running(p)] == []
    finally:
        for pid in {proc.pid, *below}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)
