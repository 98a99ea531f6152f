"""In-process answers: the orders API waits here for its checkout's outcome, and the saga's
activities, running in the worker of the same process, hand it over.

The cheapest way for the client to learn "order placed": no update, no query and no result
polling through the Temporal server. The ``place`` activity resolves the waiter only after the
transaction holding the order and its ORDER_PLACED outbox row committed, so an acknowledged
order is in the database with its event (the no-lost-order rule); ``notify_failure`` resolves
it with the failure once the compensations ran. When the workflow task runs in another process
(the start was not eager, or a retry after a crash), nothing arrives here and the API falls
back to the workflow's ``placed`` update.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Placements:
    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}

    def expect(self, checkout_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(checkout_id, []).append(fut)
        return fut

    def forget(self, checkout_id: str, fut: asyncio.Future[dict[str, Any]]) -> None:
        futs = self.waiting.get(checkout_id)
        if futs is not None and fut in futs:
            futs.remove(fut)
            if not futs:
                del self.waiting[checkout_id]

    def resolve(self, checkout_id: str, outcome: dict[str, Any]) -> None:
        for fut in self.waiting.pop(checkout_id, ()):
            if not fut.done():
                fut.set_result(outcome)
