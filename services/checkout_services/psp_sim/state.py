"""The simulator's state: accounts, per-scope idempotency stores, the ledger, fault rules."""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

ProviderKind = Literal["stripe", "adyen", "upi", "ideal", "pix"]
PROVIDERS: tuple[ProviderKind, ...] = ("stripe", "adyen", "upi", "ideal", "pix")

# How long each provider keeps an idempotency key (design notes, section 2).
KEY_TTL_SECONDS: dict[str, float] = {
    "stripe": 24 * 3600.0,
    "adyen": 7 * 24 * 3600.0,
    "upi": 24 * 3600.0,
    "ideal": 24 * 3600.0,
    "pix": 24 * 3600.0,
}

Operation = Literal[
    "authorize", "details", "capture", "cancel", "refund", "retrieve", "lookup", "webhook"
]
FlagFault = Literal[
    "three_ds", "capture_failure", "rate_limit", "transient_5xx", "refund_pending", "refund_failure"
]
"""Fault kinds that set the :class:`Faults` flag of their own name."""
FaultKind = Literal[
    "latency",
    "error_5xx",
    "decline",
    "timeout_after_charge",
    "drop_after_charge",
    "webhook_delay",
    "webhook_duplicate",
    FlagFault,
]
DeclineClass = Literal["soft", "hard", "fraud"]
FLAG_FAULTS: frozenset[str] = frozenset(get_args(FlagFault))


@dataclass
class Account:
    provider: ProviderKind
    account: str
    api_key: str
    webhook_secret: str
    webhook_url: str | None = None


@dataclass
class FaultRule:
    kind: FaultKind
    provider: str | None = None
    endpoint: str | None = None
    operation: str | None = None
    probability: float = 1.0
    count: int | None = None
    """Apply to the next N matching requests only (None = no limit)."""
    latency_ms: int = 0
    decline_class: DeclineClass = "soft"
    after_charge: bool = False
    """For error_5xx: the operation ran (and was recorded) before the 5xx was returned."""
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random)
    hits: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def matches(self, provider: str, endpoint: str, operation: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        if self.operation is not None and self.operation != operation:
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        self.hits += 1
        return True


@dataclass
class Faults:
    """The fault kinds that apply to one request (at most one rule of each kind)."""

    latency_ms: int = 0
    error_5xx: FaultRule | None = None
    decline: DeclineClass | None = None
    timeout_after_charge_ms: int = 0
    drop_after_charge: bool = False
    webhook_delay_ms: int = 0
    webhook_duplicate: bool = False
    three_ds: bool = False
    """authorize: the card needs 3-D Secure; the shopper completes it after autoCompleteMs."""
    capture_failure: bool = False
    """capture: accepted ("received" / the request), then failed (Adyen CAPTURE success=false)."""
    rate_limit: bool = False
    """429 before anything runs (the key stays free)."""
    transient_5xx: bool = False
    """500 before anything runs; Adyen marks it ``Transient-Error: true``."""
    refund_pending: bool = False
    """refund: Stripe answers a ``pending`` Refund that succeeds later (refund.updated)."""
    refund_failure: bool = False
    """refund: accepted, then failed (Stripe ``pending`` -> ``failed``; Adyen REFUND
    success=false)."""


@dataclass
class IdempotencyEntry:
    fingerprint: str
    created: float
    in_flight: bool = True
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Payment:
    id: str
    provider: ProviderKind
    endpoint: str
    account: str
    reference: str
    """The merchant's reference: the checkout id."""
    amount: int
    currency: str
    method: str
    status: str
    """pending | authorized | declined | captured | voided | refunded (provider-neutral)."""
    decline_class: str | None = None
    captured: int = 0
    refunded: int = 0
    refunding: int = 0
    """Refunds accepted and not settled yet: they count against what can be refunded."""
    voided: bool = False
    created: float = field(default_factory=time.time)
    history: list[str] = field(default_factory=list)
    next_action: dict[str, Any] | None = None
    """Stripe: what the payer must do while the intent is requires_action (an APM)."""

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "account": self.account,
            "reference": self.reference,
            "amount": self.amount,
            "currency": self.currency,
            "method": self.method,
            "status": self.status,
            "declineClass": self.decline_class,
            "captured": self.captured,
            "refunded": self.refunded,
            "refunding": self.refunding,
            "voided": self.voided,
            "history": list(self.history),
        }


class SimState:
    def __init__(self, *, seed: int = 0) -> None:
        self.accounts: dict[tuple[str, str], Account] = {}
        self.keys: dict[tuple[str, ...], IdempotencyEntry] = {}
        self.payments: dict[str, Payment] = {}
        self.redirect_results: dict[str, tuple[str, bool]] = {}
        """Adyen ``redirectResult`` the shopper's browser brings back -> (payment, passed)."""
        self.refunds: dict[str, dict[str, Any]] = {}
        """Stripe Refund objects by id (GET /v1/refunds/{id} reads them; settling updates)."""
        self.faults: list[FaultRule] = []
        self.seed = seed
        self.clock_offset = 0.0
        """Seconds added to the wall clock (admin API) to test key expiry."""
        self.webhooks_sent = 0
        self.webhooks_failed = 0
        self.requests = 0

    def now(self) -> float:
        return time.time() + self.clock_offset

    # -- accounts --------------------------------------------------------------------------
    def account_by_key(self, provider: str, api_key: str) -> Account | None:
        for acct in self.accounts.values():
            if acct.provider == provider and secrets.compare_digest(acct.api_key, api_key):
                return acct
        return None

    # -- faults ----------------------------------------------------------------------------
    def faults_for(self, provider: str, endpoint: str, operation: str) -> Faults:
        out = Faults()
        for rule in self.faults:
            if not rule.matches(provider, endpoint, operation):
                continue
            if rule.kind == "latency":
                out.latency_ms = max(out.latency_ms, rule.latency_ms)
            elif rule.kind == "error_5xx" and out.error_5xx is None:
                out.error_5xx = rule
            elif rule.kind == "decline" and out.decline is None:
                out.decline = rule.decline_class
            elif rule.kind == "drop_after_charge":
                out.drop_after_charge = True
            elif rule.kind == "timeout_after_charge":
                out.timeout_after_charge_ms = max(out.timeout_after_charge_ms, rule.latency_ms)
            elif rule.kind == "webhook_delay":
                out.webhook_delay_ms = max(out.webhook_delay_ms, rule.latency_ms)
            elif rule.kind == "webhook_duplicate":
                out.webhook_duplicate = True
            elif rule.kind in FLAG_FAULTS:
                setattr(out, rule.kind, True)
        return out

    # -- ledger ----------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(8)}"

    def ledger(self) -> dict[str, Any]:
        checkouts: dict[str, dict[str, int]] = {}
        totals = {"payments": 0, "authorized": 0, "captured": 0, "voided": 0, "refunded": 0}
        for p in self.payments.values():
            row = checkouts.setdefault(
                p.reference,
                {"authorizations": 0, "captures": 0, "voids": 0, "refunds": 0, "open": 0},
            )
            totals["payments"] += 1
            was_authorized = "authorized" in p.history
            if was_authorized:
                row["authorizations"] += 1
                totals["authorized"] += 1
            if p.captured:
                row["captures"] += 1
                totals["captured"] += 1
            if p.voided:
                row["voids"] += 1
                totals["voided"] += 1
            if p.refunded:
                row["refunds"] += 1
                totals["refunded"] += 1
            if p.status == "authorized":
                row["open"] += 1
        for row in checkouts.values():
            # Money that really left (or is held on) the customer's account: authorizations
            # that were not voided. At most one per checkout is the promise.
            row["charged"] = row["authorizations"] - row["voids"]
        return {"totals": totals, "checkouts": checkouts}


def fingerprint(method: str, path: str, params: Any) -> str:
    return hashlib.sha256(f"{method} {path} {params!r}".encode()).hexdigest()
