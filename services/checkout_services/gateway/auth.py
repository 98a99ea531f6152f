"""Bearer JWTs verified locally against a JWKS (a file, or an https URL fetched by the gateway).

Only asymmetric algorithms are accepted (never ``none`` or HMAC: a public key must not become a
shared secret, and a JWKS ``oct`` key is refused). Each token must:

* name an algorithm the gateway accepts that is also the algorithm of the JWK it names: the
  JWK's ``alg`` when it has one, else one of its key type's (an RSA key never checks an ES256 or
  EdDSA signature);
* carry ``exp``, ``sub``, ``iss`` and ``aud``, the last two equal to the configured issuer and
  audience (both are required settings);
* live at most ``max_lifetime_s``: ``exp - iat`` when it has ``iat``, and ``exp - now`` always
  (a stolen long-lived token stays a short-lived one).

A token whose ``kid`` is unknown makes the gateway re-read the JWKS (key rotation), at most once
per ``refetch_interval_s`` for a URL; a file is re-read whenever it changes.

Verified tokens are cached until their ``exp``. Each cache entry remembers the very key object
that verified it, and a hit counts only while the JWKS still holds that key under that ``kid``
(a reload keeps the object of a key whose JWK did not change). A key removed from the JWKS, or
replaced under the same ``kid``, therefore never vouches for a token again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import jwt

from checkout_services.common import settings
from checkout_services.gateway import exceptions, urls

log = logging.getLogger("checkout_services.gateway.auth")

LEEWAY_S: Final = 30
FAMILIES: Final = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "EC": frozenset({"ES256", "ES384", "ES512", "ES256K"}),
    "OKP": frozenset({"EdDSA"}),
}
"""JWK key type -> the algorithms a key of that type may check (``oct`` is not there)."""
JWKS_ERRORS: Final = (OSError, ValueError, httpx.HTTPError, jwt.PyJWTError)
"""What reading a JWKS can raise (unreadable, not JSON, unreachable, a bad key)."""


@dataclass(frozen=True)
class Principal:
    client_id: str
    """The rate-limited identity: the ``client_id`` or ``azp`` claim, else ``sub``."""
    subject: str


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    raw: str
    """The JWK as canonical JSON: a reload keeps this object when the JWK is unchanged."""
    algorithms: frozenset[str]


@dataclass(frozen=True)
class _Hit:
    principal: Principal
    exp: float
    kid: str | None
    key: _Key


class Authenticator:
    def __init__(
        self,
        source: str,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...],
        max_lifetime_s: int = 24 * 3600,
        refetch_interval_s: float = 30.0,
        cache_size: int = 10000,
    ) -> None:
        if not issuer or not audience:
            raise settings.SettingsError("the gateway needs a JWT issuer and audience")
        self.source = source
        self.is_url = "://" in source
        if self.is_url:
            try:
                urls.check(source, "GATEWAY_JWKS")
            except urls.InsecureURL as exc:
                raise settings.SettingsError(str(exc)) from exc
        self.http = http
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.max_lifetime_s = max_lifetime_s
        self.refetch_interval_s = refetch_interval_s
        self._keys: dict[str, _Key] = {}
        self._default: _Key | None = None
        self._file_id: tuple[int, int] | None = None
        self._fetched_at = 0.0
        self.cache_size = cache_size
        self._cache: dict[str, _Hit] = {}

    @property
    def key_count(self) -> int:
        return len(self._keys) + (1 if self._default and not self._keys else 0)

    async def load(self) -> None:
        """Read the JWKS now; a bad or unreachable JWKS is a settings error (exit 2)."""
        try:
            await self._reload(force=True)
        except JWKS_ERRORS as exc:
            raise settings.SettingsError(
                f"cannot load the JWKS from {self._where()}: {type(exc).__name__}: {exc}"
            ) from exc

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
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("a JWKS is a JSON object with a 'keys' array")
        previous = {k.raw: k for k in (*self._keys.values(), self._default) if k is not None}
        loaded: list[tuple[str | None, _Key]] = []
        for jwk_data in data["keys"]:
            if not isinstance(jwk_data, dict):
                raise ValueError("every JWKS entry is a JSON object")
            if jwk_data.get("use", "sig") != "sig":
                continue
            raw = json.dumps(jwk_data, sort_keys=True)
            key = previous.get(raw) or _make_key(jwk_data, raw)
            kid = jwk_data.get("kid")
            loaded.append((kid if isinstance(kid, str) and kid else None, key))
        if not loaded:
            raise ValueError("the JWKS holds no signing key")
        self._keys = {kid: key for kid, key in loaded if kid}
        self._default = loaded[0][1] if len(loaded) == 1 else None
        log.info("JWKS loaded from %s: %d key(s)", self._where(), len(loaded))

    def _current(self, kid: str | None) -> _Key | None:
        return self._default if kid is None else self._keys.get(kid)

    async def _key_for(self, kid: str | None) -> _Key:
        if kid is None:
            if self._default is not None:
                return self._default
            raise exceptions.Unauthorized("the token names no key (kid) and the JWKS has several")
        key = self._keys.get(kid)
        if key is None:
            try:
                await self._reload()
            except JWKS_ERRORS as exc:
                log.warning("JWKS refresh failed: %s", type(exc).__name__)
            key = self._keys.get(kid)
        if key is None:
            raise exceptions.Unauthorized("the token's signing key is unknown")
        return key

    async def verify(self, authorization: str | None) -> Principal:
        """The token's principal; a token verified before is answered from a bounded cache
        until its ``exp`` while the key that verified it is still in the JWKS."""
        if not self.is_url:
            try:
                await self._reload()  # one stat; a key removed from the file drops its tokens
            except JWKS_ERRORS as exc:
                log.warning("JWKS file unreadable, keeping the last keys: %s", type(exc).__name__)
        if authorization:
            hit = self._cache.get(authorization)
            if hit is not None:
                if hit.exp > time.time() and self._current(hit.kid) is hit.key:
                    return hit.principal
                del self._cache[authorization]
        hit = await self._verify(authorization)
        if authorization:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[authorization] = hit
        return hit.principal

    async def _verify(self, authorization: str | None) -> _Hit:
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
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise exceptions.Unauthorized(f"the token's algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise exceptions.Unauthorized("the token's kid must be a string")
        key = await self._key_for(kid)
        if alg not in key.algorithms:
            raise exceptions.Unauthorized(
                f"the token's algorithm {alg!r} is not the algorithm of its key"
            )
        claims = self._decode(token, key, alg)
        now = time.time()
        exp = float(claims["exp"])
        iat = claims.get("iat")
        lifetime = exp - float(iat) if isinstance(iat, (int, float)) else 0.0
        if max(lifetime, exp - now) > self.max_lifetime_s + LEEWAY_S:
            raise exceptions.Unauthorized(
                f"the bearer token lives longer than the accepted {self.max_lifetime_s} s"
            )
        subject = str(claims["sub"])
        client = claims.get("client_id") or claims.get("azp") or subject
        principal = Principal(client_id=str(client)[:128], subject=subject[:256])
        return _Hit(principal, exp, kid, key)

    def _decode(self, token: str, key: _Key, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.jwk.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={
                    "require": ["exp", "sub", "iss", "aud"],
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise exceptions.Unauthorized("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise exceptions.Unauthorized(f"the bearer token is invalid: {exc}") from None
        except (ValueError, TypeError) as exc:
            # a key the algorithm cannot use (should not pass the family check above)
            raise exceptions.Unauthorized(
                f"the bearer token cannot be checked with its key ({type(exc).__name__})"
            ) from None
        return claims


def _make_key(jwk_data: dict[str, Any], raw: str) -> _Key:
    kty = jwk_data.get("kty")
    family = FAMILIES.get(kty) if isinstance(kty, str) else None
    if family is None:
        raise ValueError(f"JWK key type {kty!r} is not an asymmetric signing key")
    alg = jwk_data.get("alg")
    if alg is not None and alg not in family:
        raise ValueError(f"JWK alg {alg!r} does not fit its key type {kty}")
    jwk = jwt.PyJWK(jwk_data)
    if kty == "EC":
        # the curve fixes the algorithm (P-256 -> ES256 ...): PyJWK derived it from crv
        family = frozenset({jwk.algorithm_name})
    return _Key(jwk, raw, frozenset({alg}) if alg else family)
