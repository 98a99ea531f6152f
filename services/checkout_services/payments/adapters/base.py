"""The adapter Protocol, its result types, and the one HTTP call helper every adapter uses."""

from __future__ import annotations

import os
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
        elif os.environ.get(env):
            values[name] = os.environ[env]
        else:
            raise CredentialsError(
                f"provider {provider.name!r}: no credential file {path} and no env var {env}"
            )
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
class PSPResult:
    outcome: Outcome
    psp_reference: str | None = None
    status: PSPStatus | None = None
    decline_class: DeclineClass | None = None
    reason: str | None = None
    action: dict[str, Any] | None = None


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


class PSPRejected(PSPError):
    """The provider refused the request itself (4xx that is not a decline)."""

    def __init__(self, provider: str, detail: str, status: int) -> None:
        super().__init__(provider, detail)
        self.status = status


class PSPAdapter(Protocol):
    target: Target

    async def authorize(
        self, *, checkout_id: str, amount: int, currency: str, method: str, key: str
    ) -> PSPResult: ...

    async def capture(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> PSPResult: ...

    async def void(self, *, psp_reference: str, checkout_id: str, key: str) -> PSPResult: ...

    async def refund(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> PSPResult: ...

    async def lookup(self, *, checkout_id: str) -> list[FoundPayment]:
        """Every payment the provider holds for this checkout (by merchant reference)."""
        ...

    async def retrieve(self, *, psp_reference: str) -> FoundPayment | None: ...


class HTTPAdapter:
    """Shared plumbing: the app's one httpx.AsyncClient, per-provider timeout, error mapping."""

    def __init__(self, target: Target, credentials: Credentials, http: httpx.AsyncClient) -> None:
        self.target = target
        self.credentials = credentials
        self.http = http
        self.latency_observer: Any = None

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
