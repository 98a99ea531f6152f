"""GameDay scenarios: what breaks, how it comes back, and whether a failover should follow."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checkout_demo.view import Stage
from checkout_stack.errors import StackError
from checkout_stack.proc import tcp_open

PSP_SLOW_MS = 1500


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    expects_failover: bool
    inject: Callable[[Stage, str], None]
    recover: Callable[[Stage, str], None]


def _sigkill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def kill_region(demo: Stage, region: str) -> None:
    """The region dies: its services and its database (PostgreSQL, Redis) are SIGKILLed and its
    edge refuses connections. Its Kafka and Temporal stay (the region's disks survive)."""
    demo.down.add(region)
    demo.edges[region].set_mode("refuse")
    demo.kubelets[region].kill()
    infra = demo.infra[region]
    for component in (infra.postgres, infra.redis):
        for proc in component.procs:
            _sigkill_group(proc.pid)
            if proc.popen is not None:
                proc.popen.wait(10)
        component.procs.clear()


def revive_region(demo: Stage, region: str) -> None:
    infra = demo.infra[region]
    infra.postgres.start()  # same data folder and port: a restart after a crash
    infra.redis.start()
    kubelet = demo.kubelets[region]
    kubelet.sync()
    kubelet.start()
    demo.edges[region].upstream = kubelet.entry().port
    demo.edges[region].set_mode("forward")
    demo.down.discard(region)


def hang_probes(demo: Stage, region: str) -> None:
    """The region's entry accepts connections and never answers: health probes time out
    (the services themselves keep running: the old writer must fence itself)."""
    demo.edges[region].set_mode("hang")


def unhang_probes(demo: Stage, region: str) -> None:
    demo.edges[region].set_mode("forward")


def _region_endpoints(demo: Stage, region: str) -> list[str]:
    """The simulator endpoints (``us``, ``eu``, ...) of the providers serving the region's
    home markets."""
    markets = set(demo.fleet.home_markets(region))
    out: set[str] = set()
    for route in demo.fleet.routes:
        if markets & set(route["spec"]["match"].get("countries") or ()):
            for p in route["spec"]["providers"]:
                out.add(p["endpoint"].rstrip("/").split("/")[-2])
    return sorted(out)


def slow_psp(demo: Stage, region: str) -> None:
    """The PSPs of the region's markets answer after 1.5 s (within their 2 s timeout): a slow
    but healthy region must not fail over."""
    assert demo.sim is not None
    rules: list[dict[str, Any]] = [
        {"kind": "latency", "endpoint": ep, "latencyMs": PSP_SLOW_MS}
        for ep in _region_endpoints(demo, region)
    ]
    demo.sim.faults(rules)


def fast_psp(demo: Stage, region: str) -> None:
    assert demo.sim is not None
    demo.sim.clear_faults()


def partition_kafka(demo: Stage, region: str) -> None:
    """The region's Kafka broker stops: the outbox keeps the events, MirrorMaker 2 stalls."""
    demo.infra[region].kafka.stop()


def heal_kafka(demo: Stage, region: str) -> None:
    kafka = demo.infra[region].kafka
    try:
        kafka.start()  # same data and ports
    except StackError:
        # recovering the logs of a stopped broker can outlast the stack's 90 s start wait on
        # a loaded machine: the process keeps starting, give it more time
        deadline = time.monotonic() + 180
        while not tcp_open(kafka.port):
            if time.monotonic() > deadline or not kafka.alive():
                raise
            time.sleep(1)


def nothing(demo: Stage, region: str) -> None:
    return None


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "kill-region", "kill a region (services + database)", True, kill_region, revive_region
        ),
        Scenario("hang-probes", "hang a region's health probes", True, hang_probes, unhang_probes),
        Scenario(
            "slow-psp", f"slow the region's PSPs ({PSP_SLOW_MS} ms)", False, slow_psp, fast_psp
        ),
        Scenario(
            "partition-kafka",
            "partition the region's Kafka (broker stopped)",
            False,
            partition_kafka,
            heal_kafka,
        ),
        Scenario("none", "no fault (steady load only)", False, nothing, nothing),
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError as exc:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}") from exc
