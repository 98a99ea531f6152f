"""The adapter Protocol, its result types, and the one HTTP call helper every adapter uses."""

from __future__ import annotations

import asyncio
import os
import random
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from checkout_contract import payments as config

PSP_TIME: ContextVar[list[float] | None] = ContextVar("psp_time", default=None)
"""Seconds spent waiting on providers during the current request (for Server-Timing)."""

Outcome = Literal["approved", "pending", "declined", "rejected"]
PSPStatus = Literal["pending", "authorized", "declined", "captured", "voided", "refunded"]
DeclineClass = Literal["soft_decline", "hard_decline", "fraud"]


class Secret:
    """A credential: usable by the adapter, shown as ``***`` everywhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    api_key: Secret
    webhook_secret: Secret

    def webhook_secrets(self) -> list[str]:
        """The active webhook secrets, one a line: during a rotation the old and the new."""
        return [line.strip() for line in self.webhook_secret.reveal().splitlines() if line.strip()]


class CredentialsError(Exception):
    """A provider's credentials are missing (the message names the file, never a value)."""


def load_credentials(provider: config.Provider) -> Credentials:
    """Files ``api-key`` and ``webhook-secret`` in ``credentials_dir``; else the env vars
    ``PSP_<NAME>_API_KEY`` / ``PSP_<NAME>_WEBHOOK_SECRET`` (NAME upper-cased, ``-`` -> ``_``)."""
    base = Path(provider.credentials_dir)
    env_name = provider.name.upper().replace("-", "_")
    values: dict[str, str] = {}
    for name in ("api-key", "webhook-secret"):
        path = base / name
        env = f"PSP_{env_name}_{name.upper().replace('-', '_')}"
        if path.is_file():
            values[name] = path.read_text().strip()
            where = str(path)
        elif os.environ.get(env):
            values[name] = os.environ[env]
            where = env
        else:
            raise CredentialsError(
                f"provider {provider.name!r}: no credential file {path} and no env var {env}"
            )
        if not values[name].strip():
            # An empty webhook secret would verify nothing (an HMAC with an empty key is
            # computable by anyone): refused at startup, like a missing one.
            raise CredentialsError(f"provider {provider.name!r}: {where} is empty")
    return Credentials(Secret(values["api-key"]), Secret(values["webhook-secret"]))


@dataclass(frozen=True)
class Target:
    """Where a payment lives: capture/void/refund always go back to exactly here."""

    provider: str
    type: config.ProviderType
    endpoint: str
    account: str
    timeout_ms: int

    @classmethod
    def of(cls, p: config.Provider) -> Target:
        return cls(p.name, p.type, p.endpoint, p.account, p.timeout_ms)


@dataclass(frozen=True)
class PaymentMethodToken:
    """What the shopper's browser got from the provider's own client library: never card data.

    ``stripe``: a PaymentMethod id (``pm_...``, from Stripe.js / Elements). ``adyen``: the
    ``paymentMethod`` object of Adyen's Drop-in / Components (encrypted card fields, or a
    ``storedPaymentMethodId``, or an APM's fields). ``return_url``: where a redirect or 3-D Secure
    challenge sends the shopper back. A provider with no token of its own is not tried.
    """

    stripe: str | None = None
    adyen: dict[str, Any] | None = None
    return_url: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"stripe": self.stripe, "adyen": self.adyen, "return_url": self.return_url}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PaymentMethodToken | None:
        if not data:
            return None
        return cls(data.get("stripe"), data.get("adyen"), data.get("return_url"))


@dataclass(frozen=True)
class PSPResult:
    outcome: Outcome
    psp_reference: str | None = None
    status: PSPStatus | None = None
    decline_class: DeclineClass | None = None
    reason: str | None = None
    action: dict[str, Any] | None = None
    modification: str | None = None
    """The provider's id of a capture/cancel/refund (Adyen's modification pspReference, a
    Stripe Refund id): its webhook names it."""


@dataclass(frozen=True)
class FoundPayment:
    psp_reference: str
    status: PSPStatus
    amount: int
    currency: str


class PSPError(Exception):
    """A call whose outcome is not a PSP answer. Messages never carry credentials."""

    failure_class: config.FailureClass = "server_error"

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider


class PSPNotSent(PSPError):
    """The request never reached the provider (connect refused / connect timeout)."""

    failure_class = "network_error"


class PSPAmbiguous(PSPError):
    """The provider may or may not have acted: look the payment up before anything else."""

    def __init__(self, provider: str, detail: str, failure_class: config.FailureClass) -> None:
        super().__init__(provider, detail)
        self.failure_class = failure_class


class PSPInProgress(PSPError):
    """The provider says another request with this idempotency key is still running."""


class LookupUnsupported(PSPError):
    """The provider has no API to read a payment back (Adyen Checkout): replay the request."""


class PSPRejected(PSPError):
    """The provider refused the request itself (4xx that is not a decline)."""

    def __init__(self, provider: str, detail: str, status: int) -> None:
        super().__init__(provider, detail)
        self.status = status


class PSPAdapter(Protocol):
    target: Target
    recovers_by_replay: bool
    """True: after an ambiguous answer, the same request is sent again with the same key (the
    provider's own dedup answers); no search. False: the provider's lookup API is asked."""
    can_retrieve: bool
    """Whether the provider has a GET for one payment (Adyen's Checkout API has none)."""

    def accepts(self, method: str, token: PaymentMethodToken | None) -> bool:
        """Whether this provider can take the payment with what the client sent."""
        ...

    async def authorize(
        self,
        *,
        checkout_id: str,
        amount: int,
        currency: str,
        method: str,
        key: str,
        token: PaymentMethodToken | None = None,
    ) -> PSPResult: ...

    async def capture(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> PSPResult: ...

    async def void(self, *, psp_reference: str, checkout_id: str, key: str) -> PSPResult: ...

    async def refund(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> PSPResult: ...

    async def complete_action(
        self, *, psp_reference: str, details: dict[str, str], key: str
    ) -> PSPResult:
        """The shopper came back from the action (redirect, 3-D Secure): the provider's verdict
        now (Adyen: POST /payments/details with ``details``; the others: the payment read
        back, e.g. a Stripe PaymentIntent after its ``requires_action``)."""
        ...

    async def lookup(self, *, checkout_id: str) -> list[FoundPayment]:
        """Every payment the provider holds for this checkout (by merchant reference)."""
        ...

    async def retrieve(self, *, psp_reference: str) -> FoundPayment | None: ...

    async def retrieve_refund(
        self, *, refund_reference: str, psp_reference: str
    ) -> PSPResult | None:
        """A refund read back by its own id (Stripe: GET /v1/refunds/{id}), as the refund
        answer would say it; None where the provider has no such read (Adyen: its REFUND /
        REFUND_FAILED webhook is the only word) or does not know the refund."""
        ...


RETRY_ROUNDS = 3
"""How often a throttled (429) or lock-contended request is sent again, same key."""


class HTTPAdapter:
    """Shared plumbing: the app's one httpx.AsyncClient, per-provider timeout, error mapping."""

    recovers_by_replay = False
    can_retrieve = True

    def __init__(self, target: Target, credentials: Credentials, http: httpx.AsyncClient) -> None:
        self.target = target
        self.credentials = credentials
        self.http = http
        self.latency_observer: Any = None

    def accepts(self, method: str, token: PaymentMethodToken | None) -> bool:
        return True

    async def retrieve(self, *, psp_reference: str) -> FoundPayment | None:
        raise NotImplementedError

    async def retrieve_refund(
        self, *, refund_reference: str, psp_reference: str
    ) -> PSPResult | None:
        return None  # no read of a refund: the provider's webhook decides

    async def complete_action(
        self, *, psp_reference: str, details: dict[str, str], key: str
    ) -> PSPResult:
        """Read the payment back (a GET needs no key): its status is the verdict."""
        found = await self.retrieve(psp_reference=psp_reference)
        if found is None:
            return PSPResult("rejected", psp_reference, reason="the provider has no such payment")
        if found.status in ("authorized", "captured"):
            return PSPResult("approved", psp_reference, found.status)
        if found.status in ("declined", "voided"):
            return PSPResult("declined", psp_reference, "declined", "soft_decline", found.status)
        return PSPResult("pending", psp_reference, "pending")

    def retry_after(self, resp: httpx.Response, round_: int) -> float | None:
        """Seconds to wait before sending the same request (same key) again; None = don't."""
        if resp.status_code != 429:
            return None
        return retry_delay(resp, round_)

    def url(self, path: str) -> str:
        return self.target.endpoint.rstrip("/") + path

    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        key: str | None = None,
        key_header: str = "Idempotency-Key",
        operation: str,
        **kwargs: Any,
    ) -> httpx.Response:
        if key is not None:
            headers = {**headers, key_header: key}
        for round_ in range(RETRY_ROUNDS + 1):
            resp = await self._send_once(method, path, headers, operation, **kwargs)
            delay = self.retry_after(resp, round_) if round_ < RETRY_ROUNDS else None
            if delay is None:
                break
            await asyncio.sleep(delay)
        return self.classify(resp, operation, key)

    async def _send_once(
        self, method: str, path: str, headers: dict[str, str], operation: str, **kwargs: Any
    ) -> httpx.Response:
        timeout = self.target.timeout_ms / 1000
        start = time.perf_counter()
        try:
            resp = await self.http.request(
                method, self.url(path), headers=headers, timeout=timeout, **kwargs
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise PSPNotSent(self.target.provider, f"{operation}: {type(exc).__name__}") from None
        except httpx.TimeoutException as exc:
            raise PSPAmbiguous(
                self.target.provider, f"{operation}: {type(exc).__name__}", "timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise PSPAmbiguous(
                self.target.provider, f"{operation}: {type(exc).__name__}", "network_error"
            ) from None
        finally:
            elapsed = time.perf_counter() - start
            spent = PSP_TIME.get()
            if spent is not None:
                spent.append(elapsed)
            if self.latency_observer is not None:
                self.latency_observer(self.target.provider, operation, elapsed)
        return resp

    def classify(self, resp: httpx.Response, operation: str, key: str | None) -> httpx.Response:
        """Raise for answers that are not the provider's verdict; return the others."""
        if resp.status_code >= 500:
            raise PSPAmbiguous(
                self.target.provider, f"{operation}: HTTP {resp.status_code}", "server_error"
            )
        if resp.status_code == 409 and key is not None and _is_idempotency_conflict(resp):
            raise PSPInProgress(self.target.provider, f"{operation}: key in use")
        if resp.status_code in (401, 403):
            raise PSPRejected(
                self.target.provider,
                f"{operation}: HTTP {resp.status_code} (credentials)",
                resp.status_code,
            )
        return resp


def retry_delay(
    resp: httpx.Response, round_: int, base_s: float = 0.05, cap_s: float = 2.0
) -> float:
    """``Retry-After`` (seconds) when given, else exponential backoff with full jitter."""
    given = resp.headers.get("Retry-After")
    if given is not None:
        try:
            return min(cap_s, max(0.0, float(given)))
        except ValueError:
            pass
    return random.uniform(0, min(cap_s, base_s * 2**round_))


def _is_idempotency_conflict(resp: httpx.Response) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return False
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("type") == "idempotency_error":
        return True
    return isinstance(body, dict) and str(body.get("errorCode", "")).startswith("idempotency")


def json_body(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
