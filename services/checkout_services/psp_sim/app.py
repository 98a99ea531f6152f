"""The simulator's HTTP app: one server, several regional endpoints, five provider dialects.

URL layout (``{ep}`` is any regional endpoint name, e.g. ``eu`` or ``us``; each endpoint has
its own idempotency-key store where the provider scopes keys per endpoint, and all endpoints
share one ledger):

* Stripe-like, **form-encoded** requests, JSON responses, ``Authorization: Bearer <key>``::

    POST /{ep}/stripe/v1/payment_intents              (confirm=true, capture_method=manual)
    POST /{ep}/stripe/v1/payment_intents/{id}/capture
    POST /{ep}/stripe/v1/payment_intents/{id}/cancel
    GET  /{ep}/stripe/v1/payment_intents/{id}
    GET  /{ep}/stripe/v1/payment_intents/search?query=metadata['checkout_id']:'...'
    POST /{ep}/stripe/v1/refunds

* Adyen-like, JSON, ``X-API-Key`` + ``merchantAccount``::

    POST /{ep}/adyen/v71/payments
    POST /{ep}/adyen/v71/payments/{pspReference}/captures | /cancels | /refunds
    GET  /{ep}/adyen/v71/payments/{pspReference}              (payment details)
    GET  /{ep}/adyen/v71/payments?merchantAccount=..&reference=..   (lookup by reference)

* Local methods (``upi``, ``ideal``, ``pix``), JSON, ``Authorization: Bearer <key>``: the
  payment starts ``pending`` with a redirect / QR / collect action; the customer completing it
  (automatic after ``autoCompleteMs``, or ``POST /_sim/local/{id}/complete``) sends an
  HMAC-signed webhook (``Sim-Signature: t=<unix>,v1=<hex sha256>`` over ``"<t>.<body>"``)::

    POST /{ep}/{m}/v1/payments
    POST /{ep}/{m}/v1/payments/{id}/capture | /cancel | /refunds
    GET  /{ep}/{m}/v1/payments/{id}
    GET  /{ep}/{m}/v1/payments?reference=..

* Admin: ``/_sim/accounts``, ``/_sim/faults``, ``/_sim/ledger``, ``/_sim/payments``,
  ``/_sim/reset``, ``/_sim/clock``, ``/_sim/settings``, ``/_sim/local/{id}/complete``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from checkout_services.psp_sim import state as st

JsonDict = dict[str, Any]
STRIPE_API_VERSION = "2026-08-26.dahlia"
Executor = Callable[[st.Faults], tuple[int, JsonDict]]

DECLINES: dict[str, dict[str, tuple[str, str]]] = {
    # class -> provider dialect -> (code, message)
    "soft": {
        "stripe": ("insufficient_funds", "Your card has insufficient funds."),
        "adyen": ("Not enough balance", "51"),
        "local": ("insufficient_funds", "Insufficient funds."),
    },
    "hard": {
        "stripe": ("stolen_card", "Your card was declined."),
        "adyen": ("Stolen Card", "43"),
        "local": ("account_blocked", "Account blocked."),
    },
    "fraud": {
        "stripe": ("fraudulent", "Your card was declined."),
        "adyen": ("FRAUD", "FRAUD"),
        "local": ("suspected_fraud", "Suspected fraud."),
    },
}
KEY_HEADER = "Idempotency-Key"
LOCAL_METHODS = ("upi", "ideal", "pix")
LOCAL_ACTIONS = {"upi": "collect", "ideal": "redirect", "pix": "qr_code"}


class ConnectionDropped(Exception):
    """Raised after the response started: the server closes the connection mid-answer."""


class DroppedResponse(Response):
    """Starts a response, then fails, so uvicorn cuts the connection (an incomplete body)."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionDropped


class Sim:
    """The app's behaviour around one :class:`~state.SimState`."""

    def __init__(self, state: st.SimState) -> None:
        self.state = state
        self.auto_complete_ms = 5
        self.http: httpx.AsyncClient | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    # -- plumbing --------------------------------------------------------------------------
    @staticmethod
    def json(status: int, body: JsonDict, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(body, status_code=status, headers=headers)

    async def idempotent(
        self,
        *,
        provider: str,
        endpoint: str,
        operation: str,
        scope: tuple[str, ...] | None,
        fp: str,
        execute: Executor,
    ) -> Response:
        """Run ``execute`` once per idempotency key, with the provider's key semantics."""
        state = self.state
        state.requests += 1
        faults = state.faults_for(provider, endpoint, operation)
        entry: st.IdempotencyEntry | None = None
        if scope is not None:
            existing = state.keys.get(scope)
            ttl = st.KEY_TTL_SECONDS[provider]
            if existing is not None and state.now() - existing.created > ttl:
                del state.keys[scope]
                existing = None
            if existing is not None:
                if existing.fingerprint != fp:
                    return self.key_mismatch(provider)
                if existing.in_flight:
                    return self.key_in_flight(provider)
                headers = dict(existing.headers)
                headers["Idempotent-Replayed"] = "true"
                headers[KEY_HEADER] = scope[-1]
                return Response(
                    existing.body,
                    status_code=existing.status,
                    headers=headers,
                    media_type="application/json",
                )
            entry = st.IdempotencyEntry(fingerprint=fp, created=state.now())
            state.keys[scope] = entry
        if faults.latency_ms:
            # Processing time: a second request with the same key meanwhile gets 409.
            await asyncio.sleep(faults.latency_ms / 1000)
        status: int
        body: JsonDict
        if faults.error_5xx is not None and not faults.error_5xx.after_charge:
            status, body = 500, self.server_error(provider)
            self.finish(provider, scope, entry, status, body, executed=False)
            return self.json(status, body)
        try:
            status, body = execute(faults)
        except Exception:
            if scope is not None:
                state.keys.pop(scope, None)
            raise
        if faults.error_5xx is not None:  # after the charge
            real_status, real_body = status, body
            status, body = 500, self.server_error(provider)
            if provider == "stripe":
                self.finish(provider, scope, entry, status, body, executed=True)
            else:
                self.finish(provider, scope, entry, real_status, real_body, executed=True)
            return self.json(status, body)
        self.finish(provider, scope, entry, status, body, executed=True)
        if faults.drop_after_charge:
            # The other ambiguous case: recorded, then the connection dies mid-answer.
            return DroppedResponse()
        if faults.timeout_after_charge_ms:
            # The ambiguous case: the operation is recorded, the answer comes too late.
            await asyncio.sleep(faults.timeout_after_charge_ms / 1000)
        reply_headers = {KEY_HEADER: scope[-1]} if scope is not None else None
        return self.json(status, body, reply_headers)

    async def read(
        self, provider: str, endpoint: str, operation: str, execute: Executor
    ) -> Response:
        """A read (retrieve, lookup): no idempotency key, but the faults still apply."""
        return await self.idempotent(
            provider=provider,
            endpoint=endpoint,
            operation=operation,
            scope=None,
            fp="",
            execute=execute,
        )

    def finish(
        self,
        provider: str,
        scope: tuple[str, ...] | None,
        entry: st.IdempotencyEntry | None,
        status: int,
        body: JsonDict,
        *,
        executed: bool,
    ) -> None:
        if scope is None or entry is None:
            return
        if status >= 500 and not executed:
            # Nothing ran: no provider keeps that answer (Stripe saves a result only once the
            # endpoint started executing), the key is free again.
            self.state.keys.pop(scope, None)
            return
        # Stripe keeps the first response of an endpoint that ran, 5xx included.
        entry.in_flight = False
        entry.status = status
        entry.body = json.dumps(body).encode()

    @staticmethod
    def key_mismatch(provider: str) -> Response:
        if provider == "stripe":
            return JSONResponse(
                {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    }
                },
                status_code=400,
            )
        return JSONResponse(
            {
                "status": 422,
                "errorCode": "idempotency_key_reused",
                "message": "Idempotency key already used with a different request",
                "errorType": "validation",
            },
            status_code=422,
        )

    @staticmethod
    def key_in_flight(provider: str) -> Response:
        if provider == "stripe":
            return JSONResponse(
                {
                    "error": {
                        "type": "idempotency_error",
                        "message": "There is currently another in-progress request using this "
                        "Idempotent Key.",
                    }
                },
                status_code=409,
            )
        return JSONResponse(
            {
                "status": 409,
                "errorCode": "idempotency_in_progress",
                "message": "A request with this idempotency key is being processed",
                "errorType": "validation",
            },
            status_code=409,
        )

    @staticmethod
    def server_error(provider: str) -> JsonDict:
        if provider == "stripe":
            return {"error": {"type": "api_error", "message": "An unknown error occurred."}}
        return {
            "status": 500,
            "errorCode": "000",
            "message": "Internal error",
            "errorType": "internal",
        }

    def authenticate(self, provider: str, request: Request) -> st.Account | None:
        if provider == "adyen":
            key = request.headers.get("x-api-key", "")
        else:
            auth = request.headers.get("authorization", "")
            key = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not key:
            return None
        return self.state.account_by_key(provider, key)

    @staticmethod
    def unauthorized(provider: str) -> Response:
        if provider == "stripe":
            body: JsonDict = {
                "error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}
            }
        else:
            body = {
                "status": 401,
                "errorCode": "000",
                "message": "HTTP Status Response - Unauthorized",
                "errorType": "security",
            }
        return JSONResponse(body, status_code=401)

    def new_payment(
        self,
        provider: st.ProviderKind,
        endpoint: str,
        account: str,
        reference: str,
        amount: int,
        currency: str,
        method: str,
        prefix: str,
    ) -> st.Payment:
        pid = (
            f"{secrets.randbelow(10**16):016d}"
            if provider == "adyen"
            else self.state.new_id(prefix)
        )
        payment = st.Payment(
            id=pid,
            provider=provider,
            endpoint=endpoint,
            account=account,
            reference=reference,
            amount=amount,
            currency=currency,
            method=method,
            status="pending",
        )
        self.state.payments[payment.id] = payment
        return payment

    # -- webhooks --------------------------------------------------------------------------
    def schedule(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def send_webhook(self, payment: st.Payment, event_type: str) -> None:
        acct = self.state.accounts.get((payment.provider, payment.account))
        if acct is None or not acct.webhook_url:
            return
        faults = self.state.faults_for(payment.provider, payment.endpoint, "webhook")
        event = {
            "id": self.state.new_id("evt_"),
            "type": event_type,
            "created": int(self.state.now()),
            "data": {
                "id": payment.id,
                "provider": payment.provider,
                "account": payment.account,
                "reference": payment.reference,
                "status": payment.status,
                "amount": payment.amount,
                "currency": payment.currency,
            },
        }
        body = json.dumps(event).encode()
        copies = 2 if faults.webhook_duplicate else 1
        for i in range(copies):
            delay = faults.webhook_delay_ms if i == 0 else faults.webhook_delay_ms + 5
            self.schedule(self.deliver(acct, body, delay / 1000))

    def send_adyen_notification(
        self, payment: st.Payment, event_code: str, psp_reference: str, value: int
    ) -> None:
        """Adyen's NotificationRequest for a modification, after ``autoCompleteMs`` (Adyen
        answers the request with ``received`` and the outcome comes later)."""
        acct = self.state.accounts.get((payment.provider, payment.account))
        if acct is None or not acct.webhook_url:
            return
        item: JsonDict = {
            "additionalData": {},
            "amount": {"value": value, "currency": payment.currency},
            "eventCode": event_code,
            "eventDate": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "merchantAccountCode": payment.account,
            "merchantReference": payment.reference,
            "originalReference": payment.id,
            "pspReference": psp_reference,
            "reason": "",
            "success": "true",
        }
        item["additionalData"]["hmacSignature"] = adyen_hmac(acct.webhook_secret, item)
        body = json.dumps(
            {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        ).encode()
        self.deliver_later(payment, acct, body, None)

    def send_stripe_event(self, payment: st.Payment, event_type: str) -> None:
        """A Stripe Event (``data.object`` = the PaymentIntent), ``Stripe-Signature`` signed."""
        acct = self.state.accounts.get((payment.provider, payment.account))
        if acct is None or not acct.webhook_url:
            return
        event = {
            "id": self.state.new_id("evt_"),
            "object": "event",
            "api_version": STRIPE_API_VERSION,
            "created": int(self.state.now()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
            "data": {"object": stripe_view(payment)},
        }
        body = json.dumps(event).encode()
        self.deliver_later(payment, acct, body, "Stripe-Signature")

    def deliver_later(
        self, payment: st.Payment, acct: st.Account, body: bytes, header: str | None
    ) -> None:
        """After ``autoCompleteMs`` plus any webhook_delay fault; twice on webhook_duplicate."""
        faults = self.state.faults_for(payment.provider, payment.endpoint, "webhook")
        delay = (max(self.auto_complete_ms, 0) + faults.webhook_delay_ms) / 1000
        for i in range(2 if faults.webhook_duplicate else 1):
            self.schedule(self.deliver(acct, body, delay + i * 0.005, header=header))

    async def deliver(
        self, acct: st.Account, body: bytes, delay: float, *, header: str | None = "Sim-Signature"
    ) -> None:
        if delay:
            await asyncio.sleep(delay)
        assert self.http is not None
        assert acct.webhook_url is not None
        for attempt in range(4):
            ts = int(time.time())
            sig = hmac.new(
                acct.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
            ).hexdigest()
            headers = {"content-type": "application/json"}
            if header is not None:
                headers[header] = f"t={ts},v1={sig}"
            try:
                resp = await self.http.post(acct.webhook_url, content=body, headers=headers)
                if resp.status_code < 300:
                    self.state.webhooks_sent += 1
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05 * 2**attempt)
        self.state.webhooks_failed += 1

    def complete_local(self, payment: st.Payment, outcome: str) -> None:
        if payment.status != "pending":
            return
        if outcome == "authorized":
            payment.status = "authorized"
            payment.history.append("authorized")
            self.send_webhook(payment, "payment.authorized")
        else:
            payment.status = "declined"
            payment.decline_class = payment.decline_class or "soft"
            payment.history.append("declined")
            self.send_webhook(payment, "payment.declined")

    async def auto_complete(self, payment: st.Payment, outcome: str) -> None:
        await asyncio.sleep(self.auto_complete_ms / 1000)
        self.complete_local(payment, outcome)


# -- provider dialects ---------------------------------------------------------------------


def adyen_hmac(hex_key: str, item: JsonDict) -> str:
    """Adyen's notification signature: base64 HMAC-SHA256, hex-decoded key, over
    pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
    eventCode:success."""
    amount = item.get("amount") or {}
    parts = [
        item.get("pspReference"),
        item.get("originalReference"),
        item.get("merchantAccountCode"),
        item.get("merchantReference"),
        amount.get("value"),
        amount.get("currency"),
        item.get("eventCode"),
        item.get("success"),
    ]
    text = ":".join("" if v is None else str(v) for v in parts)
    try:
        key = bytes.fromhex(hex_key)
    except ValueError:
        key = hex_key.encode()
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


async def read_form(request: Request) -> list[tuple[str, str]]:
    return parse_qsl((await request.body()).decode(), keep_blank_values=True)


async def read_json(request: Request) -> JsonDict | None:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def stripe_error(status: int, type_: str, message: str, **extra: Any) -> tuple[int, JsonDict]:
    return status, {"error": {"type": type_, "message": message, **extra}}


def stripe_view(p: st.Payment) -> JsonDict:
    status = {
        "pending": "processing",
        "authorized": "requires_capture",
        "declined": "requires_payment_method",
        "captured": "succeeded",
        "voided": "canceled",
        "refunded": "succeeded",
    }[p.status]
    return {
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount,
        "amount_capturable": p.amount if p.status == "authorized" else 0,
        "amount_received": p.captured,
        "currency": p.currency.lower(),
        "capture_method": "manual",
        "status": status,
        "metadata": {"checkout_id": p.reference},
    }


class StripeRoutes:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def scope(self, acct: st.Account, request: Request) -> tuple[str, ...] | None:
        key = request.headers.get("idempotency-key")
        # Stripe keys are per account, whatever the endpoint.
        return ("stripe", acct.account, key) if key else None

    async def create(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            try:
                amount = int(form.get("amount", ""))
            except ValueError:
                return stripe_error(
                    400, "invalid_request_error", "Invalid integer: amount", param="amount"
                )
            currency = form.get("currency", "")
            if amount <= 0:
                return stripe_error(
                    400, "invalid_request_error", "Amount must be positive", param="amount"
                )
            if not re.fullmatch(r"[a-z]{3}", currency):
                return stripe_error(
                    400, "invalid_request_error", "Invalid currency", param="currency"
                )
            method = form.get("payment_method_data[type]") or "card"
            if form.get("confirm") != "true" or (
                method == "card" and form.get("capture_method") != "manual"
            ):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "The simulator supports confirm=true (cards: capture_method=manual) only",
                    param="capture_method",
                )
            if method == "card" and not form.get("payment_method", "").startswith("pm_"):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "No such PaymentMethod",
                    param="payment_method",
                    code="resource_missing",
                )
            reference = form.get("metadata[checkout_id]", "")
            p = sim.new_payment(
                "stripe", ep, acct.account, reference, amount, currency.upper(), method, "pi_"
            )
            if faults.decline:
                p.status = "declined"
                p.decline_class = faults.decline
                p.history.append("declined")
                code, msg = DECLINES[faults.decline]["stripe"]
                return stripe_error(
                    402,
                    "card_error",
                    msg,
                    code="card_declined",
                    decline_code=code,
                    payment_intent=stripe_view(p),
                )
            p.status = "authorized"
            p.history.append("authorized")
            sim.send_stripe_event(p, "payment_intent.amount_capturable_updated")
            return 200, stripe_view(p)

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation="authorize",
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", "/v1/payment_intents", sorted(params)),
            execute=execute,
        )

    def owned(self, acct: st.Account, pid: str) -> st.Payment | None:
        p = self.sim.state.payments.get(pid)
        if p is None or p.provider != "stripe" or p.account != acct.account:
            return None
        return p

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        pid = request.path_params["pid"]
        action = request.path_params["action"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)
        operation = {"capture": "capture", "cancel": "cancel"}.get(action)
        if operation is None:
            return sim.json(
                404,
                {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}},
            )

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, pid)
            if p is None:
                return stripe_error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{pid}'",
                    code="resource_missing",
                )
            if p.status != "authorized":
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"This PaymentIntent's {action} could not be performed because it has a "
                    f"status of {stripe_view(p)['status']}.",
                    code="payment_intent_unexpected_state",
                    payment_intent=stripe_view(p),
                )
            if action == "capture":
                amount = int(form.get("amount_to_capture", p.amount))
                if amount <= 0 or amount > p.amount:
                    return stripe_error(
                        400,
                        "invalid_request_error",
                        "Invalid amount_to_capture",
                        param="amount_to_capture",
                    )
                p.status = "captured"
                p.captured = amount
                p.history.append("captured")
            else:
                p.status = "voided"
                p.voided = True
                p.history.append("voided")
            return 200, stripe_view(p)

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation=operation,
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", f"/v1/payment_intents/{pid}/{action}", sorted(params)),
            execute=execute,
        )

    async def refund(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, form.get("payment_intent", ""))
            if p is None:
                return stripe_error(
                    404, "invalid_request_error", "No such payment_intent", code="resource_missing"
                )
            amount = int(form.get("amount", p.captured - p.refunded))
            if (
                p.status not in ("captured", "refunded")
                or amount <= 0
                or amount > p.captured - p.refunded
            ):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "Refund amount exceeds the captured amount",
                    code="amount_too_large",
                )
            p.refunded += amount
            if p.refunded == p.captured:
                p.status = "refunded"
            p.history.append(f"refunded:{amount}")
            return 200, {
                "id": sim.state.new_id("re_"),
                "object": "refund",
                "amount": amount,
                "payment_intent": p.id,
                "status": "succeeded",
                "currency": p.currency.lower(),
            }

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation="refund",
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", "/v1/refunds", sorted(params)),
            execute=execute,
        )

    async def retrieve(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        pid = request.path_params["pid"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, pid)
            if p is None:
                return stripe_error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{pid}'",
                    code="resource_missing",
                )
            return 200, stripe_view(p)

        return await sim.read("stripe", ep, "retrieve", execute)

    async def search(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        query = request.query_params.get("query", "")
        m = re.fullmatch(r"\s*metadata\['checkout_id'\]\s*:\s*'([^']*)'\s*", query)
        if m is None:
            return sim.json(
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Unsupported search query",
                        "param": "query",
                    }
                },
            )
        ref = m.group(1)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = [
                stripe_view(p)
                for p in sim.state.payments.values()
                if p.provider == "stripe" and p.account == acct.account and p.reference == ref
            ]
            return 200, {"object": "search_result", "data": found, "has_more": False}

        return await sim.read("stripe", ep, "lookup", execute)


def adyen_error(
    status: int, code: str, message: str, type_: str = "validation"
) -> tuple[int, JsonDict]:
    return status, {"status": status, "errorCode": code, "message": message, "errorType": type_}


def adyen_view(p: st.Payment) -> JsonDict:
    return {
        "pspReference": p.id,
        "merchantReference": p.reference,
        "merchantAccount": p.account,
        "amount": {"value": p.amount, "currency": p.currency},
        "status": {
            "pending": "Pending",
            "authorized": "Authorised",
            "declined": "Refused",
            "captured": "Captured",
            "voided": "Cancelled",
            "refunded": "Refunded",
        }[p.status],
        "capturedAmount": p.captured,
        "refundedAmount": p.refunded,
    }


class AdyenRoutes:
    MAX_KEY = 64

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def scope(
        self, acct: st.Account, ep: str, request: Request
    ) -> tuple[str, ...] | Response | None:
        key = request.headers.get("idempotency-key")
        if not key:
            return None
        if len(key) > self.MAX_KEY:
            status, body = adyen_error(
                422, "idempotency_key_too_long", "Idempotency-Key longer than 64 characters"
            )
            return self.sim.json(status, body)
        # Adyen keys are per account AND per regional endpoint.
        return ("adyen", acct.account, ep, key)

    async def authorize(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("adyen", request)
        if acct is None:
            return sim.unauthorized("adyen")
        body = await read_json(request)
        if body is None:
            return sim.json(*adyen_error(400, "702", "Unable to parse JSON"))
        if body.get("merchantAccount") != acct.account:
            return sim.json(*adyen_error(403, "901", "Invalid Merchant Account", "security"))
        scope = self.scope(acct, ep, request)
        if isinstance(scope, Response):
            return scope

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            amount = body.get("amount") or {}
            value, currency = amount.get("value"), amount.get("currency")
            if not isinstance(value, int) or value <= 0:
                return adyen_error(422, "137", "Invalid amount specified")
            if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
                return adyen_error(422, "138", "Invalid currency specified")
            reference = str(body.get("reference", ""))
            if not body.get("returnUrl"):
                return adyen_error(422, "14_0", "Required field 'returnUrl' is not provided.")
            if not (body.get("paymentMethod") or {}).get("type"):
                return adyen_error(422, "14_0", "Required field 'paymentMethod' is not provided.")
            method = str(body["paymentMethod"]["type"])
            p = sim.new_payment("adyen", ep, acct.account, reference, value, currency, method, "")
            if faults.decline:
                p.status = "declined"
                p.decline_class = faults.decline
                p.history.append("declined")
                reason, code = DECLINES[faults.decline]["adyen"]
                return 200, {
                    "pspReference": p.id,
                    "resultCode": "Refused",
                    "refusalReason": reason,
                    "refusalReasonCode": code,
                    "merchantReference": reference,
                    "amount": {"value": value, "currency": currency},
                }
            p.status = "authorized"
            p.history.append("authorized")
            return 200, {
                "pspReference": p.id,
                "resultCode": "Authorised",
                "merchantReference": reference,
                "amount": {"value": value, "currency": currency},
            }

        return await sim.idempotent(
            provider="adyen",
            endpoint=ep,
            operation="authorize",
            scope=scope,
            fp=st.fingerprint("POST", "/payments", json.dumps(body, sort_keys=True)),
            execute=execute,
        )

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        psp = request.path_params["psp"]
        kind = request.path_params["kind"]
        operation = {"captures": "capture", "cancels": "cancel", "refunds": "refund"}.get(kind)
        if operation is None:
            return sim.json(*adyen_error(404, "000", "Not found"))
        acct = sim.authenticate("adyen", request)
        if acct is None:
            return sim.unauthorized("adyen")
        body = await read_json(request)
        if body is None:
            return sim.json(*adyen_error(400, "702", "Unable to parse JSON"))
        if body.get("merchantAccount") != acct.account:
            return sim.json(*adyen_error(403, "901", "Invalid Merchant Account", "security"))
        scope = self.scope(acct, ep, request)
        if isinstance(scope, Response):
            return scope

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(psp)
            if p is None or p.provider != "adyen" or p.account != acct.account or p.endpoint != ep:
                # A modification must go to the account and regional endpoint that authorized.
                return adyen_error(422, "167", "Original pspReference required for this operation")
            value = int((body.get("amount") or {}).get("value", p.amount))
            if operation == "capture":
                if p.status != "authorized" or value <= 0 or value > p.amount:
                    return adyen_error(
                        422,
                        "167",
                        f"Cannot capture a payment with status {adyen_view(p)['status']}",
                    )
                p.status, p.captured = "captured", value
                p.history.append("captured")
            elif operation == "cancel":
                if p.status != "authorized":
                    return adyen_error(
                        422, "167", f"Cannot cancel a payment with status {adyen_view(p)['status']}"
                    )
                p.status, p.voided = "voided", True
                p.history.append("voided")
            else:
                if (
                    p.status not in ("captured", "refunded")
                    or value <= 0
                    or value > p.captured - p.refunded
                ):
                    return adyen_error(422, "167", "Refund amount exceeds the captured amount")
                p.refunded += value
                if p.refunded == p.captured:
                    p.status = "refunded"
                p.history.append(f"refunded:{value}")
            modification = f"{secrets.randbelow(10**16):016d}"
            event = {"capture": "CAPTURE", "cancel": "CANCELLATION", "refund": "REFUND"}
            sim.send_adyen_notification(p, event[operation], modification, value)
            answer: JsonDict = {
                "merchantAccount": acct.account,
                "paymentPspReference": psp,
                "pspReference": modification,
                "status": "received",
            }
            if body.get("reference"):
                answer["reference"] = body["reference"]
            if operation != "cancel":
                answer["amount"] = {"value": value, "currency": p.currency}
            return 201, answer

        return await sim.idempotent(
            provider="adyen",
            endpoint=ep,
            operation=operation,
            scope=scope,
            fp=st.fingerprint("POST", f"/payments/{psp}/{kind}", json.dumps(body, sort_keys=True)),
            execute=execute,
        )

    async def details(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("adyen", request)
        if acct is None:
            return sim.unauthorized("adyen")
        psp = request.path_params["psp"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(psp)
            if p is None or p.provider != "adyen" or p.account != acct.account:
                return adyen_error(404, "000", "Payment not found")
            return 200, adyen_view(p)

        return await sim.read("adyen", ep, "retrieve", execute)

    async def lookup(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("adyen", request)
        if acct is None:
            return sim.unauthorized("adyen")
        if request.query_params.get("merchantAccount") != acct.account:
            return sim.json(*adyen_error(403, "901", "Invalid Merchant Account", "security"))
        ref = request.query_params.get("reference", "")

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = [
                adyen_view(p)
                for p in sim.state.payments.values()
                if p.provider == "adyen" and p.account == acct.account and p.reference == ref
            ]
            return 200, {"payments": found}

        return await sim.read("adyen", ep, "lookup", execute)


def local_view(p: st.Payment) -> JsonDict:
    return {
        "id": p.id,
        "object": "payment",
        "method": p.provider,
        "account": p.account,
        "reference": p.reference,
        "amount": p.amount,
        "currency": p.currency,
        "status": p.status,
        "captured": p.captured,
        "refunded": p.refunded,
        "declineClass": p.decline_class,
    }


class LocalRoutes:
    """UPI (collect request), iDEAL (bank redirect), Pix (QR code): async, webhook-completed."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def scope(self, m: str, ep: str, acct: st.Account, request: Request) -> tuple[str, ...] | None:
        key = request.headers.get("idempotency-key")
        return (m, acct.account, ep, key) if key else None

    async def create(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        if m not in LOCAL_METHODS:
            return sim.json(404, {"error": "unknown method"})
        acct = sim.authenticate(m, request)
        if acct is None:
            return sim.unauthorized(m)
        body = await read_json(request)
        if body is None:
            return sim.json(400, {"error": "invalid JSON"})

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            amount, currency = body.get("amount"), body.get("currency")
            if not isinstance(amount, int) or amount <= 0:
                return 400, {"error": "invalid amount", "param": "amount"}
            if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
                return 400, {"error": "invalid currency", "param": "currency"}
            p = sim.new_payment(
                m,
                ep,
                acct.account,
                str(body.get("reference", "")),
                amount,
                currency,
                m,
                f"{m}_",
            )
            if faults.decline:
                p.decline_class = faults.decline
            outcome = "declined" if faults.decline else "authorized"
            if sim.auto_complete_ms >= 0:
                sim.schedule(sim.auto_complete(p, outcome))
            view = local_view(p)
            view["action"] = {
                "type": LOCAL_ACTIONS[m],
                "url": f"/{ep}/{m}/checkout/{p.id}",
            }
            return 201, view

        return await sim.idempotent(
            provider=m,
            endpoint=ep,
            operation="authorize",
            scope=self.scope(m, ep, acct, request),
            fp=st.fingerprint("POST", "/v1/payments", json.dumps(body, sort_keys=True)),
            execute=execute,
        )

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        pid, action = request.path_params["pid"], request.path_params["action"]
        operation = {"capture": "capture", "cancel": "cancel", "refunds": "refund"}.get(action)
        if m not in LOCAL_METHODS or operation is None:
            return sim.json(404, {"error": "not found"})
        acct = sim.authenticate(m, request)
        if acct is None:
            return sim.unauthorized(m)
        body = await read_json(request)
        if body is None:
            return sim.json(400, {"error": "invalid JSON"})

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(pid)
            if p is None or p.provider != m or p.account != acct.account or p.endpoint != ep:
                return 404, {"error": "no such payment"}
            if operation == "capture":
                if p.status != "authorized":
                    return 409, {
                        "error": f"cannot capture a {p.status} payment",
                        "payment": local_view(p),
                    }
                p.status, p.captured = "captured", int(body.get("amount", p.amount))
                p.history.append("captured")
                event = "payment.captured"
            elif operation == "cancel":
                if p.status not in ("authorized", "pending"):
                    return 409, {
                        "error": f"cannot cancel a {p.status} payment",
                        "payment": local_view(p),
                    }
                was_authorized = p.status == "authorized"
                p.status = "voided"
                p.voided = was_authorized
                p.history.append("voided")
                event = "payment.voided"
            else:
                value = int(body.get("amount", p.captured - p.refunded))
                if (
                    p.status not in ("captured", "refunded")
                    or value <= 0
                    or value > p.captured - p.refunded
                ):
                    return 409, {"error": "refund amount exceeds the captured amount"}
                p.refunded += value
                if p.refunded == p.captured:
                    p.status = "refunded"
                p.history.append(f"refunded:{value}")
                event = "payment.refunded"
            sim.send_webhook(p, event)
            return 200, local_view(p)

        return await sim.idempotent(
            provider=m,
            endpoint=ep,
            operation=operation,
            scope=self.scope(m, ep, acct, request),
            fp=st.fingerprint(
                "POST", f"/v1/payments/{pid}/{action}", json.dumps(body, sort_keys=True)
            ),
            execute=execute,
        )

    async def retrieve(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        acct = sim.authenticate(m, request) if m in LOCAL_METHODS else None
        if acct is None:
            return sim.unauthorized(m)
        pid = request.path_params["pid"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(pid)
            if p is None or p.provider != m or p.account != acct.account:
                return 404, {"error": "no such payment"}
            return 200, local_view(p)

        return await sim.read(m, ep, "retrieve", execute)

    async def lookup(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        acct = sim.authenticate(m, request) if m in LOCAL_METHODS else None
        if acct is None:
            return sim.unauthorized(m)
        ref = request.query_params.get("reference", "")

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = [
                local_view(p)
                for p in sim.state.payments.values()
                if p.provider == m and p.account == acct.account and p.reference == ref
            ]
            return 200, {"data": found}

        return await sim.read(m, ep, "lookup", execute)


# -- admin ---------------------------------------------------------------------------------

FAULT_FIELDS = {
    "kind": "kind",
    "provider": "provider",
    "endpoint": "endpoint",
    "operation": "operation",
    "probability": "probability",
    "count": "count",
    "latencyMs": "latency_ms",
    "declineClass": "decline_class",
    "afterCharge": "after_charge",
    "seed": "seed",
}
FAULT_KINDS = {
    "latency",
    "error_5xx",
    "decline",
    "timeout_after_charge",
    "drop_after_charge",
    "webhook_delay",
    "webhook_duplicate",
}


class AdminRoutes:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    async def accounts(self, request: Request) -> Response:
        body = await read_json(request)
        items = (body or {}).get("accounts")
        if not isinstance(items, list):
            return self.sim.json(422, {"error": 'body must be {"accounts": [...]}'})
        for item in items:
            try:
                provider = item["provider"]
                if provider not in st.PROVIDERS:
                    return self.sim.json(422, {"error": f"unknown provider {provider!r}"})
                acct = st.Account(
                    provider=provider,
                    account=str(item["account"]),
                    api_key=str(item["apiKey"]),
                    webhook_secret=str(item.get("webhookSecret", "")),
                    webhook_url=item.get("webhookUrl"),
                )
            except (KeyError, TypeError) as exc:
                return self.sim.json(422, {"error": f"missing field {exc}"})
            self.sim.state.accounts[(acct.provider, acct.account)] = acct
        return self.sim.json(200, {"accounts": len(self.sim.state.accounts)})

    async def faults(self, request: Request) -> Response:
        state = self.sim.state
        if request.method == "DELETE":
            state.faults.clear()
            return self.sim.json(200, {"faults": 0})
        if request.method == "GET":
            return self.sim.json(200, {"faults": [self.fault_view(r) for r in state.faults]})
        body = await read_json(request)
        items = (body or {}).get("rules")
        if not isinstance(items, list):
            return self.sim.json(422, {"error": 'body must be {"rules": [...]}'})
        rules: list[st.FaultRule] = []
        for item in items:
            unknown = set(item) - set(FAULT_FIELDS)
            if unknown or item.get("kind") not in FAULT_KINDS:
                return self.sim.json(422, {"error": f"bad rule {item!r}"})
            kwargs = {FAULT_FIELDS[k]: v for k, v in item.items()}
            if "seed" not in kwargs:
                kwargs["seed"] = state.seed + len(state.faults) + len(rules)
            rules.append(st.FaultRule(**kwargs))
        if body and body.get("replace"):
            state.faults.clear()
        state.faults.extend(rules)
        return self.sim.json(200, {"faults": len(state.faults)})

    @staticmethod
    def fault_view(r: st.FaultRule) -> JsonDict:
        return {k: getattr(r, v) for k, v in FAULT_FIELDS.items()} | {"hits": r.hits}

    async def ledger(self, request: Request) -> Response:
        view = self.sim.state.ledger()
        view["webhooks"] = {
            "sent": self.sim.state.webhooks_sent,
            "failed": self.sim.state.webhooks_failed,
        }
        view["requests"] = self.sim.state.requests
        return self.sim.json(200, view)

    async def payments(self, request: Request) -> Response:
        ref = request.query_params.get("reference")
        found = [
            p.view() for p in self.sim.state.payments.values() if ref is None or p.reference == ref
        ]
        return self.sim.json(200, {"payments": found})

    async def reset(self, request: Request) -> Response:
        state = self.sim.state
        state.keys.clear()
        state.payments.clear()
        state.faults.clear()
        state.clock_offset = 0.0
        state.webhooks_sent = state.webhooks_failed = state.requests = 0
        return self.sim.json(200, {"reset": True})

    async def clock(self, request: Request) -> Response:
        body = await read_json(request) or {}
        self.sim.state.clock_offset += float(body.get("advanceSeconds", 0))
        return self.sim.json(200, {"offsetSeconds": self.sim.state.clock_offset})

    async def settings(self, request: Request) -> Response:
        body = await read_json(request) or {}
        if "autoCompleteMs" in body:
            self.sim.auto_complete_ms = int(body["autoCompleteMs"])
        return self.sim.json(200, {"autoCompleteMs": self.sim.auto_complete_ms})

    async def complete(self, request: Request) -> Response:
        p = self.sim.state.payments.get(request.path_params["pid"])
        if p is None or p.provider not in LOCAL_METHODS:
            return self.sim.json(404, {"error": "no such local payment"})
        body = await read_json(request) or {}
        outcome = body.get("outcome", "authorized")
        if outcome not in ("authorized", "declined"):
            return self.sim.json(422, {"error": "outcome must be authorized or declined"})
        self.sim.complete_local(p, outcome)
        return self.sim.json(200, p.view())

    async def health(self, request: Request) -> Response:
        return self.sim.json(200, {"status": "ok"})


def create_app(*, seed: int = 0) -> Starlette:
    sim = Sim(st.SimState(seed=seed))
    stripe, adyen, local, admin = (
        StripeRoutes(sim),
        AdyenRoutes(sim),
        LocalRoutes(sim),
        AdminRoutes(sim),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            sim.http = client
            yield
            for task in list(sim.tasks):
                task.cancel()

    routes = [
        Route("/_sim/health", admin.health, methods=["GET"]),
        Route("/_sim/accounts", admin.accounts, methods=["POST"]),
        Route("/_sim/faults", admin.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/ledger", admin.ledger, methods=["GET"]),
        Route("/_sim/payments", admin.payments, methods=["GET"]),
        Route("/_sim/reset", admin.reset, methods=["POST"]),
        Route("/_sim/clock", admin.clock, methods=["POST"]),
        Route("/_sim/settings", admin.settings, methods=["POST"]),
        Route("/_sim/local/{pid}/complete", admin.complete, methods=["POST"]),
        Route("/{ep}/stripe/v1/payment_intents", stripe.create, methods=["POST"]),
        Route("/{ep}/stripe/v1/payment_intents/search", stripe.search, methods=["GET"]),
        Route("/{ep}/stripe/v1/payment_intents/{pid}", stripe.retrieve, methods=["GET"]),
        Route("/{ep}/stripe/v1/payment_intents/{pid}/{action}", stripe.modify, methods=["POST"]),
        Route("/{ep}/stripe/v1/refunds", stripe.refund, methods=["POST"]),
        Route("/{ep}/adyen/v71/payments", adyen.authorize, methods=["POST"]),
        Route("/{ep}/adyen/v71/payments", adyen.lookup, methods=["GET"]),
        Route("/{ep}/adyen/v71/payments/{psp}", adyen.details, methods=["GET"]),
        Route("/{ep}/adyen/v71/payments/{psp}/{kind}", adyen.modify, methods=["POST"]),
        Route("/{ep}/{method}/v1/payments", local.create, methods=["POST"]),
        Route("/{ep}/{method}/v1/payments", local.lookup, methods=["GET"]),
        Route("/{ep}/{method}/v1/payments/{pid}", local.retrieve, methods=["GET"]),
        Route("/{ep}/{method}/v1/payments/{pid}/{action}", local.modify, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return app
