"""A region's edge (its gatewayUrl on loopback): forwards, hangs, refuses, and forwards again."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from checkout_demo.infra import Edge


class Upper(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data.upper())


@pytest.fixture
def upstream() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upper)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def roundtrip(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"ping")
        return s.recv(16)


def test_edge_modes(upstream: int) -> None:
    edge = Edge("us-east-1")
    try:
        edge.upstream = upstream
        edge.set_mode("forward")
        assert roundtrip(edge.port) == b"PING"

        edge.set_mode("hang")
        with pytest.raises(TimeoutError):
            roundtrip(edge.port, timeout=0.5)  # accepted, never answered: a probe times out

        edge.set_mode("refuse")
        with pytest.raises(ConnectionRefusedError):
            roundtrip(edge.port)

        edge.set_mode("forward")  # the region is back on the same address
        assert roundtrip(edge.port) == b"PING"
    finally:
        edge.stop()
    with pytest.raises(ConnectionRefusedError):
        roundtrip(edge.port)
