"""Benchmark: the project's Kubernetes client (``checkout_kube``) against lightkube, kr8s and
kubernetes_asyncio, doing what the operator and the lease keeper do (issue 21).

Against the real kube-apiserver of the stack fixtures, each client in its own process
(``kube_clients.py``) does the same N x 4 operations: GET a CheckoutRegion, merge-patch its
status, merge-patch a Lease at a resourceVersion (the keeper's compare-and-swap), and LIST +
WATCH the Leases from the list's resourceVersion until a patch's event arrives. Prints per
operation p50/p95/p99 (ms), throughput, CPU seconds per 1,000 operations, import time, import
and peak RSS, and what each client could not do as the operator needs it (bookmarks, 410).

The other clients are the optional extra ``bench-clients`` (``pip install -e '.[bench-clients]'``);
the benchmark fails, saying so, when one is missing. ``KUBE_CLIENT_BENCH_N`` sets N (default
200), ``KUBE_CLIENT_BENCH_ROUNDS`` the rounds (default 3: every client runs once per round,
in an order rotated each round, so a shared machine's load falls on all of them alike).
The results and the decision are in docs/kube-client.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
from typing import Any

import pytest
import yaml

from stack import operator_support as sup

pytestmark = [pytest.mark.bench, pytest.mark.stack]

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
THIRD_PARTY = {"lightkube": "lightkube", "kr8s": "kr8s", "kubernetes_asyncio": "kubernetes_asyncio"}
CLIENTS = ["ours", *THIRD_PARTY]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One client's rounds together: latencies pooled, CPU and operations summed, the median
    import time and import RSS, the highest peak RSS."""
    return {
        "import_s": statistics.median(r["import_s"] for r in runs),
        "import_rss_kib": statistics.median(r["import_rss_kib"] for r in runs),
        "peak_rss_kib": max(r["peak_rss_kib"] for r in runs),
        "latency_ms": {
            op: [v for r in runs for v in r["latency_ms"][op]] for op in runs[0]["latency_ms"]
        },
        "cpu_s": sum(r["cpu_s"] for r in runs),
        "wall_s": sum(r["wall_s"] for r in runs),
        "ops": sum(r["ops"] for r in runs),
        "notes": runs[0]["notes"],
    }


def test_kube_clients_compared(kube: Any) -> None:
    missing = [m for m in THIRD_PARTY.values() if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"the Kubernetes client benchmark needs {', '.join(missing)}: "
            "pip install -e '.[bench-clients]'"
        )
    n = int(os.environ.get("KUBE_CLIENT_BENCH_N", "200"))
    sup.install_crds(kube)
    ns = "kube-client-bench"
    kube.kubectl("create", "namespace", ns, check=False)
    region = yaml.safe_load((ROOT / "examples/regions/us-east-1.yaml").read_text())
    region["metadata"]["namespace"] = ns
    sup.apply_yaml(kube, region)
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "bench-lease",
            "namespace": ns,
            "labels": {"checkout-operator.io/bench-fleet": "bench"},
        },
        "spec": {"holderIdentity": "bench", "leaseDurationSeconds": 15},
    }
    sup.apply_yaml(kube, lease)

    rounds = int(os.environ.get("KUBE_CLIENT_BENCH_ROUNDS", "3"))
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
    failures: dict[str, str] = {}
    print(
        f"\nKubernetes clients, {rounds} rounds x {n} x 4 operations each, the clients' order "
        f"rotated every round (load average {load_average()}):"
    )
    for k in range(rounds):
        for which in CLIENTS[k % len(CLIENTS) :] + CLIENTS[: k % len(CLIENTS)]:
            done = subprocess.run(
                [sys.executable, str(HERE / "kube_clients.py"), which, str(kube.kubeconfig), ns,
                 region["metadata"]["name"], "bench-lease", str(n)],
                capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                print(f"  {which}: FAILED\n{done.stderr[-3000:]}")
                failures[which] = done.stderr[-3000:]
                continue
            runs[which].append(json.loads(done.stdout.strip().splitlines()[-1]))
            if which in os.environ.get("KUBE_CLIENT_BENCH_PROFILE", "").split(","):
                print(f"  profile of {which}:\n{done.stderr[-6000:]}")
    results = {which: pooled(r) for which, r in runs.items() if r}
    for which, r in results.items():
        print(
            f"\n  {which}: import {r['import_s'] * 1000:.0f} ms (+{r['import_rss_kib'] / 1024:.1f}"
            f" MiB), peak RSS {r['peak_rss_kib'] / 1024:.1f} MiB, {r['ops'] / r['wall_s']:.0f}"
            f" ops/s, CPU {r['cpu_s'] / r['ops'] * 1000:.2f} s per 1,000 ops"
        )
        for op, values in r["latency_ms"].items():
            print(
                f"    {op:<13} p50 {pct(values, 0.5):6.2f}  p95 {pct(values, 0.95):6.2f}  "
                f"p99 {pct(values, 0.99):6.2f}  mean {statistics.fmean(values):6.2f} ms"
            )
        for note in r["notes"]:
            print(f"    note: {note}")
    print("  (a shared 2-core machine: compare the clients with each other, not with other runs)")
    assert not failures, f"clients that did not finish: {sorted(failures)}"
    assert all(len(v) == n * rounds for r in results.values() for v in r["latency_ms"].values())
