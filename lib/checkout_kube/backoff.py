"""Exponential backoff with full jitter, for every loop that retries talking to a cluster."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class Backoff:
    """``next()`` is a random delay in ``[0, min(cap, base * factor**n)]`` (full jitter: many
    clients that failed together do not retry together); ``reset()`` after a success."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        *,
        floor: float = 0.05,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base = base
        self.cap = cap
        self.factor = factor
        self.floor = floor
        """The least delay: a retry loop never spins, whatever the random draw."""
        self.failures = 0
        self._rng = rng

    def next(self) -> float:
        ceiling = min(self.cap, self.base * self.factor ** min(self.failures, 32))
        self.failures += 1
        return max(self.floor, ceiling * self._rng())

    def reset(self) -> None:
        self.failures = 0

    async def sleep(self) -> float:
        """Sleep the next delay; returns it."""
        delay = self.next()
        await asyncio.sleep(delay)
        return delay
