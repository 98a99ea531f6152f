"""SIGTERM (a cancelled CI job, `kill`) stops the demo as Ctrl-C does: its clean-up runs and it
exits 130 with one line, instead of dying at once and leaving the whole stack running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys, time
from checkout_demo import cli

def _main(args, workdir):
    print("running", flush=True)
    try:
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
