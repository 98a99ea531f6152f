"""Bearer JWTs verified locally against a JWKS (a file, or a URL fetched by the gateway).

Only asymmetric algorithms are accepted (never ``none`` or HMAC: a public key must not become a
shared secret); ``exp`` and ``sub`` are required, ``iss`` / ``aud`` when configured. A token
whose ``kid`` is unknown makes the gateway re-read the JWKS (key rotation), at most once per
``refetch_interval_s`` for a URL; a file is re-read whenever it changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from checkout_services.common import settings
from checkout_services.gateway import exceptions

log = logging.getLogger("checkout_services.gateway.auth")


@dataclass(frozen=True)
class Principal:
    client_id: str
    """The rate-limited identity: the ``client_id`` or ``azp`` claim, else ``sub``."""
    subject: str


class Authenticator:
    def __init__(
        self,
        source: str,
        http: httpx.AsyncClient,
        *,
        issuer: str | None,
        audience: str | None,
        algorithms: tuple[str, ...],
        refetch_interval_s: float = 30.0,
        cache_size: int = 10000,
    ) -> None:
        self.source = source
        self.is_url = source.startswith(("http://", "https://"))
        self.http = http
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.refetch_interval_s = refetch_interval_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._default: jwt.PyJWK | None = None
        self._file_id: tuple[int, int] | None = None
        self._fetched_at = 0.0
        self.cache_size = cache_size
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_epoch = 0
        self._keys_epoch = 0
        """Bumped on every JWKS load: a removed key invalidates the cached tokens."""

    @property
    def key_count(self) -> int:
        return len(self._keys) + (1 if self._default and not self._keys else 0)

    async def load(self) -> None:
        """Read the JWKS now; a bad or unreachable JWKS is a settings error (exit 2)."""
        try:
            await self._reload(force=True)
        except (OSError, ValueError, httpx.HTTPError, jwt.PyJWKSetError) as exc:
            raise settings.SettingsError(
                f"cannot load the JWKS from {self._where()}: {type(exc).__name__}: {exc}"
            ) from None

    async def check(self) -> None:
        """Readiness: at least one key is loaded."""
        if not self._keys and self._default is None:
            raise RuntimeError("no JWKS key loaded")

    def _where(self) -> str:
        return self.source.split("?", 1)[0]

    async def _reload(self, force: bool = False) -> None:
        if self.is_url:
            if not force and time.monotonic() - self._fetched_at < self.refetch_interval_s:
                return
            self._fetched_at = time.monotonic()
            resp = await self.http.get(self.source, timeout=5.0)
            resp.raise_for_status()
            self._install(resp.json())
            return
        st = os.stat(self.source)
        ident = (st.st_ino, st.st_mtime_ns)
        if force or ident != self._file_id:
            text = await asyncio.to_thread(Path(self.source).read_text, encoding="utf-8")
            self._install(json.loads(text))
            self._file_id = ident

    def _install(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("a JWKS is a JSON object with a 'keys' array")
        keyset = jwt.PyJWKSet.from_dict(data)
        keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._keys = keys
        self._keys_epoch += 1
        self._default = keyset.keys[0] if len(keyset.keys) == 1 else None
        log.info("JWKS loaded from %s: %d key(s)", self._where(), len(keyset.keys))

    async def _key_for(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            if self._default is not None:
                return self._default
            raise exceptions.Unauthorized("the token names no key (kid) and the JWKS has several")
        key = self._keys.get(kid)
        if key is None:
            try:
                await self._reload()
            except (OSError, ValueError, httpx.HTTPError, jwt.PyJWKSetError) as exc:
                log.warning("JWKS refresh failed: %s", type(exc).__name__)
            key = self._keys.get(kid)
        if key is None:
            raise exceptions.Unauthorized("the token's signing key is unknown")
        return key

    async def verify(self, authorization: str | None) -> Principal:
        """The token's principal; a token verified before is answered from a bounded cache
        until its ``exp`` (clients send the same token for many requests)."""
        if not self.is_url:
            try:
                await self._reload()  # one stat; a key removed from the file drops the cache
            except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                log.warning("JWKS file unreadable, keeping the last keys: %s", type(exc).__name__)
        if authorization:
            hit = self._cache.get(authorization)
            if hit is not None and hit[1] > time.time() and self._cache_epoch == self._keys_epoch:
                return hit[0]
        principal, exp = await self._verify(authorization)
        if authorization:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[authorization] = (principal, exp)
            self._cache_epoch = self._keys_epoch
        return principal

    async def _verify(self, authorization: str | None) -> tuple[Principal, float]:
        if not authorization:
            raise exceptions.Unauthorized("missing Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise exceptions.Unauthorized("the Authorization header must be 'Bearer <token>'")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise exceptions.Unauthorized("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise exceptions.Unauthorized(f"the token's algorithm {alg!r} is not accepted")
        key = await self._key_for(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=30,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise exceptions.Unauthorized("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise exceptions.Unauthorized(f"the bearer token is invalid: {exc}") from None
        subject = str(claims["sub"])
        client = claims.get("client_id") or claims.get("azp") or subject
        return Principal(client_id=str(client)[:128], subject=subject), float(claims["exp"])
