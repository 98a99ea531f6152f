"""Where the demo's CPU goes: processes are told apart by their program, not by a path that
happens to contain a name (the stack's programs live under ~/.cache/checkout-operator/)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from checkout_demo import cpu

REGIONS = ["us-east-1", "eu-west-1"]
W = "/tmp/checkout-demo-x"
CACHE = "/root/.cache/checkout-operator"


def test_parts_by_program() -> None:
    cases = {
        f"/usr/bin/java -Xmx512m -XX:SharedArchiveFile={CACHE}/kafka-4.1.1/kafka-cds.jsa "
        f"kafka.Kafka {W}/regions/us-east-1/kafka/server.properties": "kafka[us-east-1]",
        f"{CACHE}/bin/temporal server start-dev --db-filename {W}/regions/eu-west-1/t.db": (
            "temporal[eu-west-1]"
        ),
        f"{CACHE}/bin/k8s-v1.35.4/etcd --data-dir {W}/kube/etcd": "control plane",
        f"{CACHE}/bin/k8s-v1.35.4/kube-apiserver --etcd-servers http://x": "control plane",
        f"/usr/lib/postgresql/15/bin/postgres -D {W}/regions/us-east-1/postgres/data": (
            "postgres[us-east-1]"
        ),
        f"/usr/bin/bash {CACHE}/kafka-4.1.1/bin/connect-mirror-maker.sh {W}/pods/eu-west-1/"
        "mm2/mm2.properties": "mirrormaker2[eu-west-1]",
        f"/w/.venv/bin/python /w/.venv/bin/checkout-operator run --kubeconfig {W}/op.kubeconfig": (
            "operator"
        ),
        f"/usr/bin/redis-server 127.0.0.1:0 --dir {W}/regions/eu-west-1/redis": "redis[eu-west-1]",
        "/usr/bin/sleep 100": None,
    }
    for line, part in cases.items():
        assert cpu.part_of(line, REGIONS) == part, line


BURN = """
import sys, time
t = time.process_time()
while time.process_time() - t < 0.3:
    pass
print("done", flush=True)
time.sleep(60)
"""


def test_snapshot_counts_known_sessions_and_the_demo_itself(tmp_path: Path) -> None:
    burn = subprocess.Popen(
        [sys.executable, "-c", BURN], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        before = cpu.snapshot(tmp_path, REGIONS, {burn.pid: "orders[us-east-1]"})
        assert burn.stdout is not None
        assert burn.stdout.readline() == b"done\n"
        after = cpu.snapshot(tmp_path, REGIONS, {burn.pid: "orders[us-east-1]"})
    finally:
        burn.kill()
        burn.wait()
        if burn.stdout is not None:
            burn.stdout.close()
    assert after["orders[us-east-1]"] >= 0.3
    spent = cpu.delta(before, after)
    assert spent["orders[us-east-1]"] > 0
    assert any(k.startswith("demo process") for k in after)
    # nothing else on the machine is counted: no part outside the demo's
    assert set(after) <= {"orders[us-east-1]", *(k for k in after if k.startswith("demo"))}


PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {BURN!r}], start_new_session=True)
print(child.pid, flush=True)
child.wait()
"""


def test_a_child_in_a_session_of_its_own_counts_for_its_parent(tmp_path: Path) -> None:
    """PostgreSQL's backends each call setsid(): they count for the postmaster's part."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, start_new_session=True
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        spent = 0.0
        while time.monotonic() < deadline and spent < 0.3:
            spent = cpu.snapshot(tmp_path, REGIONS, {parent.pid: "postgres[us-east-1]"}).get(
                "postgres[us-east-1]", 0.0
            )
            time.sleep(0.1)
        assert spent >= 0.3, spent
        assert child != parent.pid
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
