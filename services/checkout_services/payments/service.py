"""The payments service object: its dependencies, and the helpers the operations share."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any, Final

import httpx

from checkout_contract import payments as config
from checkout_services.payments import (
    breaker,
    db,
    exceptions,
    idempotency,
    metrics,
    routing,
    saga_signal,
)
from checkout_services.payments import state_machine as sm
from checkout_services.payments.adapters import base, registry
from checkout_services.payments.settings import Settings

log = logging.getLogger("checkout_services.payments")

SAGA_WAITS_IN: Final = frozenset({sm.PaymentState.REQUIRES_ACTION, sm.PaymentState.CAPTURE_PENDING})
"""States the checkout saga waits on: every move out of them is signalled to it."""


@dataclasses.dataclass
class HeldLease:
    checkout_id: str
    owner: str
    released: bool = False


HELD_LEASE: contextvars.ContextVar[HeldLease | None] = contextvars.ContextVar(
    "held_lease", default=None
)
"""The lease the current request holds: the state change that ends the operation releases it
in the same statement (one round trip less)."""


class PaymentsService:
    def __init__(
        self,
        *,
        settings: Settings,
        routing_config: config.PaymentRoutingConfig,
        repo: db.Repository,
        idem: idempotency.IdempotencyStore,
        http: httpx.AsyncClient,
        metrics: metrics.Metrics,
    ) -> None:
        self.settings = settings
        routing_config, self.only_method = routing.by_wire(routing_config)
        """Providers that take one payment method only (a method carried by a provider API)."""
        local = routing.simulator_dialect(routing_config)
        if local:
            log.warning(
                "providers %s speak the PSP simulator's local dialect (no real provider API has"
                " it): give them api: stripe or adyen",
                ", ".join(local),
            )
        self.routing = routing_config
        self.repo = repo
        self.idem = idem
        self.http = http
        self.metrics = metrics
        self.breakers = breaker.BreakerRegistry()
        self.rates = routing.SuccessRates()
        self.owner = settings.instance or f"payments-{secrets.token_hex(4)}"
        self.providers: dict[str, config.Provider] = {}
        self.breaker_settings: dict[str, config.CircuitBreaker] = {}
        for route in routing_config.routes:
            for p in route.providers:
                self.providers.setdefault(p.name, p)
                self.breaker_settings.setdefault(p.name, route.circuit_breaker)
        self.credentials: dict[str, base.Credentials] = {
            name: base.load_credentials(p) for name, p in self.providers.items()
        }
        self._adapters: dict[base.Target, base.PSPAdapter] = {}
        self.saga: saga_signal.SagaSignal | None = None
        """Set when the region's Temporal is configured: a payment leaving requires_action
        signals its checkout saga."""

    # -- adapters ------------------------------------------------------------------------------
    def adapter(self, target: base.Target) -> base.PSPAdapter:
        adapter = self._adapters.get(target)
        if adapter is None:
            creds = self.credentials.get(target.provider)
            if creds is None:
                raise exceptions.ProviderRejected(
                    f"provider {target.provider!r} is no longer configured"
                )
            adapter = registry.build(target, creds, self.http)
            adapter.latency_observer = self.metrics.observe_psp  # type: ignore[attr-defined]
            self._adapters[target] = adapter
        return adapter

    def target_of(
        self, provider: str, provider_type: str, endpoint: str, account: str
    ) -> base.Target:
        """The exact provider/account/endpoint an earlier call went to (from the DB)."""
        configured = self.providers.get(provider)
        timeout = configured.timeout_ms if configured else 2000
        return base.Target(provider, provider_type, endpoint, account, timeout)  # type: ignore[arg-type]

    def payment_target(self, payment: db.Payment) -> base.Target:
        assert payment.provider
        assert payment.provider_type
        assert payment.endpoint
        assert payment.account
        return self.target_of(
            payment.provider, payment.provider_type, payment.endpoint, payment.account
        )

    def takes(
        self, target: base.Target, method: str, token: base.PaymentMethodToken | None
    ) -> bool:
        """Whether this provider can take the payment (its one method, if it has one, and what
        the client sent)."""
        only = self.only_method.get(target.provider)
        return (only is None or only == method) and self.adapter(target).accepts(method, token)

    def breaker_for(self, target: base.Target) -> breaker.CircuitBreaker:
        settings = self.breaker_settings.get(target.provider, config.CircuitBreaker())
        return self.breakers.get(target.provider, target.endpoint, settings)

    def record_call(self, target: base.Target, ok: bool) -> None:
        b = self.breaker_for(target)
        b.record(ok)
        self.metrics.breaker.labels(target.provider, target.endpoint).set(
            breaker.STATE_VALUE[b.current()]
        )

    def call_failed(self, target: base.Target, failure_class: str) -> None:
        """A PSP call without a verdict: the breaker counts it, the error metric too."""
        self.record_call(target, False)
        self.metrics.psp_errors.labels(target.provider, failure_class).inc()

    # -- lookups -------------------------------------------------------------------------------
    async def lookup(self, target: base.Target, checkout_id: str) -> list[base.FoundPayment] | None:
        """What the provider holds for this checkout; None if it could not be asked."""
        adapter = self.adapter(target)
        for attempt in range(self.settings.lookup_attempts):
            try:
                found = await adapter.lookup(checkout_id=checkout_id)
            except base.PSPError as exc:
                self.metrics.psp_errors.labels(target.provider, exc.failure_class).inc()
                await asyncio.sleep(backoff(attempt))
                continue
            self.metrics.lookups.labels(target.provider, "found" if found else "nothing").inc()
            return found
        self.metrics.lookups.labels(target.provider, "failed").inc()
        return None

    def new_owner(self) -> str:
        return f"{self.owner}:{secrets.token_hex(6)}"

    @contextlib.asynccontextmanager
    async def lease(self, checkout_id: str) -> AsyncIterator[str]:
        """Exclusive right to run a PSP operation for this checkout (expires on its own if the
        process dies). Each request has its own owner token, so concurrent duplicates inside
        one process are kept apart too."""
        owner = self.new_owner()
        if not await self.repo.acquire_lease(checkout_id, owner, self.settings.lease_seconds):
            raise exceptions.OperationInProgress(
                f"checkout {checkout_id!r} has another operation running; retry later"
            )
        async with self.holding(checkout_id, owner):
            yield owner

    @contextlib.asynccontextmanager
    async def holding(self, checkout_id: str, owner: str) -> AsyncIterator[HeldLease]:
        """Release the lease at the end unless a final state change already did."""
        held = HeldLease(checkout_id, owner)
        token = HELD_LEASE.set(held)
        try:
            yield held
        finally:
            HELD_LEASE.reset(token)
            if not held.released:
                await self.repo.release_lease(checkout_id, owner)

    async def get(self, checkout_id: str) -> db.Payment:
        payment = await self.repo.get(checkout_id)
        if payment is None:
            raise exceptions.PaymentNotFound(f"no payment for checkout {checkout_id!r}")
        return payment

    async def move(
        self,
        payment: db.Payment,
        target: sm.PaymentState,
        *,
        attempt: db.AttemptUpdate | None = None,
        **fields: Any,
    ) -> db.Payment:
        """A legal transition, compare-and-set on the current state."""
        try:
            sm.check(payment.state, target)
        except sm.IllegalTransition as exc:
            raise exceptions.IllegalTransitionError(str(exc), state=payment.state.value) from None
        held = HELD_LEASE.get()
        release = (
            held is not None
            and held.checkout_id == payment.checkout_id
            and target != sm.PaymentState.PENDING
        )
        moved = await self.repo.transition(
            payment.checkout_id,
            payment.state,
            target,
            attempt=attempt,
            release_owner=held.owner if release and held is not None else None,
            **fields,
        )
        if release and moved is not None and held is not None:
            held.released = True
        if moved is not None and payment.state in SAGA_WAITS_IN:
            self.tell_saga(moved)
        if moved is None:
            current = await self.get(payment.checkout_id)
            if current.state == target:
                return current
            raise exceptions.IllegalTransitionError(
                f"payment moved to {current.state.value} meanwhile", state=current.state.value
            )
        return moved

    def tell_saga(self, payment: db.Payment) -> None:
        """The shopper's action ended (or asks for a next one), or the provider decided a
        capture it had accepted: tell the checkout saga."""
        if self.saga is not None:
            waiting = payment.state == sm.PaymentState.REQUIRES_ACTION
            self.saga.moved(
                payment.checkout_id, payment.state.value, payment.action if waiting else None
            )


def backoff(attempt: int, base_s: float = 0.02, cap_s: float = 0.5) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))
