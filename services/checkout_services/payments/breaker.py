"""A circuit breaker per provider and endpoint (closed -> open -> half-open -> closed)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from checkout_contract import payments as config

BreakerState = Literal["closed", "open", "half_open"]
STATE_VALUE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}


@dataclass
class CircuitBreaker:
    settings: config.CircuitBreaker
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = "closed"
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    opened_at: float = 0.0
    probes: int = 0
    probe_successes: int = 0
    failures: int = 0
    """Failures among ``outcomes`` (kept up to date, so a record is O(1) amortized)."""

    def _trim(self, now: float) -> None:
        horizon = now - self.settings.window_seconds
        while self.outcomes and self.outcomes[0][0] < horizon:
            _, ok = self.outcomes.popleft()
            if not ok:
                self.failures -= 1

    def current(self) -> BreakerState:
        if self.state == "open" and self.clock() - self.opened_at >= self.settings.open_seconds:
            self.state = "half_open"
            self.probes = 0
            self.probe_successes = 0
        return self.state

    def allow(self) -> bool:
        """May a request go to this provider now? (Counts a half-open probe.)"""
        state = self.current()
        if state == "closed":
            return True
        if state == "half_open" and self.probes < self.settings.half_open_requests:
            self.probes += 1
            return True
        return False

    def record(self, ok: bool) -> None:
        now = self.clock()
        state = self.current()
        if state == "half_open":
            if not ok:
                self._open(now)
                return
            self.probe_successes += 1
            if self.probe_successes >= self.settings.half_open_requests:
                self.state = "closed"
                self.outcomes.clear()
                self.failures = 0
            return
        if state == "open":
            return
        self.outcomes.append((now, ok))
        if not ok:
            self.failures += 1
        self._trim(now)
        total = len(self.outcomes)
        if total < self.settings.minimum_requests:
            return
        if self.failures * 100 >= self.settings.failure_rate_percent * total:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self.outcomes.clear()
        self.failures = 0


class BreakerRegistry:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, provider: str, endpoint: str, settings: config.CircuitBreaker) -> CircuitBreaker:
        key = (provider, endpoint)
        breaker = self.breakers.get(key)
        if breaker is None or breaker.settings != settings:
            breaker = CircuitBreaker(settings=settings, clock=self.clock)
            self.breakers[key] = breaker
        return breaker
