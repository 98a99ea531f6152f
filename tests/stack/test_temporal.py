"""The Temporal dev server of the local stack runs a workflow to completion."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from checkout_stack.components.temporal import Temporal

pytestmark = pytest.mark.stack


@activity.defn
async def total_minor(amounts: list[int]) -> int:
    return sum(amounts)


@workflow.defn(sandboxed=False)
class TotalWorkflow:
    @workflow.run
    async def run(self, amounts: list[int]) -> str:
        total = await workflow.execute_activity(
            total_minor, amounts, start_to_close_timeout=timedelta(seconds=30)
        )
        return f"{total} EUR"


async def test_workflow_with_activity_completes(temporal: Temporal) -> None:
    client = await Client.connect(temporal.address, namespace=temporal.namespace)
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[TotalWorkflow], activities=[total_minor]
    ):
        result = await client.execute_workflow(
            TotalWorkflow.run,
            [1999, 1],
            id=f"wf-{uuid.uuid4().hex}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=60),
        )
    assert result == "2000 EUR"
    handle = client.get_workflow_handle(f"wf-{uuid.uuid4().hex}")
    with pytest.raises(Exception, match="not found"):
        await handle.describe()
