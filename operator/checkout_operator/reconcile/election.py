"""Leader election for everything the operator does (``checkout-operator run --leader-elect``).

With several replicas exactly one works: it watches and reconciles, resyncs, measures
replication lag and runs the failover engine. That is the holder of one ``coordination.k8s.io/v1``
Lease (:class:`leader.Leader`: every write a compare-and-swap on resourceVersion). The others
stand by: they try to take the Lease over every ``retry`` seconds and answer the health
endpoints, nothing else (no watch, no write). Like client-go's leader election
(``OnStoppedLeading``), a leader that could not renew its Lease for ``duration - skew`` seconds
stops all its work and returns :data:`LOST`; the process then exits, restarts as a standby and
keeps nothing of the lost leadership. A leader stopped on purpose (SIGTERM, a rollout) hands
the Lease over at once (an expired ``renewTime``), so the standby takes over within one retry.

The health endpoints (:class:`HealthServer`), served in every role on ``--health-port``:

- ``/healthz`` (liveness, as before): 200 while the process answers.
- ``/readyz`` (readiness): 200 when leading and the work said it is ready, or standing by with
  the Lease in reach (read within its duration); else 503. A standby that cannot see the Lease
  could not take over, so it is not counted as a ready one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from checkout_operator import metrics
from checkout_operator.reconcile import leader as rleader

logger = logging.getLogger("checkout_operator.election")

Outcome = Literal["stopped", "lost"]
STOPPED: Final[Outcome] = "stopped"
LOST: Final[Outcome] = "lost"

Work = Callable[[asyncio.Event, asyncio.Event], Awaitable[Any]]
"""``work(stop, ready)``: runs until ``stop`` is set (or it ends itself); sets ``ready`` once
it serves."""


class Status:
    """What the health endpoints answer: the role and readiness of this replica."""

    def __init__(self, leader: rleader.Leader | None) -> None:
        self.leader = leader
        self.leading = False
        self.ready = asyncio.Event()

    def role(self) -> str:
        if self.leading:
            return "leader"
        return "standby" if self.leader is not None else "starting"

    def live(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok", "role": self.role()}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        body: dict[str, Any] = {"role": self.role()}
        if self.leader is not None:
            body["lease"] = f"{self.leader.namespace}/{self.leader.name}"
            body["holder"] = self.leader.holder
        if self.leading:
            ok = self.ready.is_set() and (self.leader is None or self.leader.is_leader())
        else:
            ok = self.leader is not None and self.leader.in_touch()
        body["status"] = "ok" if ok else "not ready"
        return ok, body


class HealthServer:
    """A minimal HTTP/1.1 server for ``/healthz`` and ``/readyz`` (GET, JSON answers)."""

    def __init__(self, status: Status, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        self.status = status
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/healthz":
            ok, body = self.status.live()
        elif path == "/readyz":
            ok, body = self.status.readiness()
        else:
            return 404, {"status": "not found", "paths": ["/healthz", "/readyz"]}
        return (200 if ok else 503), body

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while await asyncio.wait_for(reader.readline(), 5) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing in them matters here
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            code, body = self.answer(path)
            payload = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
            head = (
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _wait_leading(leader: rleader.Leader, stop: asyncio.Event, poll: float) -> bool:
    """True once ``leader`` holds its Lease; False when ``stop`` is set first."""
    while not leader.is_leader():
        if stop.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll)
    return True


async def run_elected(
    leader: rleader.Leader | None,
    work: Work,
    status: Status,
    stop: asyncio.Event,
    *,
    poll: float = 0.1,
) -> Outcome:
    """Stand by until ``leader`` holds its Lease (at once when ``leader`` is None: no
    election), then run ``work`` until it ends, ``stop`` is set, or the Lease is lost."""
    lease = f"{leader.namespace}/{leader.name}" if leader is not None else ""
    gauge = metrics.LEADER.labels(lease=lease)
    if leader is None:
        gauge.set(1)
    else:
        gauge.set_function(lambda: 1.0 if leader.is_leader() else 0.0)
        leader.start()
        logger.info("standing by for the leader Lease %s as %s", lease, leader.identity)
        if not await _wait_leading(leader, stop, poll):
            await leader.aclose(release=False)
            return STOPPED
        logger.warning("%s leads (Lease %s): starting the operator's work", leader.identity, lease)
    status.leading = True
    stop_work = asyncio.Event()
    lost = False

    async def watch() -> None:
        nonlocal lost
        while not stop.is_set():
            if leader is not None and not leader.is_leader():
                lost = True
                logger.error(
                    "lost the leader Lease %s (not renewed within its duration): stopping", lease
                )
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
        stop_work.set()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await work(stop_work, status.ready)
    finally:
        status.leading = False
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if leader is not None:
            # A clean stop hands the Lease over at once; a lost one is someone else's already.
            await leader.aclose(release=not lost)
    return LOST if lost else STOPPED
