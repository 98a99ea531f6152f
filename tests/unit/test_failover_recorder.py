"""The failover engine's recorder: what follows the leases (statuses, routing, history, Events)
is written off the decision path; the newest status of a fleet wins, every move's records are
written once and in order, and a failing write neither stops the recorder nor loses the rest."""

from __future__ import annotations

import asyncio
from typing import Any

from checkout_kube import errors as kerrors
from checkout_operator.reconcile import failover


async def test_latest_status_wins_and_records_keep_their_order() -> None:
    recorder = failover.Recorder()  # the recorder needs no cluster
    written: list[str] = []
    gate = asyncio.Event()

    def job(name: str, *, wait: bool = False, fail: bool = False) -> Any:
        async def run() -> None:
            if wait:
                await gate.wait()
            if fail:
                raise kerrors.KubeError(f"{name} refused")
            written.append(name)

        return run

    try:
        # A slow status write is under way; the decision loop queues more without waiting.
        recorder.record((("ns", "f"), job("status-1", wait=True)), [job("move-1")])
        await asyncio.sleep(0)
        recorder.record((("ns", "f"), job("status-2")), [job("move-2", fail=True)])
        recorder.record((("ns", "f"), job("status-3")), [job("move-3")])
        recorder.record((("ns", "g"), job("other-fleet")))
        assert written == []
        gate.set()
        await recorder.flush()
        # status-2 was superseded before it ran; move-2 failed (logged) and move-3 still came.
        assert written == ["status-1", "status-3", "other-fleet", "move-1", "move-3"]
        await recorder.flush()  # nothing queued: returns at once
    finally:
        await recorder.aclose()
