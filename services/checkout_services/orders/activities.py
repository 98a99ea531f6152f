"""The saga's activities: each idempotent (keyed by the checkout), safe to run again.

HTTP calls carry the request id and an ``Idempotency-Key`` derived from the checkout (never
random per attempt). Transient failures (transport errors, 5xx, 409 in-progress) are retried a
few times here with exponential backoff and full jitter, then by Temporal's retry policy; a
definite 4xx is a non-retryable ``ApplicationError`` whose ``type`` is the problem's slug.

Why one module over 400 lines: the worker registers the activities of one object (its HTTP
client, pool and in-process placements, the one signed ``call``); each activity is a short
step, and splitting them by step would only spread that shared state over several classes.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from prometheus_client import Counter
from temporalio import activity
from temporalio.exceptions import ApplicationError

from checkout_contract import classification, config
from checkout_services.common import outbox, principal, requestid, scrub
from checkout_services.orders.placements import Placements

EVENT_NS = uuid.UUID("0b6f7f55-3c1d-4b7e-8d9e-3f1a2b4c5d6e")
RETRYABLE_SLUGS = frozenset(
    {"operation-in-progress", "idempotency-key-in-flight", "outcome-unknown", "not-ready"}
)


def event_id(checkout_id: str, what: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_NS, f"{checkout_id}:{what}")


def slug_of(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"http-{resp.status_code}"
    kind = str(body.get("type", "")) if isinstance(body, dict) else ""
    return kind.rsplit("/", 1)[-1] or f"http-{resp.status_code}"


CAPTURE_WAIT_SECONDS = 10.0
"""How long one capture activity waits for the provider's capture webhook (under the activity's
15 s timeout; the retry policy waits again)."""


@dataclass
class Activities:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    region: config.RegionConfig
    outcomes: Counter
    placements: Placements = field(default_factory=Placements)
    attempts: int = 3
    base_delay: float = 0.05
    internal_key: bytes | None = None
    """``CHECKOUT_GATEWAY_KEY``: the saga signs its calls to pricing, inventory and payments as
    :func:`principal.internal` (those services refuse unsigned requests)."""

    def url(self, service: str, path: str) -> str:
        base = self.region.endpoints.get(service)
        if not base:
            raise ApplicationError(
                f"no endpoint for {service} in the region config", non_retryable=True
            )
        return base.rstrip("/") + path

    async def call(
        self, method: str, service: str, path: str, body: Any = None, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        rid = activity.info().workflow_id if activity.in_activity() else requestid.current.get()
        if rid:
            headers["X-Request-Id"] = rid
        content = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = self.url(service, path)
        target = httpx.URL(url).raw_path.decode("ascii")
        last = "no attempt"
        for attempt in range(self.attempts):
            # signed per attempt: a signature is good for principal.MAX_SKEW_S only
            headers.update(
                principal.signed_headers(
                    self.internal_key, method, target, principal.internal("orders"), content
                )
            )
            try:
                resp = await self.http.request(
                    method, url, content=content or None, headers=headers
                )
            except httpx.TransportError as exc:
                last = f"{service}: {type(exc).__name__}"
            else:
                if resp.status_code < 400:
                    return resp
                slug = slug_of(resp)
                if resp.status_code < 500 and slug not in RETRYABLE_SLUGS:
                    raise ApplicationError(
                        f"{service} {method} {path}: {resp.status_code} {slug}",
                        resp.status_code,
                        resp.text[:2000],
                        type=slug,
                        non_retryable=True,
                    )
                last = f"{service}: {resp.status_code} {slug}"
            await asyncio.sleep(random.uniform(0, self.base_delay * 2**attempt))
        raise ApplicationError(f"{method} {path} failed: {last}", type="transient")

    # -- forward steps ------------------------------------------------------------------------

    @activity.defn(name="place")
    async def place(self, inp: dict[str, Any]) -> dict[str, Any]:
        """The steps before the answer in one local activity (one marker in the history, one
        workflow activation): price, reserve, authorize, place the order. Each step is
        idempotent, so a retry runs them all again; an order already placed (a retry after the
        answer went out) is returned as stored, never re-priced or re-reserved. A failure is an
        ApplicationError whose details are (http status, stage reached). Resolves the API's
        in-process waiter once the order and its outbox row are committed."""
        cid = inp["checkout_id"]
        stored = await self.pool.fetchrow(
            "SELECT total, currency, snapshot_id FROM orders WHERE checkout_id = $1", cid
        )
        payment: dict[str, Any] = {}
        if stored is not None:
            quote = {
                "total": stored["total"],
                "currency": stored["currency"],
                "snapshot_id": stored["snapshot_id"],
            }
            order = {"checkout_id": cid, "total": stored["total"], "currency": stored["currency"]}
        else:
            stage = "price"
            try:
                quote = await self.price(inp)
                stage = "reserve"
                await self.reserve(inp)
                stage = "authorize"
                payment = await self.authorize(inp, quote["total"])
                stage = "place"
                order = await self.place_order(inp, quote)
            except ApplicationError as exc:
                status = exc.details[0] if exc.details and isinstance(exc.details[0], int) else 503
                kind = exc.type
                if stage == "authorize" and status == 422:
                    kind = "payment-method-refused"  # payments refused the shopper's token
                raise ApplicationError(
                    exc.message, status, stage, type=kind, non_retryable=exc.non_retryable
                ) from exc
            except Exception as exc:
                raise ApplicationError(f"{stage}: {exc}", 503, stage, type="transient") from exc
        placed: dict[str, Any] = {"state": "placed", "order": order, "quote": quote}
        if payment.get("state") == "requires_action":
            # 3-D Secure, a redirect, a QR code: the shopper must act; the answer carries the
            # provider's action, and the capture step waits for the shopper (bounded, then the
            # saga compensates: the authorization is voided)
            placed["payment"] = {"state": "requires_action", "action": payment.get("action")}
        self.placements.resolve(cid, placed)
        return placed

    @activity.defn(name="price")
    async def price(self, inp: dict[str, Any]) -> dict[str, Any]:
        body = {
            "country": inp["market"],
            "currency": inp["currency"],
            "lines": inp["lines"],
            "promo_code": inp.get("promo_code"),
            "shipping_option": inp.get("shipping_option"),
        }
        resp = await self.call("POST", "pricing", "/v1/quotes", body)
        quote: dict[str, Any] = resp.json()
        return quote

    @activity.defn(name="reserve")
    async def reserve(self, inp: dict[str, Any]) -> dict[str, Any]:
        body = {"checkout_id": inp["checkout_id"], "market": inp["market"], "lines": inp["lines"]}
        resp = await self.call("POST", "inventory", "/v1/reservations", body)
        out: dict[str, Any] = resp.json()
        return out

    @activity.defn(name="authorize")
    async def authorize(self, inp: dict[str, Any], amount: int) -> dict[str, Any]:
        body = {
            "checkout_id": inp["checkout_id"],
            "amount": amount,
            "currency": inp["currency"],
            "country": inp["market"],
            "payment_method": inp["payment_method"],
        }
        if inp.get("payment_method_token"):
            body["payment_method_token"] = inp["payment_method_token"]
        resp = await self.call(
            "POST", "payments", "/v1/payments/authorize", body, key=f"{inp['checkout_id']}:auth"
        )
        out: dict[str, Any] = resp.json()
        return out

    @activity.defn(name="place_order")
    async def place_order(self, inp: dict[str, Any], quote: dict[str, Any]) -> dict[str, Any]:
        cid = inp["checkout_id"]
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO orders (checkout_id, market, currency, total, snapshot_id, lines,"
                " state, customer_id) VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'placed', $7)"
                " ON CONFLICT (checkout_id) DO NOTHING RETURNING checkout_id",
                cid,
                inp["market"],
                inp["currency"],
                quote["total"],
                quote["snapshot_id"],
                json.dumps(inp["lines"]),
                inp.get("customer_id"),
            )
            if row is not None:
                await outbox.enqueue(
                    conn,
                    topic=classification.market_topic(
                        self.region.topics.order_placed, inp["market"]
                    ),
                    event_type="ORDER_PLACED",
                    key=cid,
                    event_id=event_id(cid, "placed"),
                    data={
                        "checkoutId": cid,
                        "market": inp["market"],
                        "currency": inp["currency"],
                        "total": quote["total"],
                        "snapshotId": quote["snapshot_id"],
                        "lines": inp["lines"],
                    },
                )
        return {"checkout_id": cid, "total": quote["total"], "currency": inp["currency"]}

    @activity.defn(name="capture")
    async def capture(self, checkout_id: str, outcome: str = "poll") -> dict[str, Any]:
        """Capture. ``outcome``: ``poll`` (the frozen ``Checkout`` shape) waits here, bounded,
        for a provider that answered "received" to decide; ``signal`` (``CheckoutSaga``)
        returns ``capture_pending`` at once: the workflow waits for payments' signal."""
        try:
            resp = await self.call(
                "POST",
                "payments",
                f"/v1/payments/{checkout_id}/capture",
                {},
                key=f"{checkout_id}:capture",
            )
        except ApplicationError as exc:
            if exc.type != "illegal-transition" or "requires_action" not in str(exc.details):
                raise
            # the shopper has not completed the provider's action yet: wait for it (bounded;
            # the retry policy waits again, then the saga compensates and voids)
            waiting = {"state": "requires_action"}
            await self.wait_payment(checkout_id, waiting, "requires_action")
            resp = await self.call(  # another key: the 409 is stored under the first one
                "POST",
                "payments",
                f"/v1/payments/{checkout_id}/capture",
                {},
                key=f"{checkout_id}:capture-after-action",
            )
        out: dict[str, Any] = resp.json()
        if outcome == "signal" and out.get("state") == "capture_pending":
            return out
        return await self.capture_outcome(checkout_id, out)

    async def capture_outcome(self, checkout_id: str, payment: dict[str, Any]) -> dict[str, Any]:
        """A provider that answers "received" (Adyen) decides by webhook: wait (bounded) for
        the payment to leave ``capture_pending``. ``capture_failed`` is final here: the saga
        compensates and PAYMENT_CAPTURE_FAILED goes to the DLQ."""
        payment = await self.wait_payment(checkout_id, payment, "capture_pending")
        if payment.get("state") == "capture_failed":
            raise ApplicationError(
                f"the provider failed the capture of {checkout_id}",
                type="capture-failed",
                non_retryable=True,
            )
        return payment

    async def wait_payment(
        self, checkout_id: str, payment: dict[str, Any], waiting: str
    ) -> dict[str, Any]:
        """Poll the payment while it is ``waiting`` (at most CAPTURE_WAIT_SECONDS)."""
        deadline = asyncio.get_running_loop().time() + CAPTURE_WAIT_SECONDS
        delay = 0.05
        while payment.get("state") == waiting:
            if asyncio.get_running_loop().time() > deadline:
                raise ApplicationError(
                    f"payment of {checkout_id} still {waiting} at the provider", type="transient"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            payment = (await self.call("GET", "payments", f"/v1/payments/{checkout_id}")).json()
        return payment

    @activity.defn(name="payment_state")
    async def payment_state(self, checkout_id: str) -> dict[str, Any]:
        """The payment as payments has it now (the saga's one read at its deadline)."""
        payment = (await self.call("GET", "payments", f"/v1/payments/{checkout_id}")).json()
        return {"state": payment.get("state"), "action": payment.get("action")}

    @activity.defn(name="complete")
    async def complete(self, inp: dict[str, Any], payment: dict[str, Any]) -> str:
        """Captured: the stock is sold; PAYMENT_CAPTURED and FULFILLMENT_REQUESTED (outbox)."""
        cid = inp["checkout_id"]
        await self.call("POST", "inventory", f"/v1/reservations/{cid}/commit")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE orders SET state = 'fulfilment_requested', updated_at = now()"
                " WHERE checkout_id = $1 AND state = 'placed' RETURNING total, currency, lines",
                cid,
            )
            if row is None:
                return "already"
            await outbox.enqueue(
                conn,
                topic=classification.market_topic(
                    self.region.topics.payment_captured, inp["market"]
                ),
                event_type="PAYMENT_CAPTURED",
                key=cid,
                event_id=event_id(cid, "captured"),
                data={
                    "checkoutId": cid,
                    "amount": payment.get("captured_amount", row["total"]),
                    "currency": row["currency"],
                    "provider": payment.get("provider"),
                },
            )
            await outbox.enqueue(
                conn,
                topic=classification.market_topic(
                    self.region.topics.fulfillment_requested, inp["market"]
                ),
                event_type="FULFILLMENT_REQUESTED",
                key=cid,
                event_id=event_id(cid, "fulfilment"),
                data={
                    "checkoutId": cid,
                    "market": inp["market"],
                    "lines": json.loads(row["lines"]),
                },
            )
        self.outcomes.labels("completed").inc()
        return "done"

    # -- compensations (idempotent: a second run changes nothing) ------------------------------

    @activity.defn(name="void")
    async def void(self, checkout_id: str) -> str:
        try:
            resp = await self.call(
                "POST",
                "payments",
                f"/v1/payments/{checkout_id}/void",
                {},
                key=f"{checkout_id}:void",
            )
        except ApplicationError as exc:
            if exc.type in ("payment-not-found",):
                return "nothing-to-void"
            if exc.type == "illegal-transition":
                got = await self.call("GET", "payments", f"/v1/payments/{checkout_id}")
                return str(got.json()["state"])
            raise
        return str(resp.json()["state"])

    @activity.defn(name="release")
    async def release(self, checkout_id: str) -> str:
        try:
            resp = await self.call("POST", "inventory", f"/v1/reservations/{checkout_id}/release")
        except ApplicationError as exc:
            if exc.type == "reservation-not-found":
                return "nothing-held"
            raise
        states = {line["state"] for line in resp.json()["lines"]}
        return ",".join(sorted(states))

    @activity.defn(name="notify_failure")
    async def notify_failure(self, checkout_id: str, reason: str, detail: str) -> None:
        """Record the failed checkout (the customer-facing notification reads it)."""
        done = await self.pool.fetchval(
            "INSERT INTO checkout_failures (checkout_id, reason, detail) VALUES ($1, $2, $3)"
            " ON CONFLICT (checkout_id) DO NOTHING RETURNING 1",
            checkout_id,
            reason,
            scrub.scrub_text(detail)[:2000],
        )
        if done:
            self.outcomes.labels(reason).inc()
        self.placements.resolve(
            checkout_id, {"state": "failed", "reason": reason, "detail": detail}
        )

    @activity.defn(name="capture_failed")
    async def capture_failed(self, checkout_id: str, detail: str) -> None:
        """After compensating: the order is marked and PAYMENT_CAPTURE_FAILED goes to the DLQ."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE orders SET state = 'capture_failed', updated_at = now()"
                " WHERE checkout_id = $1 AND state = 'placed' RETURNING total, currency",
                checkout_id,
            )
            if row is None:
                return
            await outbox.enqueue(
                conn,
                topic=self.region.topics.payment_capture_failed_dlq,
                event_type="PAYMENT_CAPTURE_FAILED",
                key=checkout_id,
                event_id=event_id(checkout_id, "capture-failed"),
                data={
                    "checkoutId": checkout_id,
                    "amount": row["total"],
                    "currency": row["currency"],
                    "detail": detail[:2000],
                },
            )
        self.outcomes.labels("capture_failed").inc()

    @activity.defn(name="order_compensated")
    async def order_compensated(self, checkout_id: str, reason: str) -> None:
        """After compensating a placed order whose payment never completed (the shopper's
        action expired or was refused): the order is marked, no DLQ (nothing failed on our
        side), and the outcome counted once."""
        done = await self.pool.fetchval(
            "UPDATE orders SET state = 'compensated', updated_at = now()"
            " WHERE checkout_id = $1 AND state = 'placed' RETURNING 1",
            checkout_id,
        )
        if done:
            self.outcomes.labels(reason).inc()

    def all(self) -> list[Any]:
        return [
            self.place,
            self.price,
            self.reserve,
            self.authorize,
            self.place_order,
            self.capture,
            self.complete,
            self.void,
            self.release,
            self.notify_failure,
            self.capture_failed,
            self.payment_state,
            self.order_compensated,
        ]
