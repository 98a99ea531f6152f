"""Gateway pieces without a server: trace context, the routing table following its file, the
JWT checks, settings errors."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import gateway_harness as gh
import httpx
import jwt
import pytest

from checkout_services.common import settings
from checkout_services.gateway import auth, exceptions, leases, table, tracing
from checkout_services.gateway.config import Settings

GATEWAYS = {gh.EU: "http://127.0.0.1:1", gh.US: "http://127.0.0.1:2"}


def test_traceparent_continues_the_callers_trace_with_a_new_span() -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    out = tracing.child(incoming)
    assert out.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert out.endswith("-01")
    assert out.split("-")[2] != "00f067aa0ba902b7"
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        fresh = tracing.child(bad)
        assert len(fresh) == 55
        assert tracing.trace_id(fresh) != "0" * 32


def test_routing_table_follows_the_file_and_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_INSECURE_LOOPBACK", "1")  # the peers are http://127.0.0.1
    path = tmp_path / "routing.json"
    gh.write_atomically(path, gh.routing_doc(GATEWAYS, {}, {}, epoch=1))
    t = table.RoutingTable(path, max_age_s=0.5)
    route = t.route("DE")
    assert route is not None
    assert (route.writer, route.epoch, route.state) == (gh.EU, 1, "Serving")
    assert t.gateway_url(gh.US) == "http://127.0.0.1:2"
    gh.write_atomically(path, gh.routing_doc(GATEWAYS, {"DE": gh.US}, {"DE": "Fencing"}, 2))
    route = t.route("DE")
    assert route is not None
    assert (route.writer, route.epoch, route.state) == (gh.US, 2, "Fencing")
    assert t.reloads == 2
    # a broken file: the last good table stays, and freshness runs out
    path.write_text("{not json")
    route = t.route("DE")
    assert route is not None
    assert route.epoch == 2
    assert "invalid fleet routing file" in t.last_error
    time.sleep(0.6)
    with pytest.raises(table.StaleRouting, match="invalid fleet routing file"):
        asyncio.run(t.check_fresh())


async def test_routing_leases_only_name_a_serving_writer(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    gh.write_atomically(path, gh.routing_doc(GATEWAYS, {}, {"US": "Fencing"}, epoch=4))
    t = table.RoutingTable(path)
    view = leases.RoutingLeases()
    de, us = t.route("DE"), t.route("US")
    assert de is not None
    assert us is not None
    assert await view.holder(de) == gh.EU
    assert await view.holder(us) is None


async def test_jwt_verification(tmp_path: Path) -> None:
    keys = gh.make_keys(tmp_path)
    async with httpx.AsyncClient() as http:
        a = auth.Authenticator(
            str(keys.jwks_file),
            http,
            issuer=gh.ISSUER,
            audience=gh.AUDIENCE,
            algorithms=("RS256",),
        )
        await a.load()
        ok = await a.verify("Bearer " + keys.token("alice", client_id="app-7"))
        assert ok == auth.Principal(client_id="app-7", subject="alice")
        other = gh.rsa_key()
        forged = jwt.encode(
            {"sub": "x", "iss": gh.ISSUER, "aud": gh.AUDIENCE, "exp": int(time.time()) + 60},
            other,
            algorithm="RS256",
            headers={"kid": keys.kid},
        )
        hmac = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256")
        cases = {
            None: "missing",
            "Basic abc": "Bearer",
            "Bearer not-a-jwt": "not a JWT",
            "Bearer " + forged: "invalid",
            "Bearer " + hmac: "algorithm 'HS256'",
            "Bearer " + keys.token(ttl_s=-120): "expired",
            "Bearer " + keys.token(aud="someone-else"): "invalid",
        }
        for header, message in cases.items():
            with pytest.raises(exceptions.Unauthorized, match=message):
                await a.verify(header)
        # key rotation: a new key in the file is picked up without a restart
        new = gh.rsa_key()
        doc = json.loads(keys.jwks_file.read_text())
        doc["keys"].append(gh.public_jwk(new, "k-new"))
        keys.jwks_file.write_text(json.dumps(doc))
        os.utime(keys.jwks_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        rotated = gh.Keys(new, "k-new", keys.jwks_file).token("bob")
        assert (await a.verify("Bearer " + rotated)).subject == "bob"
        # the old key is withdrawn: its tokens stop working, even ones verified (cached) before
        old_token = "Bearer " + keys.token("carol")
        assert (await a.verify(old_token)).subject == "carol"
        doc["keys"] = [k for k in doc["keys"] if k["kid"] == "k-new"]
        keys.jwks_file.write_text(json.dumps(doc))
        os.utime(keys.jwks_file, ns=(time.time_ns(), time.time_ns() + 2_000_000))
        with pytest.raises(exceptions.Unauthorized, match="unknown"):
            await a.verify(old_token)
        assert (await a.verify("Bearer " + rotated)).subject == "bob"


async def test_bad_jwks_is_a_settings_error(tmp_path: Path) -> None:
    bad = tmp_path / "jwks.json"
    bad.write_text('{"keys": []}')
    async with httpx.AsyncClient() as http:
        a = auth.Authenticator(
            str(bad), http, issuer=gh.ISSUER, audience=gh.AUDIENCE, algorithms=("RS256",)
        )
        with pytest.raises(settings.SettingsError, match="cannot load the JWKS"):
            await a.load()


def test_settings_refuse_symmetric_algorithms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_CONFIG_FILE", "/nonexistent/region.json")
    monkeypatch.setenv("FLEET_ROUTING_FILE", "/nonexistent/routing.json")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("GATEWAY_JWKS", "/nonexistent/jwks.json")
    monkeypatch.setenv("GATEWAY_JWT_ISSUER", gh.ISSUER)
    monkeypatch.setenv("GATEWAY_JWT_AUDIENCE", gh.AUDIENCE)
    monkeypatch.setenv("GATEWAY_JWT_ALGORITHMS", "RS256,HS256")
    with pytest.raises(settings.SettingsError, match="HS256"):
        Settings.from_env()
    monkeypatch.setenv("GATEWAY_JWT_ALGORITHMS", "RS256")
    monkeypatch.setenv("GATEWAY_CLIENT_RATE", "0")
    with pytest.raises(settings.SettingsError, match="GATEWAY_CLIENT_RATE"):
        Settings.from_env()
    monkeypatch.delenv("GATEWAY_JWKS")
    with pytest.raises(settings.SettingsError, match="GATEWAY_JWKS"):
        Settings.from_env()
