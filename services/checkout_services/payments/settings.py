"""Runtime settings of the payments service, from env vars (secrets never come from here)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from checkout_contract import env
from checkout_contract import payments as config
from checkout_services.common import settings as common_settings
from checkout_services.payments import idempotency


class SettingsError(Exception):
    pass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True, repr=False)
class Settings:
    __repr__ = common_settings.safe_repr  # DSNs carry passwords

    database_url: str
    redis_url: str
    routing_file: str
    idempotency_ttl_seconds: int = idempotency.DEFAULT_TTL_SECONDS
    in_flight_seconds: int = 30
    lease_seconds: float = 30.0
    lookup_attempts: int = 3
    capture_attempts: int = 3
    sweep_interval_seconds: float = 0.0
    """0 = no background sweeper (``POST /v1/payments/reconcile`` still works)."""
    abandon_after_seconds: float = 3600.0
    pending_resolve_after_seconds: float = 60.0
    routing_seed: int = 0
    instance: str = ""
    switchover_void_after_seconds: float = 30.0
    """On a planned move of a market, authorizations still uncaptured this long after they were
    authorized are voided before the region acknowledges its fencing (payments/switchover.py)."""

    @classmethod
    def from_env(cls) -> Settings:
        missing = [
            n
            for n in (env.DATABASE_URL, env.REDIS_URL, env.PSP_ROUTING_FILE)
            if not os.environ.get(n)
        ]
        if missing:
            raise SettingsError("missing environment variable(s): " + ", ".join(missing))
        return cls(
            database_url=os.environ[env.DATABASE_URL],
            redis_url=os.environ[env.REDIS_URL],
            routing_file=os.environ[env.PSP_ROUTING_FILE],
            idempotency_ttl_seconds=_int(
                "PAYMENTS_IDEMPOTENCY_TTL_SECONDS", idempotency.DEFAULT_TTL_SECONDS
            ),
            in_flight_seconds=_int("PAYMENTS_IN_FLIGHT_SECONDS", 30),
            lease_seconds=_float("PAYMENTS_LEASE_SECONDS", 30.0),
            sweep_interval_seconds=_float("PAYMENTS_SWEEP_INTERVAL_SECONDS", 0.0),
            abandon_after_seconds=_float("PAYMENTS_ABANDON_AFTER_SECONDS", 3600.0),
            pending_resolve_after_seconds=_float("PAYMENTS_PENDING_RESOLVE_AFTER_SECONDS", 60.0),
            routing_seed=_int("PAYMENTS_ROUTING_SEED", 0),
            instance=os.environ.get("PAYMENTS_INSTANCE", ""),
            switchover_void_after_seconds=_float("PAYMENTS_SWITCHOVER_VOID_AFTER_SECONDS", 30.0),
        )


def load_routing(path: str) -> config.PaymentRoutingConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            return config.PaymentRoutingConfig.model_validate_json(fh.read())
    except OSError as exc:
        raise SettingsError(f"cannot read the PSP routing file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SettingsError(f"invalid PSP routing file {path}: {exc}") from None
