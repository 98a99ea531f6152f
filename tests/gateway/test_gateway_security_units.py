"""Issue 18, pure pieces (no server): the JWT checks of gateway/auth.py, the URL policy, the
signed principal, settings reprs. Each test fails on 56b6d7f."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gateway_harness as gh
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from checkout_services.common import principal, settings
from checkout_services.gateway import auth, exceptions, table, urls
from checkout_services.gateway.config import Settings


async def authenticator(keys: gh.Keys, http: httpx.AsyncClient, **kw: Any) -> auth.Authenticator:
    a = auth.Authenticator(
        str(keys.jwks_file),
        http,
        issuer=gh.ISSUER,
        audience=gh.AUDIENCE,
        algorithms=("RS256", "PS256", "ES256", "EdDSA"),
        **kw,
    )
    await a.load()
    return a


def rewrite(path: Path, doc: dict[str, Any], bump: int) -> None:
    path.write_text(json.dumps(doc))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + bump * 1_000_000))


async def test_a_removed_key_never_vouches_again_even_after_other_tokens(tmp_path: Path) -> None:
    """56b6d7f: one cache epoch for all entries; verifying any new token after the JWKS
    reload set it again and the withdrawn key's cached tokens were accepted once more."""
    keys = gh.make_keys(tmp_path)
    new = gh.Keys(gh.rsa_key(), "k-new", keys.jwks_file)
    doc = json.loads(keys.jwks_file.read_text())
    doc["keys"].append(gh.public_jwk(new.private, new.kid))
    rewrite(keys.jwks_file, doc, 1)
    async with httpx.AsyncClient() as http:
        a = await authenticator(keys, http)
        old_token = "Bearer " + keys.token("carol")
        assert (await a.verify(old_token)).subject == "carol"  # cached now
        doc["keys"] = [k for k in doc["keys"] if k["kid"] == new.kid]
        rewrite(keys.jwks_file, doc, 2)
        assert (await a.verify("Bearer " + new.token("bob"))).subject == "bob"
        assert (await a.verify("Bearer " + new.token("dave"))).subject == "dave"
        for _ in range(2):
            with pytest.raises(exceptions.Unauthorized, match="unknown"):
                await a.verify(old_token)
        # an unchanged key keeps its cached tokens across a reload of the file
        rewrite(keys.jwks_file, doc, 3)
        assert (await a.verify("Bearer " + new.token("bob"))).subject == "bob"


async def test_a_key_replaced_under_the_same_kid_drops_its_cached_tokens(tmp_path: Path) -> None:
    keys = gh.make_keys(tmp_path)
    async with httpx.AsyncClient() as http:
        a = await authenticator(keys, http)
        token = "Bearer " + keys.token("erin")
        assert (await a.verify(token)).subject == "erin"
        other = gh.rsa_key()
        rewrite(keys.jwks_file, {"keys": [gh.public_jwk(other, keys.kid)]}, 1)
        with pytest.raises(exceptions.Unauthorized, match="invalid"):
            await a.verify(token)


async def test_token_lifetime_issuer_audience_and_key_algorithm(tmp_path: Path) -> None:
    keys = gh.make_keys(tmp_path)
    now = int(time.time())
    base = {"sub": "x", "iss": gh.ISSUER, "aud": gh.AUDIENCE, "exp": now + 300}
    kid = {"kid": keys.kid}
    async with httpx.AsyncClient() as http:
        a = await authenticator(keys, http, max_lifetime_s=3600)
        assert (await a.verify("Bearer " + keys.token("ok", ttl_s=3500))).subject == "ok"
        cases = {
            keys.token("long", ttl_s=30 * 24 * 3600): "lives longer",
            keys.token("long-iat", iat=now - 7200, ttl_s=600): "lives longer",
            jwt.encode(
                {**base, "iss": "https://evil.example"}, keys.private, "RS256", headers=kid
            ): ("invalid"),
            jwt.encode(
                {k: v for k, v in base.items() if k != "aud"}, keys.private, "RS256", headers=kid
            ): "aud",
            jwt.encode(
                {k: v for k, v in base.items() if k != "iss"}, keys.private, "RS256", headers=kid
            ): "iss",
            # an RSA key's kid under another algorithm: 401 (56b6d7f: 500 for ES256/EdDSA)
            jwt.encode(base, ec.generate_private_key(ec.SECP256R1()), "ES256", headers=kid): (
                "not the algorithm of its key"
            ),
            jwt.encode(base, ed25519.Ed25519PrivateKey.generate(), "EdDSA", headers=kid): (
                "not the algorithm of its key"
            ),
            # the JWK says RS256: a PS256 signature by the same key is not accepted
            jwt.encode(base, keys.private, "PS256", headers=kid): "not the algorithm of its key",
        }
        for token, message in cases.items():
            with pytest.raises(exceptions.Unauthorized, match=message):
                await a.verify("Bearer " + token)


async def test_jwks_refuses_symmetric_keys_and_plain_http(tmp_path: Path) -> None:
    oct_jwks = tmp_path / "oct.json"
    oct_jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}))
    async with httpx.AsyncClient() as http:
        a = auth.Authenticator(
            str(oct_jwks), http, issuer=gh.ISSUER, audience=gh.AUDIENCE, algorithms=("RS256",)
        )
        with pytest.raises(settings.SettingsError, match="not an asymmetric"):
            await a.load()
        for url in ("http://idp.example/jwks", "ftp://idp.example/jwks"):
            with pytest.raises(settings.SettingsError, match="https"):
                auth.Authenticator(
                    url, http, issuer=gh.ISSUER, audience=gh.AUDIENCE, algorithms=("RS256",)
                )
        with pytest.raises(settings.SettingsError, match="issuer and audience"):
            auth.Authenticator(
                str(oct_jwks), http, issuer="", audience=gh.AUDIENCE, algorithms=("RS256",)
            )


def test_url_policy_https_only_loopback_http_behind_a_test_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert urls.check("https://gw.eu.example", "x") == "https://gw.eu.example"
    monkeypatch.delenv(urls.INSECURE_LOOPBACK_ENV, raising=False)
    for bad in ("http://gw.eu.example", "http://127.0.0.1:8080", "https://u:p@gw.example"):
        with pytest.raises(urls.InsecureURL):
            urls.check(bad, "x")
    monkeypatch.setenv(urls.INSECURE_LOOPBACK_ENV, "1")
    assert urls.check("http://127.0.0.1:8080", "x") == "http://127.0.0.1:8080"
    assert urls.check("http://[::1]:8080", "x") == "http://[::1]:8080"
    with pytest.raises(urls.InsecureURL):
        urls.check("http://gw.eu.example", "x")  # the switch never opens a path off the host


def test_routing_table_drops_peer_gateways_without_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(urls.INSECURE_LOOPBACK_ENV, raising=False)
    path = tmp_path / "routing.json"
    gh.write_atomically(
        path, gh.routing_doc({gh.EU: "https://eu.example", gh.US: "http://us.example"}, {}, {}, 1)
    )
    t = table.RoutingTable(path)
    assert t.route("DE") is not None
    assert t.gateway_url(gh.EU) == "https://eu.example"
    assert t.gateway_url(gh.US) is None  # a forwarded write would carry the bearer token


def test_gateway_settings_require_issuer_and_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_CONFIG_FILE", "/nonexistent/region.json")
    monkeypatch.setenv("FLEET_ROUTING_FILE", "/nonexistent/routing.json")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2pw@127.0.0.1:1/0")
    monkeypatch.setenv("GATEWAY_JWKS", "https://idp.example/jwks?token=s3cr3t")
    monkeypatch.delenv("GATEWAY_JWT_ISSUER", raising=False)
    monkeypatch.setenv("GATEWAY_JWT_AUDIENCE", gh.AUDIENCE)
    with pytest.raises(settings.SettingsError, match="GATEWAY_JWT_ISSUER"):
        Settings.from_env()
    monkeypatch.setenv("GATEWAY_JWT_ISSUER", gh.ISSUER)
    monkeypatch.delenv("GATEWAY_JWT_AUDIENCE")
    with pytest.raises(settings.SettingsError, match="GATEWAY_JWT_AUDIENCE"):
        Settings.from_env()
    monkeypatch.setenv("GATEWAY_JWT_AUDIENCE", gh.AUDIENCE)
    s = Settings.from_env()
    assert (s.issuer, s.audience, s.max_token_lifetime_seconds) == (gh.ISSUER, gh.AUDIENCE, 86400)
    text = repr(s)
    assert "hunter2pw" not in text, text
    assert "s3cr3t" not in text, text
    assert "127.0.0.1" in text


def test_settings_repr_hides_dsn_passwords() -> None:
    common = settings.CommonSettings(
        region_config_file="/r",
        fleet_routing_file="/f",
        database_url="postgresql://app:pa55word@db:5432/orders?sslpassword=k3y",
        redis_url="redis://:r3dispw@redis:6379/0",
    )
    text = repr(common)
    for secret in ("pa55word", "k3y", "r3dispw"):
        assert secret not in text, text
    assert "postgresql://app:***@db:5432/orders" in text
    assert settings.redact_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_signed_principal_binds_request_body_and_time() -> None:
    key = b"k" * 32
    sig = principal.sign(key, "POST", "/v1/checkouts", "alice", b"{}", now=1000)
    assert principal.verify(key, "POST", "/v1/checkouts", "alice", b"{}", sig, now=1010)
    for args in (
        ("POST", "/v1/checkouts", "bob", b"{}"),
        ("POST", "/v1/checkouts", "alice", b'{"a":1}'),
        ("GET", "/v1/checkouts", "alice", b"{}"),
        ("POST", "/v1/orders/x", "alice", b"{}"),
    ):
        assert not principal.verify(key, *args, sig, now=1010)
    assert not principal.verify(b"o" * 32, "POST", "/v1/checkouts", "alice", b"{}", sig, now=1010)
    assert not principal.verify(key, "POST", "/v1/checkouts", "alice", b"{}", sig, now=1100)
    # a non-ASCII signature is a mismatch, not a TypeError (a 500)
    assert not principal.verify(key, "POST", "/v1/checkouts", "alice", b"{}", "v1,1000,é", now=1000)
    assert not principal.same_secret("abc", "ab\u00e9")
    assert principal.tag(key, "alice") != principal.tag(key, "bob")
    assert principal.header_value("Zoë Müller") == "Zo%C3%AB%20M%C3%BCller"
