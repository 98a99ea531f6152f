"""Tell the checkout saga that a payment waiting for the shopper moved (:mod:`checkout_contract.
saga`): a Temporal signal to the checkout's workflow, sent after the state change committed.

Every way out of ``requires_action`` passes through :meth:`PaymentsService.move` (the provider's
webhook, ``/details``, the sweeper), which calls :meth:`SagaSignal.moved`. Sending is best
effort and off the request path (a few tries with backoff, in the background): the saga's
durable timer is the bound, and at its deadline the saga reads the payment once before it voids,
so a signal lost with a crashed process or an unreachable Temporal costs time, never a
wrong void. A payment without a saga (a direct API call) has no workflow: NOT_FOUND is
ignored.

Configured from the same environment as the orders service (``TEMPORAL_ADDRESS``, and the
namespace in the region config); without it nothing is sent (said once at start).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from prometheus_client import Counter
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from checkout_contract import saga

log = logging.getLogger("checkout_services.payments.saga_signal")

TRIES = 4


class SagaSignal:
    def __init__(self, address: str, namespace: str, outcomes: Counter) -> None:
        self.address = address
        self.namespace = namespace
        self.outcomes = outcomes
        self._client: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def client(self) -> Client:
        if self._client is None:
            # lazy: payments starts (and serves) while Temporal is down
            self._client = await Client.connect(self.address, namespace=self.namespace, lazy=True)
        return self._client

    def moved(self, checkout_id: str, state: str, action: dict[str, Any] | None) -> None:
        """Schedule the signal (never blocks the caller, never raises)."""
        task = asyncio.get_running_loop().create_task(self.send(checkout_id, state, action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, checkout_id: str, state: str, action: dict[str, Any] | None) -> None:
        payload = saga.payment_event(state, action)
        for n in range(TRIES):
            try:
                handle = (await self.client()).get_workflow_handle(saga.workflow_id(checkout_id))
                await handle.signal(saga.PAYMENT_CHANGED, payload)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    self.outcomes.labels("no-saga").inc()  # a direct call, or the saga ended
                    return
                log.warning("signal to the saga of %s: %s (try %d)", checkout_id, exc.status, n + 1)
            except Exception as exc:  # connect errors: Temporal is away
                log.warning("signal to the saga of %s: %s (try %d)", checkout_id, exc, n + 1)
            else:
                self.outcomes.labels("sent").inc()
                return
            await asyncio.sleep(random.uniform(0, 0.2 * 2**n))
        self.outcomes.labels("failed").inc()

    async def aclose(self) -> None:
        """Let the signals in flight finish (bounded), then cancel what is left."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
