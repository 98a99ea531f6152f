"""Issue 18 on real processes (gateway + cart on real Redis; the two-region fleet with orders on
real PostgreSQL, Redis and Temporal). Each test fails on 56b6d7f:

* 2: a key withdrawn from the JWKS stops vouching for the tokens the gateway cached, even after
  other tokens were verified (one shared cache epoch re-validated them);
* 6: a token naming an RSA key's kid under ES256/EdDSA, and bodies nested 30,000 deep, get a
  4xx problem (were 500 with a traceback); failed authentications are rate limited per address;
* 8: ``..`` as an item is refused (the forwarded URL was resolved to the cart: deleted);
* 4: the services answer only requests the gateway signed for a principal; orders, checkout
  ids, idempotency keys and customer ids are bound to that principal.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import gateway_harness as gh
import httpx
import jwt
import pytest
import services_harness as h
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import made_ids
from checkout_services.common import principal
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack

AUTH_FAILURE_BURST = 30
DEEP = b"[" * 30000 + b"]" * 30000
DEEP_OBJECT = b'{"":' * 10000 + b"1" + b"}" * 10000  # under the 64 KiB body limit


class Sec:
    def __init__(self, keys: gh.Keys, gateway: h.ServiceProc, cart: h.ServiceProc) -> None:
        self.keys = keys
        self.gateway = gateway
        self.cart = cart


@pytest.fixture(scope="module")
def sec(redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sec]:
    workdir: Path = tmp_path_factory.mktemp("gateway-sec")
    keys = gh.make_keys(workdir)
    redis_url = redis.url.rsplit("/", 1)[0] + "/12"
    routing = workdir / "routing.json"
    gh.write_atomically(routing, gh.routing_doc({gh.EU: "x", gh.US: "y"}, {}, {}, 5))
    cart, gateway = gh.edge_procs(
        workdir,
        keys,
        redis_url,
        routing,
        cart_env=gh.SIGNED,
        GATEWAY_AUTH_FAILURE_BURST=str(AUTH_FAILURE_BURST),
        GATEWAY_AUTH_FAILURE_RATE="0.01",
    )
    gateway.start()
    try:
        yield Sec(keys, gateway, cart)
    finally:
        gateway.stop()
        cart.stop()


def new_cart(c: httpx.Client, headers: dict[str, str]) -> str:
    made = c.post("/v1/carts", json={"market": "DE", "currency": "EUR"}, headers=headers)
    assert made.status_code == 201, made.text
    cart_id: str = made.json()["cart_id"]
    return cart_id


def test_a_withdrawn_key_is_not_accepted_again(sec: Sec) -> None:
    jwks = sec.keys.jwks_file
    original = jwks.read_text()
    new = gh.Keys(gh.rsa_key(), "k-next-" + made_ids.ref(n=6), jwks)
    old_auth = sec.keys.auth("olga")
    try:
        with httpx.Client(base_url=sec.gateway.url, timeout=30) as c:
            new_cart(c, old_auth)  # verified and cached
            gh.write_atomically(jwks, {"keys": [gh.public_jwk(new.private, new.kid)]})
            os.utime(jwks, ns=(time.time_ns(), time.time_ns() + 5_000_000))
            new_cart(c, new.auth("nina"))  # 56b6d7f: this re-armed every cached token
            new_cart(c, new.auth("noah"))
            for _ in range(2):
                refused = c.post(
                    "/v1/carts", json={"market": "DE", "currency": "EUR"}, headers=old_auth
                )
                body = h.assert_problem(refused, 401)
                assert "unknown" in body["detail"]
    finally:
        jwks.write_text(original)
        os.utime(jwks, ns=(time.time_ns(), time.time_ns() + 9_000_000))


def test_tokens_the_gateway_must_not_trust_are_401_never_500(sec: Sec) -> None:
    now = int(time.time())
    claims = {"sub": "mallory", "iss": gh.ISSUER, "aud": gh.AUDIENCE, "exp": now + 300}
    kid = {"kid": sec.keys.kid}
    tokens = {
        "es256-with-rsa-kid": jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers=kid
        ),
        "eddsa-with-rsa-kid": jwt.encode(
            claims, ed25519.Ed25519PrivateKey.generate(), "EdDSA", headers=kid
        ),
        "ps256-for-an-rs256-jwk": jwt.encode(claims, sec.keys.private, "PS256", headers=kid),
        "ninety-days": sec.keys.token("mallory", ttl_s=90 * 24 * 3600),
        "no-audience": jwt.encode(
            {k: v for k, v in claims.items() if k != "aud"}, sec.keys.private, "RS256", headers=kid
        ),
    }
    with httpx.Client(base_url=sec.gateway.url, timeout=30) as c:
        for name, token in tokens.items():
            resp = c.post(
                "/v1/carts",
                json={"market": "DE", "currency": "EUR"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 401, (name, resp.status_code, resp.text)
            h.assert_problem(resp, 401)
    log = sec.gateway.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "unhandled" not in log


def test_bodies_nested_30000_deep_are_400_not_500(sec: Sec) -> None:
    auth = sec.keys.auth("deep")
    with httpx.Client(timeout=30) as c:
        for url, headers in (
            (f"{sec.gateway.url}/v1/carts", auth),  # the gateway and its own middleware
            (f"{sec.cart.url}/v1/carts", {}),  # the card-number middleware of a service
        ):
            for body in (DEEP, DEEP_OBJECT):
                resp = c.post(
                    url, content=body, headers={**headers, "content-type": "application/json"}
                )
                h.assert_problem(resp, 400)
    for proc in (sec.gateway, sec.cart):
        text = proc.log.read_text(errors="replace")
        assert "RecursionError" not in text
        assert "Traceback" not in text


def test_failed_authentications_are_rate_limited_per_address(sec: Sec) -> None:
    # another loopback address: its own bucket, untouched by the other tests
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    bad = {"Authorization": "Bearer " + gh.Keys(gh.rsa_key(), sec.keys.kid, Path()).token()}
    with httpx.Client(base_url=sec.gateway.url, timeout=30, transport=transport) as c:
        statuses = [c.get("/v1/carts/" + "0" * 32, headers=bad).status_code for _ in range(40)]
        assert statuses[:AUTH_FAILURE_BURST] == [401] * AUTH_FAILURE_BURST, statuses
        assert set(statuses[AUTH_FAILURE_BURST:]) == {429}, statuses
        blocked = c.get("/v1/carts/" + "0" * 32, headers=sec.keys.auth("someone"))
        problem = h.assert_problem(blocked, 429)
        assert int(blocked.headers["retry-after"]) >= 1
        assert problem["limit"] == "authentication-failure"
    with httpx.Client(base_url=sec.gateway.url, timeout=30) as c:  # another address is served
        new_cart(c, sec.keys.auth("someone"))


def raw_request(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A request whose path is sent byte for byte (httpx would resolve ``..`` itself)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_a_dot_segment_item_does_not_delete_the_cart(sec: Sec) -> None:
    auth = sec.keys.auth("dots")
    with httpx.Client(base_url=sec.gateway.url, timeout=30) as c:
        cart_id = new_cart(c, auth)
        put = c.put(f"/v1/carts/{cart_id}/items/tee", json={"quantity": 2}, headers=auth)
        assert put.status_code == 200, put.text
        for item in ("..", ".", "%2E%2E", "%2e"):
            status, text = raw_request(
                sec.gateway.url, "DELETE", f"/v1/carts/{cart_id}/items/{item}", auth
            )
            assert status in (404, 422), (item, status, text)
        still = c.get(f"/v1/carts/{cart_id}", headers=auth)
        assert still.status_code == 200, still.text
        assert [i["sku"] for i in still.json()["items"]] == ["tee"]


def test_a_service_refuses_requests_that_did_not_come_through_the_gateway(sec: Sec) -> None:
    with httpx.Client(base_url=sec.cart.url, timeout=30) as c:
        body = {"market": "DE", "currency": "EUR"}
        h.assert_problem(c.post("/v1/carts", json=body), 401)
        forged = {"X-Checkout-Principal": "alice", "X-Checkout-Principal-Sig": "v1,1,00"}
        h.assert_problem(c.post("/v1/carts", json=body, headers=forged), 401)
        # a signature made with another key is refused too
        sig = principal.sign(b"x" * 32, "POST", "/v1/carts", "alice", json.dumps(body).encode())
        spoof = {"X-Checkout-Principal": "alice", "X-Checkout-Principal-Sig": sig}
        h.assert_problem(c.post("/v1/carts", json=body, headers=spoof), 401)
    # a client's own principal headers are dropped by the gateway, which signs its own
    with httpx.Client(base_url=sec.gateway.url, timeout=30) as c:
        ok = c.post("/v1/carts", json=body, headers={**sec.keys.auth("alice"), **forged})
        assert ok.status_code == 201, ok.text


# -- tenant binding on the fleet (orders on PostgreSQL + Temporal) --------------------------------


def _post(fleet: gh.Fleet, body: dict[str, Any], sub: str, key: str | None = None) -> Any:
    headers = fleet.keys.auth(sub)
    if key:
        headers["Idempotency-Key"] = key
    with httpx.Client(timeout=60) as c:
        return c.post(f"{fleet.gateways[gh.EU]}/v1/checkouts", json=body, headers=headers)


def test_orders_and_checkout_ids_belong_to_their_principal(fleet: gh.Fleet) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)
    cid = f"co-{made_ids.ref(n=10)}"
    placed = _post(fleet, gh.checkout_body(cid, "DE"), "alice")
    assert placed.status_code == 201, placed.text
    with httpx.Client(base_url=fleet.gateways[gh.EU], timeout=30) as c:
        mine = c.get(f"/v1/orders/{cid}", headers=fleet.keys.auth("alice"))
        assert mine.status_code == 200, mine.text
        theirs = c.get(f"/v1/orders/{cid}", headers=fleet.keys.auth("bob"))
        h.assert_problem(theirs, 404)
    # bob reusing alice's checkout id learns nothing of it (no state, no total)
    reused = _post(fleet, gh.checkout_body(cid, "DE"), "bob")
    problem = h.assert_problem(reused, 409)
    assert problem["type"].endswith("/checkout-id-taken")
    assert "total" not in reused.text
    assert "placed" not in reused.text
    # the services refuse the same read sent around the gateway
    direct = httpx.get(f"{fleet.regions[gh.EU].orders.url}/v1/orders/{cid}", timeout=30)
    h.assert_problem(direct, 401)


def test_idempotency_keys_are_scoped_to_the_principal(fleet: gh.Fleet) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)
    key = f"k-{made_ids.ref(n=8)}"
    alice = _post(fleet, gh.checkout_body(f"co-{made_ids.ref(n=10)}", "DE"), "alice", key)
    assert alice.status_code == 201, alice.text
    # same key, another principal and checkout: its own record (was 422 'key reused')
    bob = _post(fleet, gh.checkout_body(f"co-{made_ids.ref(n=10)}", "DE"), "bob", key)
    assert bob.status_code == 201, bob.text
    assert bob.headers.get("idempotent-replayed") is None
    assert bob.json()["checkout_id"] != alice.json()["checkout_id"]


async def test_customer_ids_belong_to_their_principal(fleet: gh.Fleet) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)
    customer_id = f"cust-{made_ids.ref(n=8)}"

    def body(email: str) -> dict[str, Any]:
        return {
            **gh.checkout_body(f"co-{made_ids.ref(n=10)}", "DE"),
            "customer": {"customer_id": customer_id, "email": email},
        }

    first = _post(fleet, body("alice@example.org"), "alice")
    assert first.status_code == 201, first.text
    overwrite = _post(fleet, body("mallory@example.org"), "mallory")
    problem = h.assert_problem(overwrite, 409)
    assert problem["type"].endswith("/customer-id-taken")
    again = _post(fleet, body("alice.new@example.org"), "alice")  # the owner may update it
    assert again.status_code == 201, again.text
    conn = await asyncpg.connect(fleet.regions[gh.EU].orders.env["DATABASE_URL"])
    try:
        email = await conn.fetchval(
            "SELECT email FROM customers WHERE customer_id = $1", customer_id
        )
    finally:
        await conn.close()
    assert email == "alice.new@example.org"


# -- cart and pricing snapshot ids are no bearer tokens; pricing and inventory trust the gateway --


def test_a_cart_of_one_principal_is_404_for_another(sec: Sec) -> None:
    alice, bob = sec.keys.auth("alice-cart"), sec.keys.auth("bob-cart")
    with httpx.Client(base_url=sec.gateway.url, timeout=30) as c:
        cart_id = new_cart(c, alice)
        put = c.put(f"/v1/carts/{cart_id}/items/tee", json={"quantity": 2}, headers=alice)
        assert put.status_code == 200, put.text
        # bob holds the id (a leaked URL, a log line): it opens nothing
        h.assert_problem(c.get(f"/v1/carts/{cart_id}", headers=bob), 404)
        h.assert_problem(
            c.put(f"/v1/carts/{cart_id}/items/mug", json={"quantity": 1}, headers=bob), 404
        )
        h.assert_problem(c.delete(f"/v1/carts/{cart_id}/items/tee", headers=bob), 404)
        h.assert_problem(c.delete(f"/v1/carts/{cart_id}", headers=bob), 404)
        still = c.get(f"/v1/carts/{cart_id}", headers=alice)
        assert still.status_code == 200, still.text
        assert [(i["sku"], i["quantity"]) for i in still.json()["items"]] == [("tee", 2)]


def _quote(market: str = "DE") -> dict[str, Any]:
    currency = {"DE": "EUR", "US": "USD"}[market]
    return {"country": market, "currency": currency, "lines": [{"sku": "tee", "quantity": 1}]}


def test_a_pricing_snapshot_of_one_principal_is_404_for_another(fleet: gh.Fleet) -> None:
    fleet.route({}, {}, 1)
    with httpx.Client(base_url=fleet.gateways[gh.EU], timeout=30) as c:
        made = c.post("/v1/quotes", json=_quote(), headers=fleet.keys.auth("alice"))
        assert made.status_code == 201, made.text
        snapshot = made.json()["snapshot_id"]
        mine = c.get(f"/v1/quotes/{snapshot}", headers=fleet.keys.auth("alice"))
        assert mine.status_code == 200, mine.text
        assert mine.json()["total"] == made.json()["total"]
        theirs = c.get(f"/v1/quotes/{snapshot}", headers=fleet.keys.auth("bob"))
        h.assert_problem(theirs, 404)


def test_pricing_and_inventory_refuse_requests_that_did_not_come_through_the_gateway(
    fleet: gh.Fleet,
) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)  # signed like a service's call: accepted
    region = fleet.regions[gh.EU]
    reserve = {"checkout_id": f"co-{made_ids.ref(n=10)}", "market": "DE", "lines": []}
    forged = {"X-Checkout-Principal": "alice", "X-Checkout-Principal-Sig": "v1,1,00"}
    calls: list[tuple[str, str, str, dict[str, Any] | None]] = [
        (region.pricing.url, "POST", "/v1/quotes", _quote()),
        (region.pricing.url, "GET", f"/v1/quotes/{made_ids.ref(n=32)}", None),
        (region.inventory.url, "GET", "/v1/stock/tee", None),
        (region.inventory.url, "GET", "/v1/stock/tee/global", None),
        (region.inventory.url, "PUT", "/v1/stock/tee", {"available": 0}),
        (region.inventory.url, "POST", "/v1/reservations", reserve),
        (region.inventory.url, "POST", f"/v1/reservations/{reserve['checkout_id']}/release", None),
        (region.inventory.url, "POST", "/v1/reservations/sweep", None),
    ]
    with httpx.Client(timeout=30) as c:
        for base, method, path, body in calls:
            for headers in ({}, forged):
                resp = c.request(method, base + path, json=body, headers=headers)
                problem = h.assert_problem(resp, 401)
                assert problem["type"].endswith("/not-from-gateway"), (method, path)
            # a signature for another principal, body or path does not carry over
            raw = b"" if body is None else json.dumps(body).encode()
            moved = principal.signed_headers(
                gh.INTERNAL_KEY.encode(), method, path + "x", "alice", raw
            )
            h.assert_problem(c.request(method, base + path, content=raw, headers=moved), 401)
        # health and metrics stay open (probes, Prometheus)
        for base in (region.pricing.url, region.inventory.url):
            for path in ("/health/live", "/health/ready", "/metrics"):
                assert c.get(base + path).status_code == 200, (base, path)
        # the stock is unchanged (the unsigned PUT did nothing)
        through = c.get(f"{fleet.gateways[gh.EU]}/v1/stock/tee", headers=fleet.keys.auth("a"))
        assert through.status_code == 200, through.text
        assert through.json()["available"] == 1000
        quoted = c.post(
            f"{fleet.gateways[gh.EU]}/v1/quotes", json=_quote(), headers=fleet.keys.auth("a")
        )
        assert quoted.status_code == 201, quoted.text
    # and the saga, which calls pricing and inventory itself, signs: a checkout still goes through
    placed = _post(fleet, gh.checkout_body(f"co-{made_ids.ref(n=10)}", "DE"), "carol")
    assert placed.status_code == 201, placed.text
