"""What the demo runs besides Kubernetes: per region PostgreSQL, Redis, Kafka and Temporal, the
PSP simulator, and each region's edge (a TCP forwarder in front of the region's entry service)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from checkout_stack.components.kafka import KafkaCluster
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.errors import StackError
from checkout_stack.proc import free_port

SERVICES_BIN = Path(sys.executable).parent / "checkout-services"


class Stoppable(Protocol):
    def stop(self) -> None: ...


BACKGROUND_NICE = 10
"""The demo runs what is off the checkout path (each region's Kafka broker and MirrorMaker 2,
and the management cluster's control plane) at this ``nice``: on a real fleet the brokers and
the control plane run on their own nodes, and MM2 beside the services with the smaller CPU
weight its smaller request gives it (100m); here all three regions share two cores, and a
checkout must not wait behind a broker's, MM2's or the apiserver's CPU burst. They still get every
cycle the checkout path leaves (nice shifts shares, it caps nothing): the report's CPU figures
count them in full."""


@dataclass
class RegionInfra:
    """One region's own backing services (the region's Secrets point at these)."""

    name: str
    dir: Path
    postgres: Postgres = field(init=False)
    redis: Redis = field(init=False)
    kafka: KafkaCluster = field(init=False)
    temporal: Temporal = field(init=False)
    database: str = "checkout"

    def __post_init__(self) -> None:
        self.postgres = Postgres(self.dir / "postgres")
        self.redis = Redis(self.dir / "redis")
        # the stack's small broker settings (-Xmx512m, serial GC, class-data sharing archive),
        # behind the checkout path for the CPU (BACKGROUND_NICE)
        self.kafka = KafkaCluster(self.name, self.dir / "kafka", nice=BACKGROUND_NICE)
        self.temporal = Temporal(self.dir / "temporal")

    @property
    def database_url(self) -> str:
        return self.postgres.dsn_for(self.database)

    def starters(self) -> dict[str, Callable[[], object]]:
        return {
            f"postgres[{self.name}]": self._start_postgres,
            f"redis[{self.name}]": self.redis.start,
            f"kafka[{self.name}]": self.kafka.start,
            f"temporal[{self.name}]": self.temporal.start,
        }

    def _start_postgres(self) -> None:
        self.postgres.start()
        self.postgres.create_database(self.database)

    def secrets(self) -> dict[str, dict[str, str]]:
        """Secret name -> data, as the CheckoutRegion's dependencies reference them."""
        return {
            f"{self.name}-postgres": {"url": self.database_url},
            f"{self.name}-redis": {"url": self.redis.url},
            f"{self.name}-kafka": {"bootstrap": self.kafka.bootstrap},
            f"{self.name}-kafka-remote": {"bootstrap": self.kafka.bootstrap},
            f"{self.name}-temporal": {"address": self.temporal.address},
        }

    def stop(self) -> None:
        for part in (self.temporal, self.kafka, self.redis, self.postgres):
            with contextlib.suppress(Exception):
                part.stop()


def start_parallel(starters: dict[str, Callable[[], object]], workers: int = 4) -> dict[str, float]:
    """Start in threads (at most ``workers`` at once: two cores); raise the first error."""
    seconds: dict[str, float] = {}
    errors: list[BaseException] = []

    def timed(name: str, fn: Callable[[], object]) -> None:
        began = time.monotonic()
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            seconds[name] = time.monotonic() - began

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(timed, n, f) for n, f in starters.items()]:
            future.result()
    if errors:
        raise errors[0]
    return seconds


# --- the PSP simulator -------------------------------------------------------------------------


@dataclass
class PspSim:
    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PspSim:
        self.port = self.port or free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "psp-sim.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(SERVICES_BIN), "psp-sim", "--port", str(self.port), "--seed", "7"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_http(f"{self.url}/_sim/health", self.proc, self.dir / "psp-sim.log")
        self.admin("POST", "settings", {"autoCompleteMs": 5})
        return self

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, f"{self.url}/_sim/{path}", json=body, timeout=30)
        if resp.status_code != 200:
            raise StackError(
                "psp-sim",
                f"{method} /_sim/{path}: {resp.status_code} {resp.text}",
                fix="see the simulator log",
            )
        return resp.json()

    def faults(self, rules: list[dict[str, Any]]) -> None:
        self.admin("POST", "faults", {"rules": rules, "replace": True})

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def ledger(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "ledger")
        return result

    def stop(self) -> None:
        stop_popen(self.proc)


def wait_http(
    url: str, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise StackError(
                "demo", f"{url}: the process exited with {proc.returncode}", log=log, fix=tail
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise StackError("demo", f"{url} not ready after {timeout:.0f} s", log=log, fix="see the log")


def stop_popen(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def kill_popen(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process group: nothing gets to clean up (a crash)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


# --- a region's edge -------------------------------------------------------------------------

EdgeMode = Literal["forward", "hang", "refuse"]


class Edge:
    """The region's entry on loopback (its ``gatewayUrl``): forwards TCP to the region's entry
    service. ``hang`` accepts and never answers (probes time out), ``refuse`` closes the
    listener (connection refused). Runs on its own event loop thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.upstream: int | None = None
        self.mode: EdgeMode = "forward"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._held: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def set_mode(self, mode: EdgeMode) -> None:
        self._call(self._set_mode(mode))

    async def _set_mode(self, mode: EdgeMode) -> None:
        self.mode = mode
        if mode != "hang":
            for writer in list(self._held):
                writer.close()
            self._held.clear()
        if mode == "refuse":
            await self._close()
        elif self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "hang" or self.upstream is None:
            self._held.add(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.mode != "forward":
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _shutdown(self) -> None:
        await self._set_mode("refuse")
        for writer in list(self._held):
            writer.close()
        self._held.clear()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)  # let the transports finish closing

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
