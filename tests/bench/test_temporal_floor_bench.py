"""Benchmark: the Temporal dev server's own CPU per workflow, for the smallest workflow there is
(one workflow task, no activity, returns its input), started open-loop at a fixed rate.

This is the floor under any "a Temporal workflow per checkout" design on this machine: whatever
the checkout saga does on top (local activities' markers, updates, activity tasks) costs more.
Variants: a plain start (client waits on the result), an eager start (the worker in this
process gets the first workflow task in the start call's answer, no matching round trip; the
client still long-polls the result), update-with-start (the client waits on an update, as the
orders service did), and eager + local activity (the orders service's pattern now: one local
activity whose completion, in this process, is the answer; nobody polls the server). Prints
per rate: achieved rate, p50/p95 of start->answer, the server's and this process's (client +
worker) CPU ms per workflow, load.
``TEMPORAL_FLOOR_RATES`` (default 50,100) and ``TEMPORAL_FLOOR_SECONDS`` (default 5).
Asserts only that every workflow answered.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from checkout_stack.components.temporal import Temporal

pytestmark = [pytest.mark.bench, pytest.mark.stack]

RATES = tuple(int(r) for r in os.environ.get("TEMPORAL_FLOOR_RATES", "50,100").split(","))
SECONDS = float(os.environ.get("TEMPORAL_FLOOR_SECONDS", "5"))


ANSWERS: dict[str, asyncio.Future[str]] = {}


@activity.defn(name="answer")
async def answer(wid: str) -> str:
    fut = ANSWERS.pop(wid, None)
    if fut is not None and not fut.done():
        fut.set_result("ok")
    return "ok"


@workflow.defn(name="FloorLocal", sandboxed=False)
class FloorLocalWorkflow:
    @workflow.run
    async def run(self, wid: str) -> str:
        return str(
            await workflow.execute_local_activity(
                answer, wid, start_to_close_timeout=timedelta(seconds=10)
            )
        )


@workflow.defn(name="Floor", sandboxed=False)
class FloorWorkflow:
    def __init__(self) -> None:
        self.done = False

    @workflow.update(name="done")
    async def done_update(self) -> str:
        return "ok"

    @workflow.run
    async def run(self, value: str) -> str:
        return value


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


async def open_loop(
    rate: int, seconds: float, one: Callable[[str], Awaitable[None]]
) -> list[float]:
    run = uuid.uuid4().hex[:6]
    latencies: list[float] = []

    async def timed(i: int, scheduled: float) -> None:
        await one(f"floor-{run}-{i}")
        latencies.append(time.perf_counter() - scheduled)

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(i, scheduled)))
    await asyncio.gather(*tasks)
    return latencies


async def test_temporal_floor(temporal: Temporal) -> None:
    client = await Client.connect(temporal.address, namespace=temporal.namespace)
    queue = f"floor-{uuid.uuid4().hex[:8]}"

    async def plain(wid: str) -> None:
        assert await client.execute_workflow(FloorWorkflow.run, "x", id=wid, task_queue=queue)

    async def eager(wid: str) -> None:
        handle = await client.start_workflow(
            FloorWorkflow.run, "x", id=wid, task_queue=queue, request_eager_start=True
        )
        assert await handle.result()

    async def update_with_start(wid: str) -> None:
        start = WithStartWorkflowOperation(
            FloorWorkflow.run,
            "x",
            id=wid,
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert await client.execute_update_with_start_workflow(
            FloorWorkflow.done_update, start_workflow_operation=start
        )

    async def eager_local(wid: str) -> None:
        fut = asyncio.get_running_loop().create_future()
        ANSWERS[wid] = fut
        await client.start_workflow(
            FloorLocalWorkflow.run, wid, id=wid, task_queue=queue, request_eager_start=True
        )
        assert await asyncio.wait_for(fut, 60) == "ok"

    server = temporal.procs[0].pid
    me = os.getpid()
    async with Worker(
        client,
        task_queue=queue,
        workflows=[FloorWorkflow, FloorLocalWorkflow],
        activities=[answer],
    ):
        await open_loop(20, 1.0, plain)  # warm-up
        print(f"\nTemporal floor (minimal workflow), {SECONDS:.0f} s per rate")
        print(
            f"{'variant':>18} {'rate/s':>7} {'ok':>5} {'p50 ms':>8} {'p95 ms':>8}"
            f" {'server ms/wf':>13} {'py ms/wf':>9} {'load':>5}"
        )
        for name, one in (
            ("eager+local answer", eager_local),
            ("plain", plain),
            ("eager", eager),
            ("update-with-start", update_with_start),
        ):
            for rate in RATES:
                s0, p0 = cpu_seconds(server), cpu_seconds(me)
                lat = await open_loop(rate, SECONDS, one)
                await asyncio.sleep(1)
                n = len(lat)
                assert n == int(rate * SECONDS)
                server_ms = (cpu_seconds(server) - s0) * 1000 / n
                py_ms = (cpu_seconds(me) - p0) * 1000 / n
                print(
                    f"{name:>18} {rate:>7} {n:>5} {pct(lat, 50) * 1000:>8.1f}"
                    f" {pct(lat, 95) * 1000:>8.1f} {server_ms:>13.2f} {py_ms:>9.2f}"
                    f" {os.getloadavg()[0]:>5.1f}"
                )
