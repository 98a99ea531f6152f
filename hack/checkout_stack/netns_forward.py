"""Into a node's network namespace: ``<addr>:<port>`` there -> ``127.0.0.1:<port>`` here.

The stack's servers (kube-apiserver, PostgreSQL, Redis, Kafka, Temporal) listen on the
machine's loopback only. A real node runs in a network namespace of its own (:mod:`netns`), and
its pods in namespaces behind its bridge. This process stays in the machine's namespace, opens
its listening sockets inside the node's (on the node's loopback, for the kubelet, kube-proxy and
CoreDNS, and on the bridge's gateway address, for the pods) and connects out from here: the
same port numbers on both sides, nothing listening on any of the machine's own addresses.

``python -m checkout_stack.netns_forward NETNS_PATH ADDR[,ADDR...] PORT...``

The other way (:func:`expose`, what a ``kubectl port-forward`` or a NodePort gives): the
machine's ``127.0.0.1:<local>`` -> ``<host>:<port>`` inside the node's namespace (a pod or
ClusterIP address), e.g. a region's entry for the demo's edges and load.

``python -m checkout_stack.netns_forward --expose NETNS_PATH LOCAL_PORT HOST PORT``
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from checkout_stack.loopback_forward import relay
from checkout_stack.netns import entered


def _listening(path: Path, addrs: list[str], ports: list[int]) -> list[tuple[socket.socket, int]]:
    socks = []
    with entered(path):
        for addr in addrs:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr, port))
                sock.listen(128)
                sock.setblocking(False)
                socks.append((sock, port))
    return socks


async def main(path: Path, addrs: list[str], ports: list[int]) -> None:
    # stopped with the node: nothing to flush, open connections just end
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, os._exit, 0)
    servers = []
    for sock, port in _listening(path, addrs, ports):

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int = port
        ) -> None:
            await relay(reader, writer, "127.0.0.1", port)

        servers.append(await asyncio.start_server(handle, sock=sock))
    print(f"forwarding {addrs} x {ports} in {path} -> 127.0.0.1", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


async def expose(path: Path, local: int, host: str, port: int) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, os._exit, 0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with entered(path):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await relay(reader, writer, host, port, sock=sock)

    server = await asyncio.start_server(handle, "127.0.0.1", local)
    print(f"exposing {host}:{port} of {path} at 127.0.0.1:{local}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "--expose":
        ns, local, host, port = sys.argv[2:6]
        asyncio.run(expose(Path(ns), int(local), host, int(port)))
    else:
        addrs, ports = sys.argv[2].split(","), [int(p) for p in sys.argv[3:]]
        asyncio.run(main(Path(sys.argv[1]), addrs, ports))
