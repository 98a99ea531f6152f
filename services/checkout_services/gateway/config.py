"""Gateway settings, from env vars (the JWKS comes from a file or an https URL; the JWT issuer
and audience are required: a token minted for another service is never accepted)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from checkout_services.common import settings

JWKS_ENV: Final = "GATEWAY_JWKS"
"""Path of a JWKS file, or an ``http(s)://`` URL serving one."""


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: int


@dataclass(frozen=True, repr=False)
class Settings:
    __repr__ = settings.safe_repr  # the JWKS URL may carry a token in its query

    common: settings.CommonSettings
    jwks: str
    issuer: str = ""
    audience: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    max_token_lifetime_seconds: int = 24 * 3600
    """Tokens living longer (``exp - iat``, or ``exp - now``) are refused."""
    auth_failure_limit: RateLimit = RateLimit(rate=5.0, burst=20)
    """Failed authentications per client address: beyond it, 429 before any verification."""
    max_body_bytes: int = 64 * 1024
    client_limit: RateLimit = RateLimit(rate=20.0, burst=40)
    market_limit: RateLimit = RateLimit(rate=500.0, burst=1000)
    bot_window_ms: int = 1000
    bot_threshold: int = 30
    """A client making more than this many requests within ``bot_window_ms`` is flagged."""
    routing_poll_seconds: float = 1.0
    routing_max_age_seconds: float = 30.0
    """Readiness fails when the routing file could not be read and validated for this long."""
    upstream_timeout_seconds: float = 10.0
    forward_timeout_seconds: float = 10.0
    lease_poll_seconds: float = 0.5
    """How often the market Leases are re-listed (with ``CHECKOUT_LEASE_NAMESPACE``)."""

    @classmethod
    def from_env(cls) -> Settings:
        common = settings.CommonSettings.from_env(redis=True)
        jwks = settings.env_str(JWKS_ENV)
        algorithms = tuple(
            a.strip()
            for a in os.environ.get("GATEWAY_JWT_ALGORITHMS", "RS256,ES256,PS256,EdDSA").split(",")
            if a.strip()
        )
        bad = [a for a in algorithms if a == "none" or a.startswith("HS")]
        if bad or not algorithms:
            raise settings.SettingsError(
                "GATEWAY_JWT_ALGORITHMS must list asymmetric algorithms only (got "
                + ", ".join(bad or ["nothing"])
                + ")"
            )
        s = cls(
            common=common,
            jwks=jwks,
            issuer=settings.env_str("GATEWAY_JWT_ISSUER"),
            audience=settings.env_str("GATEWAY_JWT_AUDIENCE"),
            algorithms=algorithms,
            max_token_lifetime_seconds=settings.env_int(
                "GATEWAY_JWT_MAX_LIFETIME_SECONDS", 24 * 3600
            ),
            auth_failure_limit=RateLimit(
                settings.env_float("GATEWAY_AUTH_FAILURE_RATE", 5.0),
                settings.env_int("GATEWAY_AUTH_FAILURE_BURST", 20),
            ),
            max_body_bytes=settings.env_int("GATEWAY_MAX_BODY_BYTES", 64 * 1024),
            client_limit=RateLimit(
                settings.env_float("GATEWAY_CLIENT_RATE", 20.0),
                settings.env_int("GATEWAY_CLIENT_BURST", 40),
            ),
            market_limit=RateLimit(
                settings.env_float("GATEWAY_MARKET_RATE", 500.0),
                settings.env_int("GATEWAY_MARKET_BURST", 1000),
            ),
            bot_window_ms=settings.env_int("GATEWAY_BOT_WINDOW_MS", 1000),
            bot_threshold=settings.env_int("GATEWAY_BOT_THRESHOLD", 30),
            routing_poll_seconds=settings.env_float("GATEWAY_ROUTING_POLL_SECONDS", 1.0),
            routing_max_age_seconds=settings.env_float("GATEWAY_ROUTING_MAX_AGE_SECONDS", 30.0),
            upstream_timeout_seconds=settings.env_float("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", 10.0),
            forward_timeout_seconds=settings.env_float("GATEWAY_FORWARD_TIMEOUT_SECONDS", 10.0),
            lease_poll_seconds=settings.env_float("GATEWAY_LEASE_POLL_SECONDS", 0.5),
        )
        s.validate()
        return s

    def validate(self) -> None:
        checks = (
            (self.max_body_bytes >= 1, "GATEWAY_MAX_BODY_BYTES must be >= 1"),
            (
                self.max_token_lifetime_seconds >= 60,
                "GATEWAY_JWT_MAX_LIFETIME_SECONDS must be >= 60",
            ),
            (self.auth_failure_limit.rate > 0, "GATEWAY_AUTH_FAILURE_RATE must be > 0"),
            (self.auth_failure_limit.burst >= 1, "GATEWAY_AUTH_FAILURE_BURST must be >= 1"),
            (self.client_limit.rate > 0, "GATEWAY_CLIENT_RATE must be > 0"),
            (self.client_limit.burst >= 1, "GATEWAY_CLIENT_BURST must be >= 1"),
            (self.market_limit.rate > 0, "GATEWAY_MARKET_RATE must be > 0"),
            (self.market_limit.burst >= 1, "GATEWAY_MARKET_BURST must be >= 1"),
            (self.bot_window_ms >= 1, "GATEWAY_BOT_WINDOW_MS must be >= 1"),
            (self.bot_threshold >= 1, "GATEWAY_BOT_THRESHOLD must be >= 1"),
            (self.routing_poll_seconds > 0, "GATEWAY_ROUTING_POLL_SECONDS must be > 0"),
            (
                self.routing_max_age_seconds >= self.routing_poll_seconds,
                "GATEWAY_ROUTING_MAX_AGE_SECONDS must be >= GATEWAY_ROUTING_POLL_SECONDS",
            ),
            (self.lease_poll_seconds > 0, "GATEWAY_LEASE_POLL_SECONDS must be > 0"),
        )
        for ok, message in checks:
            if not ok:
                raise settings.SettingsError(message)
