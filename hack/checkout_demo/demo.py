"""The demo run: bring everything up (:mod:`checkout_demo.stack`), drive load, run a GameDay
scenario, follow the writers the operator publishes (:mod:`checkout_demo.writers`), check the
promises, report."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import checkout_tasks
from checkout_demo import cluster, report, report_files, scenarios, stopping, verify
from checkout_demo.load import LoadGen, Router
from checkout_demo.stack import STOCK, Stack
from checkout_demo.view import WriterEvent
from checkout_demo.writers import Published
from checkout_stack.errors import StackError


@dataclass
class Options:
    scenario: str = "kill-region"
    region: str = "us-east-1"
    rate: float = 3.0
    warmup: float = 20.0
    before: float = 60.0
    during: float = 60.0
    after: float = 30.0
    failover_timeout: float = 45.0
    out: Path = Path("demo-report")
    keep: bool = False
    workdir: Path | None = None
    """The work folder (logs, data); None: a new temporary one."""


class Demo:
    def __init__(self, opts: Options, say: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.say = say
        self.workdir = opts.workdir or cluster.new_workdir()
        self.failed = False
        """An error ended the run: the work folder is kept for its logs."""
        self.stack = Stack(self.workdir, say)
        self.fleet = self.stack.fleet
        self.names = self.stack.names
        self.published = Published(self.names, self.stack.down)
        self.writers = self.published.writers
        self.states = self.published.states
        self.epochs = self.published.epochs
        self.t0 = time.monotonic()
        self._watch_stop = threading.Event()
        self._watch: threading.Thread | None = None
        self.load: LoadGen | None = None
        self.phase = "starting"
        self.marks: dict[str, float] = {}
        self.cpu: dict[str, dict[str, float]] = {}
        self.warmup_summary: dict[str, Any] = {}

    # what the report reads (view.RunRecord), kept by the stack and the writers' record
    @property
    def stoppables(self) -> list[Any]:
        return self.stack.stoppables

    @property
    def api(self) -> cluster.Api | None:
        return self.stack.api

    @property
    def notes(self) -> list[str]:
        return self.stack.notes

    @property
    def timings(self) -> dict[str, float]:
        return self.stack.timings

    @property
    def writer_events(self) -> list[WriterEvent]:
        return self.published.events

    @property
    def routing_events(self) -> list[dict[str, Any]]:
        return self.published.routing_events

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- bring-up -----------------------------------------------------------------------------

    def up(self) -> None:
        self.say(f"demo: work folder {self.workdir}")
        self.stack.up()
        self.wait_serving()
        self.stack.arm_failover()
        self.read_writers()
        self._watch = threading.Thread(target=self._watch_loop, daemon=True)
        self._watch.start()

    def read_writers(self) -> None:
        assert self.api is not None
        self.published.read(self.api, self.now())

    def note(self, text: str) -> None:
        self.stack.note(text)

    # -- what the operator published ------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._watch_stop.wait(0.5):
            with contextlib.suppress(Exception):
                self.read_writers()
            for name, kubelet in self.stack.kubelets.items():
                if name not in self.stack.down:
                    with contextlib.suppress(Exception):
                        kubelet.sync()

    def entries(self) -> dict[str, str]:
        """Region -> the URL its customers' writes enter by (the gateway once it runs)."""
        return {n: k.entry().url for n, k in self.stack.kubelets.items()}

    # -- the run --------------------------------------------------------------------------------

    async def progress(self) -> None:
        tty = sys.stdout.isatty()
        last_print = 0.0
        while True:
            await asyncio.sleep(1.0)
            if self.load is None:
                continue
            rate, errors = self.load.window()
            writers = " ".join(
                f"{m}={self.writers.get(m, '?')}"
                + ("" if self.states.get(m) == "Serving" else f"({self.states.get(m)})")
                for m in sorted(self.writers)
            )
            acked = sum(1 for c in self.load.checkouts if c.outcome == "acknowledged")
            line = (
                f"[{self.phase:>7}] t={self.load.now():5.0f}s  {rate:4.1f} checkouts/s  "
                f"errors(5s)={errors:<3} acked={acked:<5} writers: {writers}"
            )
            if tty:
                print("\r" + line[:200].ljust(200), end="", flush=True)
            elif self.load.now() - last_print >= 5:
                print(line, flush=True)
                last_print = self.load.now()

    async def gameday(self) -> dict[str, Any]:
        opts = self.opts
        scenario = scenarios.get(opts.scenario)
        homes = {m: n for n in self.names for m in self.fleet.home_markets(n)}
        router = Router(lambda: dict(self.writers), self.stack.entries, homes)
        self.load = LoadGen(router, opts.rate, token=self.stack.issuer.token)
        self.load.t0 = time.monotonic()
        initial_writers = dict(self.writers)
        total = opts.before + opts.during + opts.after
        self.say(
            f"demo: load {opts.rate:g} checkouts/s for about {total:.0f} s (US, NL, DE, IN, BR, "
            f"with duplicate retries); GameDay: {scenario.title} ({opts.region}) after "
            f"{opts.before:.0f} s, recovery after {opts.during:.0f} s more, then "
            f"{opts.after:.0f} s with the region back"
        )
        await self.warm_up(router)
        self.load.t0 = time.monotonic()
        self.cpu["start"] = self.stack.cpu_snapshot()
        progress = checkout_tasks.start("demo progress", self.progress)
        # arrivals go on until `after` seconds past the region's return (its restart can take
        # long on a loaded machine); the bound only guards against a hang
        load = asyncio.create_task(self.load.run(total + 900))
        result: dict[str, Any] = {"scenario": scenario.name, "region": opts.region}
        try:
            self.phase = "before"
            await asyncio.sleep(opts.before)
            self.phase = "during"
            self.marks["fault"] = self.load.now()
            fault_wall = time.time()
            self.cpu["fault"] = self.stack.cpu_snapshot()
            await asyncio.to_thread(scenario.inject, self.stack, opts.region)
            failover = await self.published.wait_failover(
                opts.region,
                initial_writers,
                scenario.expects_failover,
                now=self.load.now,
                marks=self.marks,
                give_up_after=opts.failover_timeout,
            )
            result["failover"] = failover
            failover.update(self.lease_timing(opts.region, failover, fault_wall))
            follow = asyncio.create_task(self.wait_routing(failover))
            rest = opts.before + opts.during - self.load.now()
            if rest > 0:
                await asyncio.sleep(rest)
            self.phase = "recover"
            self.marks["recovery"] = self.load.now()
            try:
                await asyncio.to_thread(scenario.recover, self.stack, opts.region)
                self.marks["recovered"] = self.load.now()
            except StackError as exc:
                self.note(f"{opts.region} did not come back: {exc.problem}")
            self.phase = "after"
            await asyncio.sleep(opts.after)
            self.load.stop_arrivals()
            await load
            self.phase = "drain"
            await self.load.drain(within=60)
            self.marks["end"] = self.load.now()
        finally:
            self.load.stop_arrivals()
            progress.cancel()
            if "follow" in locals():
                follow.cancel()
            if sys.stdout.isatty():
                print()
        result["writers_before"] = initial_writers
        result["writers_after"] = dict(self.writers)
        return result

    async def warm_up(self, router: Router) -> None:
        """``warmup`` seconds of the same load before the clock starts, not counted in the
        report: every process has just started (first requests import lazily, fill connection
        pools, the Temporal workers' caches and the JIT-less interpreter's caches), and what the
        report measures is a region's steady state."""
        if self.opts.warmup <= 0:
            return
        self.say(f"demo: warming up for {self.opts.warmup:g} s (same load, not counted)")
        warm = LoadGen(router, self.opts.rate, token=self.stack.issuer.token, run_id="warmup")
        self.phase = "warm-up"
        await warm.run(self.opts.warmup)
        await warm.drain(within=30)
        acked = sum(1 for c in warm.checkouts if c.outcome == "acknowledged")
        self.timings["warmup"] = self.opts.warmup
        self.warmup_summary = {
            "seconds": self.opts.warmup,
            "attempted": len(warm.checkouts),
            "acknowledged": acked,
            "p95_ms": report.pct([c.latency_ms for c in warm.checkouts if c.latency_ms], 95),
        }

    def wait_serving(self, timeout: float = 120.0) -> None:
        """Wait until the operator shows every region Healthy and every market Serving from its
        home region. A load started earlier meets markets the first probes marked Down (503 +
        Retry-After 30): the operator's first status can say Serving before any probe ran."""
        homes = {m: n for n in self.names for m in self.fleet.home_markets(n)}
        self.say("demo: waiting for every market to be Serving from its home region")
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                self.read_writers()
            if self.published.serving_from(homes):
                self.timings["serving"] = time.monotonic() - began
                return
            time.sleep(0.5)
        self.note(
            f"not every market was Serving from its home region after {timeout:.0f} s: "
            + ", ".join(f"{m}={self.writers.get(m)}({self.states.get(m)})" for m in sorted(homes))
        )

    async def wait_routing(self, failover: dict[str, Any]) -> None:
        """After the operator published new writers: when every running region's routing
        ConfigMap shows them Serving (what the write guards and gateways follow), and when a
        moved market's checkout was first acknowledged there."""
        assert self.load is not None
        if not failover.get("happened"):
            return
        moved = failover["moved"]
        epochs = failover["epochs"]
        fault = self.marks["fault"]
        serving = self.published.routing_serving
        while True:
            if all(serving(m, w, epochs.get(m) or 0) for m, w in moved.items()):
                break
            await asyncio.sleep(0.25)
        self.marks["routing"] = self.load.now()
        failover["routing_seconds"] = round(self.marks["routing"] - fault, 2)

    def lease_timing(
        self, region: str, failover: dict[str, Any], fault_wall: float
    ) -> dict[str, Any]:
        """When each moved market's new writer got its write Lease, against the floor a
        correct operator cannot beat (the failover benchmark's goal: within 1 s of it)."""
        assert self.api is not None
        if not failover.get("happened"):
            return {}
        fleet = str(self.fleet.region(region)["spec"].get("fleet") or "")
        times = []
        for market, writer in (failover.get("moved") or {}).items():
            got = self.api.lease_acquired_at(fleet, market)
            if got is not None and got[0] == writer:
                times.append(got[1] - fault_wall)
        if not times:
            return {}
        floor = self.fleet.failover_floor_seconds(region)
        worst = max(times)
        return {
            "lease_seconds": round(worst, 2),
            "floor_seconds": floor,
            "within_goal": worst <= floor + 1.0,
        }

    async def check(self) -> verify.Verdict:
        """The promises, from the systems of record (:func:`verify.check`: what cannot be read
        within its deadline is reported as unverified, never as a broken promise)."""
        assert self.stack.sim is not None
        assert self.load is not None
        sim = self.stack.sim

        async def ledger() -> dict[str, Any]:
            return await asyncio.to_thread(sim.ledger)

        return await verify.check(
            ledger,
            [
                verify.Region(name, infra.database_url, infra.kafka.bootstrap)
                for name, infra in self.stack.infra.items()
            ],
            [(c.checkout_id, c.region) for c in self.load.checkouts if c.outcome == "acknowledged"],
            STOCK,
            ledger_transient=(httpx.HTTPError, OSError, StackError),
        )

    # -- teardown -------------------------------------------------------------------------------

    def down_all(self) -> None:
        self._watch_stop.set()
        if self._watch is not None:
            self._watch.join(5)
        self.stack.stop()
        if not self.opts.keep and not self.failed:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)


def run(opts: Options) -> int:
    began = time.monotonic()
    demo = Demo(opts)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop the demo even when it inherited SIGINT ignored (a job started in
    # the background by a shell without job control, as CI runners do): Python then leaves
    # SIGINT ignored and the first Ctrl-C did nothing.
    previous = {s: signal.signal(s, on_term) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        demo.up()
        startup = time.monotonic() - began
        result = asyncio.run(_run(demo))
        verdict = result.pop("_verdict")
        assert demo.load is not None
        summary = report.build(
            demo=demo, load=demo.load, verdict=verdict, result=result,
            startup_seconds=startup, total_seconds=time.monotonic() - began,
        )  # fmt: skip
        paths = report_files.write(summary, demo.load, demo, opts.out)
        print(report.text(summary))
        print(f"demo: report written to {', '.join(str(p) for p in paths)}")
        return int(summary["exit_code"])
    except Exception:
        demo.failed = True
        raise
    finally:
        # first: a Ctrl-C from here on must not cut the clean-up short (stopping.Shutdown)
        with stopping.Shutdown():
            print("demo: stopping everything it started", flush=True)
            demo.down_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def _run(demo: Demo) -> dict[str, Any]:
    result = await demo.gameday()
    demo.phase = "verify"
    demo.say("demo: checking the promises (PSP ledger, inventory, orders in DB and Kafka)")
    result["_verdict"] = await demo.check()
    return result
