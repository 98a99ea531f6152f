"""Replay: histories recorded by earlier shapes of the checkout saga still replay against the
current code (a worker upgraded mid-checkout must not fail its in-flight workflows with a
non-determinism error), and the current shape replays its own histories.

The v1 histories (tests/services/histories/checkout_v1_*.json) were recorded from the orders
service before the one-task shape: a placed checkout, a declined one and one whose capture
failed. Replaying needs no server: Temporal's Replayer runs the workflow code against them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from checkout_services.orders.workflow import CheckoutSagaWorkflow, CheckoutWorkflow

HISTORIES = Path(__file__).parent / "histories"
V1 = sorted(HISTORIES.glob("checkout_v1_*.json"))


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


def test_the_recorded_histories_are_there() -> None:
    assert {p.stem for p in V1} == {
        "checkout_v1_placed",
        "checkout_v1_declined",
        "checkout_v1_capture_failed",
    }


@pytest.mark.parametrize("path", V1, ids=lambda p: p.stem)
async def test_v1_histories_replay_on_the_current_worker(path: Path) -> None:
    replayer = Replayer(workflows=[CheckoutSagaWorkflow, CheckoutWorkflow])
    result = await replayer.replay_workflow(history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@workflow.defn(name="Checkout", sandboxed=False)
class NewShapeUnderTheOldName(CheckoutSagaWorkflow):
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        return await super().run(inp)


async def test_a_changed_v1_shape_is_caught() -> None:
    """The check can fail: the v1 history against the new shape (registered under the old
    type's name) is a non-determinism error."""
    replayer = Replayer(workflows=[NewShapeUnderTheOldName])
    result = await replayer.replay_workflow(
        history(HISTORIES / "checkout_v1_placed.json"), raise_on_replay_failure=False
    )
    assert result.replay_failure is not None
