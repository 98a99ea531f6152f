"""The operator's health endpoints (``reconcile.election.HealthServer``) over real loopback
HTTP: liveness always, readiness only once the work serves (no election here; the standby's
answers are checked on the real apiserver in tests/stack/test_chart_ha.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from checkout_operator.reconcile import election


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_liveness_readiness_and_unknown_paths() -> None:
    status = election.Status(None)
    port = _free_port()
    server = election.HealthServer(status, port, host="127.0.0.1")
    await server.start()
    try:
        assert await _get(port, "/healthz") == (200, {"status": "ok", "role": "starting"})
        code, body = await _get(port, "/readyz")
        assert (code, body["status"]) == (503, "not ready")

        async def work(stop: asyncio.Event, ready: asyncio.Event) -> None:
            ready.set()
            await stop.wait()

        stop = asyncio.Event()
        task = asyncio.create_task(election.run_elected(None, work, status, stop))
        for _ in range(50):
            if status.ready.is_set():
                break
            await asyncio.sleep(0.01)
        assert await _get(port, "/readyz") == (200, {"role": "leader", "status": "ok"})
        assert (await _get(port, "/metrics"))[0] == 404
        stop.set()
        assert await asyncio.wait_for(task, 5) == election.STOPPED
        assert not status.leading
    finally:
        await server.aclose()
