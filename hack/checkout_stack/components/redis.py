"""Redis from the Debian package, no persistence, loopback only."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack.errors import MissingTool
from checkout_stack.proc import Proc, free_port

COMPONENT = "redis"


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Redis:
    dir: Path
    port: int = 0
    procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingTool(
                COMPONENT, "redis-server", "apt-get install -y redis-server (or bash hack/setup.sh)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        proc = Proc(
            COMPONENT,
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
            ],
            log=self.dir / "redis.log",
        ).start()
        self.procs.append(proc)
        proc.wait_ready(lambda: _pong(self.port), timeout=30, what="answering PING")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.procs.clear()
