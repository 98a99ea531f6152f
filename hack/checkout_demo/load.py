"""Open-loop checkouts at a fixed rate, with duplicate client retries (same Idempotency-Key).

Arrivals follow a fixed schedule whatever the answers do. Each checkout has two latencies: end to
end, from its scheduled time to the answer that acknowledged it (retries and their waits included:
what the customer waits), and the latency of the one HTTP attempt that succeeded (what the
service took). Every HTTP attempt is recorded too.

The client behaves like a sane one: a per-request timeout, bounded exponential backoff with
jitter between retries, the server's ``Retry-After`` honoured (it waits at least that long), and
an overall budget after which it gives up rather than sleeping past it. Where a market's requests
go is decided by one function, :meth:`Router.target_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# market -> (currency, payment method)
MARKETS: dict[str, tuple[str, str]] = {
    "US": ("USD", "card"),
    "NL": ("EUR", "card"),
    "DE": ("EUR", "card"),
    "IN": ("INR", "upi"),
    "BR": ("BRL", "pix"),
}
# What each method's client library would hand the demo shopper's browser: Stripe's documented
# test PaymentMethod for cards (APMs need only the return URL there; Adyen gets the type).
DEMO_RETURN_URL = "https://demo.checkout.test/return"
DEMO_TOKENS: dict[str, dict[str, Any]] = {
    "card": {"stripe": "pm_card_visa", "return_url": DEMO_RETURN_URL},
    "upi": {"adyen": {"type": "upi_qr"}, "return_url": DEMO_RETURN_URL},
    "pix": {"adyen": {"type": "pix"}, "return_url": DEMO_RETURN_URL},
}
# share of the total rate per market: a third per home region (us-east-1 US+BR, eu-west-1 NL+DE,
# ap-south-1 IN), so that every region's p95 rests on as many samples as the others (with the old
# 30/35/20 % split, ap-south-1's p95 before the fault was the slowest of ~19 checkouts)
WEIGHTS: dict[str, float] = {"US": 0.2, "NL": 0.17, "DE": 0.16, "IN": 0.34, "BR": 0.13}
LIMITED_SKU = "limited-sneaker"
SKUS = ("tee", "mug", LIMITED_SKU)
RETRYABLE = {409, 425, 429, 500, 502, 503, 504}
DEFINITIVE = {"out-of-stock", "payment-declined", "declined", "unpriceable"}


class Router:
    """Where each market's checkouts go: the entry (gateway, else orders) of the market's
    current writer region, as the operator publishes it. That is the write record the operator
    renders for the market (DNSEndpoint ``write.<market>.<zone>``, short TTL), which follows
    every failover; a client never keeps sending to a region that lost the market. Gateways
    still forward a write that reaches a region which is not the writer (a stale record while
    a market moves)."""

    def __init__(
        self,
        writers: Callable[[], dict[str, str]],
        entries: Callable[[], dict[str, str]],
        homes: dict[str, str] | None = None,
    ) -> None:
        self._writers = writers
        self._entries = entries
        self._homes = homes or {}

    def region_for(self, market: str) -> str:
        return self._writers().get(market) or self._homes.get(market, "")

    def target_url(self, market: str) -> str:
        """The one place that decides where a market's checkout is sent."""
        return self._entries().get(self.region_for(market), "")


@dataclass
class Attempt:
    checkout_id: str
    market: str
    region: str
    started: float  # seconds since the run's start
    latency_ms: float
    status: int  # 0: transport error / no target
    slug: str
    kind: str  # first | retry (after an error) | duplicate (same key, on purpose)


@dataclass
class Checkout:
    checkout_id: str
    market: str
    scheduled: float  # seconds since the run's start
    lines: list[dict[str, Any]]
    outcome: str = "pending"  # acknowledged | rejected | failed
    acked_at: float | None = None
    latency_ms: float | None = None
    """End to end: from the scheduled arrival to the acknowledging answer (retries included)."""
    attempt_ms: float | None = None
    """The HTTP attempt that got the acknowledgement, alone."""
    region: str = ""  # the region that acknowledged
    reason: str = ""
    total: int | None = None
    attempts: int = 0

    @property
    def customer(self) -> str:
        """One of 50 customers per market (the gateway rate-limits per client)."""
        return f"customer-{self.market}-{zlib.crc32(self.checkout_id.encode()) % 50}"


@dataclass
class LoadGen:
    router: Router
    rate: float
    token: Callable[[str], str] | None = None
    """Bearer token for a customer (the gateway authenticates; the services ignore it)."""
    seed: int = 11
    duplicate_share: float = 0.15
    concurrent_share: float = 0.05
    retry_budget_s: float = 45.0
    """A checkout not acknowledged this long after its arrival is given up (failed)."""
    request_timeout_s: float = 5.0
    """One HTTP attempt (connect + answer); a timed-out attempt is retried with the same key."""
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 2.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    checkouts: list[Checkout] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _arrivals_done: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def body(self, c: Checkout) -> dict[str, Any]:
        currency, method = MARKETS[c.market]
        return {
            "checkout_id": c.checkout_id,
            "market": c.market,
            "currency": currency,
            "lines": c.lines,
            "payment_method": method,
            "payment_method_token": DEMO_TOKENS[method],
        }

    def headers(self, c: Checkout) -> dict[str, str]:
        out = {"Idempotency-Key": f"demo-{c.checkout_id}"}
        if self.token is not None:
            out["Authorization"] = f"Bearer {self.token(c.customer)}"
        return out

    async def _post(
        self, client: httpx.AsyncClient, c: Checkout, kind: str
    ) -> tuple[int, dict[str, Any]]:
        """One HTTP attempt: (status, body + ``_region``, ``_slug``, ``_retry_after``,
        ``_ms``)."""
        url = self.router.target_url(c.market)
        region = self.router.region_for(c.market)
        started = self.now()
        status, slug, retry_after = 0, "no-target", 0.0
        body: dict[str, Any] = {}
        if url:
            try:
                resp = await client.post(
                    f"{url}/v1/checkouts",
                    json=self.body(c),
                    headers=self.headers(c),
                    timeout=self.request_timeout_s,
                )
                status = resp.status_code
                with_json = resp.headers.get("content-type", "").endswith("json")
                body = resp.json() if with_json else {}
                slug = "" if status == 201 else str(body.get("type", "")).rsplit("/", 1)[-1]
                with contextlib.suppress(ValueError):
                    retry_after = float(resp.headers.get("retry-after", "0"))
            except httpx.TimeoutException:
                slug = "timeout"
            except httpx.TransportError as exc:
                slug = type(exc).__name__
        ms = (self.now() - started) * 1000
        self.attempts.append(
            Attempt(c.checkout_id, c.market, region, started, ms, status, slug, kind)
        )
        return status, {
            **body, "_region": region, "_slug": slug, "_retry_after": retry_after, "_ms": ms,
        }  # fmt: skip

    async def _checkout(self, client: httpx.AsyncClient, c: Checkout, rng: random.Random) -> None:
        deadline = c.scheduled + self.retry_budget_s
        while True:
            c.attempts += 1
            if rng.random() < self.concurrent_share and c.attempts == 1:
                # a double click: two identical requests at once
                first, second = await asyncio.gather(
                    self._post(client, c, "first"), self._post(client, c, "duplicate")
                )
                status, body = first if first[0] == 201 else second
            else:
                status, body = await self._post(client, c, "retry" if c.attempts > 1 else "first")
            if status == 201:
                c.outcome = "acknowledged"
                c.acked_at = self.now()
                c.latency_ms = (c.acked_at - c.scheduled) * 1000
                c.attempt_ms = body["_ms"]
                c.region = body["_region"]
                c.total = body.get("total")
                if rng.random() < self.duplicate_share:
                    # the client did not see the answer and retries with the same key
                    await self._post(client, c, "duplicate")
                return
            slug = body["_slug"]
            if 400 <= status < 500 and status not in RETRYABLE:
                c.outcome = "rejected"
                c.reason = slug or str(status)
                return
            if slug in DEFINITIVE:
                c.outcome = "rejected"
                c.reason = slug
                return
            wait = max(self.backoff(c.attempts, rng), body["_retry_after"])
            if self.now() + wait > deadline or self._stop.is_set():
                # give up now rather than sleep past the budget
                c.outcome = "failed"
                c.reason = slug or str(status)
                return
            await asyncio.sleep(wait)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter, capped: attempt 1 -> up to 0.25 s, 2 -> 0.5 s,
        3 -> 1 s, then 2 s at most."""
        return rng.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))

    async def run(self, seconds: float) -> None:
        """Schedule arrivals for ``seconds`` from now (open loop), then return (checkouts still
        in flight keep running: :meth:`drain`)."""
        rng = random.Random(self.seed)
        markets = list(WEIGHTS)
        weights = [WEIGHTS[m] for m in markets]
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
        self._client = httpx.AsyncClient(limits=limits)
        start = self.now()
        n = int(seconds * self.rate)
        for i in range(n):
            scheduled = start + i / self.rate
            delay = scheduled - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._stop.is_set() or self._arrivals_done.is_set():
                break
            market = rng.choices(markets, weights)[0]
            sku = LIMITED_SKU if rng.random() < 0.2 else rng.choice(("tee", "mug"))
            c = Checkout(
                f"demo-{self.run_id}-{i}", market, scheduled, [{"sku": sku, "quantity": 1}]
            )
            self.checkouts.append(c)
            task = asyncio.create_task(self._checkout(self._client, c, random.Random(rng.random())))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stop_arrivals(self) -> None:
        """No new checkouts from now on (those in flight go on)."""
        self._arrivals_done.set()

    async def drain(self, within: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
        self._stop.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.request_timeout_s + 2)
        await self._client.aclose()

    # -- live figures ---------------------------------------------------------------------------

    def window(self, seconds: float = 5.0) -> tuple[float, int]:
        """(acknowledged per second, error answers) over the last ``seconds``."""
        now = self.now()
        acks = sum(
            1 for c in self.checkouts if c.acked_at is not None and c.acked_at > now - seconds
        )
        errors = sum(
            1 for a in self.attempts[-500:] if a.status != 201 and a.started > now - seconds
        )
        return acks / seconds, errors
