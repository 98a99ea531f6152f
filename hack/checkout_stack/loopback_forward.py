"""Inside a pod's network namespace: ``127.0.0.1:<port>`` -> ``<host>:<port>`` for each port.

The stack's servers (PostgreSQL, Redis, Kafka, Temporal, kube-apiserver) listen on the host's
loopback only, and Kafka advertises ``127.0.0.1:<port>`` to its clients. A pod in its own
network namespace (slirp4netns, the host's loopback reachable as 10.0.2.2) runs this first, as
a sidecar sharing the namespace: the services then use the same addresses as on the host.

Standard library only: it runs with the image's Python (``python -m`` is not needed:
``python /forward.py HOST PORT...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    sock: socket.socket | None = None,
) -> None:
    """One accepted connection piped to ``host:port`` and back, until either side closes;
    ``sock``: an unconnected socket to connect with (e.g. one made in another namespace)."""
    try:
        if sock is None:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        else:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
    except OSError:
        writer.close()
        if sock is not None:
            sock.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _serve(host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await relay(reader, writer, host, port)

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def main(host: str, ports: list[int]) -> None:
    # PID 1 of its container: SIGTERM has no default action there
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, sys.exit, 0)
    servers = [await _serve(host, port) for port in ports]
    print(f"forwarding 127.0.0.1:{ports} -> {host}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
