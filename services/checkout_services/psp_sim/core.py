"""The simulator's engine: idempotency-key stores with each provider's rules, faults,
the ledger around one :class:`~state.SimState`; :mod:`webhooks` delivers what it signs."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
        if faults.rate_limit or faults.transient_5xx:
            if scope is not None:
                state.keys.pop(scope, None)  # nothing ran: nothing is kept under the key
            return self.refusal(provider, 429 if faults.rate_limit else 500)
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

    def refusal(self, provider: str, status: int) -> Response:
        """A 429, or a 500 before anything ran (Adyen says ``Transient-Error: true``)."""
        if status == 429:
            if provider == "stripe":
                body: JsonDict = {
                    "error": {"type": "rate_limit_error", "message": "Too many requests."}
                }
            else:
                body = {
                    "status": 429,
                    "errorCode": "000",
                    "message": "Too many requests",
                    "errorType": "internal",
                }
            return self.json(429, body)
        headers = {"Transient-Error": "true"} if provider == "adyen" else None
        return self.json(500, self.server_error(provider), headers)

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


async def read_form(request: Request) -> list[tuple[str, str]]:
    return parse_qsl((await request.body()).decode(), keep_blank_values=True)


async def read_json(request: Request) -> JsonDict | None:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
