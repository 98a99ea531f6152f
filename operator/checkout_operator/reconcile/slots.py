"""Reconcile slots: a bounded number of reconciles at once, the more urgent admitted first."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator


class Slots:
    """At most ``limit`` holders at once; a waiter of a more urgent class (lower number) is
    admitted before any less urgent one, first come first served within a class.

    Reconciles for a spec change (a new region, an edit) go before those that only roll up
    children's progress, so that fifty new regions get their children applied first while
    the rollouts they start proceed in the cluster."""

    def __init__(self, limit: int, classes: int = 2) -> None:
        if limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.limit = limit
        self._free = limit
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = tuple(
            collections.deque() for _ in range(classes)
        )

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters)

    @contextlib.asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters[min(max(priority, 0), len(self._waiters) - 1)]
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            raise

    def _release(self) -> None:
        for queue in self._waiters:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)  # the slot passes straight to this waiter
                    return
        self._free += 1
