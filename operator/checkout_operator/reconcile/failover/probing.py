"""Probing: one guarded task per region probes its health endpoint on the region's own
``periodSeconds`` / ``timeoutSeconds`` and folds each result into the region's health
(:mod:`checkout_operator.failover.health`); a change of health state wakes the decision loop
at once (the threshold-th failure is a decision, the probes in between only change status).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import checkout_tasks as tasks
from checkout_operator import metrics
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover import health as fh
from checkout_operator.probes import http as probes
from checkout_operator.render import configmaps

Key = tuple[str, str]
"""(namespace, region name)."""


def health_url(parsed: CheckoutRegion) -> str:
    base = configmaps.gateway_url(parsed)
    return base.rstrip("/") + parsed.spec.health_probe.path


@dataclass(frozen=True)
class ProbeSpec:
    url: str
    period: float
    timeout: float
    thresholds: fh.Thresholds

    @classmethod
    def of(cls, parsed: CheckoutRegion) -> ProbeSpec:
        hp = parsed.spec.health_probe
        return cls(
            health_url(parsed),
            float(hp.period_seconds),
            float(hp.timeout_seconds),
            fh.Thresholds(hp.failure_threshold, hp.success_threshold),
        )


class Probing:
    """The probe tasks of every region and the health they measured."""

    def __init__(
        self, prober: probes.Prober, wake: Callable[[], None], supervisor: tasks.Supervisor
    ) -> None:
        self.prober = prober
        self.health: dict[Key, fh.Health] = {}
        self._wake = wake
        self._tasks = supervisor
        self._specs: dict[Key, ProbeSpec] = {}

    def health_of(self, namespace: str, name: str) -> fh.Health:
        return self.health.get((namespace, name), fh.Health())

    def ensure(self, namespace: str, parsed: CheckoutRegion) -> None:
        """A probe task for the region, (re)started when its probe settings changed."""
        key = (namespace, parsed.spec.region)
        spec = ProbeSpec.of(parsed)
        if self._specs.get(key) == spec and self._tasks.get(_name(key)) is not None:
            return
        self._specs[key] = spec
        self._tasks.start(_name(key), lambda: self._loop(key, spec))

    def namespaces(self) -> set[str]:
        return {k[0] for k in self._specs}

    def keep_only(self, keep: set[Key], namespace: str) -> None:
        """Stop probing the regions of ``namespace`` that are not in ``keep``."""
        for key in [k for k in self._specs if k[0] == namespace and k not in keep]:
            self._tasks.cancel(_name(key))
            self._specs.pop(key, None)
            self.health.pop(key, None)

    async def _loop(self, key: Key, spec: ProbeSpec) -> None:
        while True:
            started = time.monotonic()
            result = await self.prober.probe(spec.url, spec.timeout)
            metrics.PROBE_SECONDS.labels(region=key[1], outcome=result.outcome).observe(
                result.latency
            )
            before = self.health.get(key, fh.Health())
            after = fh.observe(before, result, spec.thresholds)
            self.health[key] = after
            if after.state != before.state:
                self._wake()
            await asyncio.sleep(max(0.0, spec.period - (time.monotonic() - started)))


def _name(key: Key) -> str:
    return f"failover probe {key[0]}/{key[1]}"
