"""Cart (Redis, TTL) and pricing (tax, shipping, promotions behind flags, snapshots) as real
server processes against the stack's Redis."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import services_harness as h

import made_ids
from checkout_services.common import principal
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cart-pricing")


@pytest.fixture(scope="module")
def cart(redis: Redis, workdir: Path) -> Iterator[h.ServiceProc]:
    env = {
        **h.write_configs(workdir),
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/3",
        "CART_TTL_SECONDS": "2",
    }
    proc = h.ServiceProc("cart", workdir, env).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def pricing(redis: Redis, workdir: Path) -> Iterator[h.ServiceProc]:
    cfg = workdir / "pricing.json"
    cfg.write_text(json.dumps(h.pricing_config()))
    env = {
        **h.write_configs(workdir),
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/3",
        "PRICING_CONFIG_FILE": str(cfg),
    }
    proc = h.ServiceProc("pricing", workdir, env).start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_cart_items_and_ttl(cart: h.ServiceProc) -> None:
    async with httpx.AsyncClient(base_url=cart.url, timeout=30) as client:
        created = await client.post("/v1/carts", json={"market": "DE", "currency": "EUR"})
        assert created.status_code == 201, created.text
        cid = created.json()["cart_id"]
        await client.put(f"/v1/carts/{cid}/items/tee", json={"quantity": 2})
        got = await client.put(f"/v1/carts/{cid}/items/mug", json={"quantity": 1})
        assert got.json()["items"] == [{"sku": "mug", "quantity": 1}, {"sku": "tee", "quantity": 2}]
        got = await client.delete(f"/v1/carts/{cid}/items/mug")
        assert got.json()["items"] == [{"sku": "tee", "quantity": 2}]
        assert 0 < got.json()["expires_in_seconds"] <= 2
        bad = await client.put(f"/v1/carts/{cid}/items/tee", json={"quantity": 0})
        assert h.assert_problem(bad, 422)["field"] == "quantity"
        h.assert_problem(await client.post("/v1/carts", json={"market": "DE"}), 422)
        # idle past the TTL: the cart is gone, and a late item write does not bring it back
        await asyncio.sleep(2.5)
        h.assert_problem(await client.get(f"/v1/carts/{cid}"), 404)
        h.assert_problem(await client.put(f"/v1/carts/{cid}/items/tee", json={"quantity": 1}), 404)
        h.assert_problem(await client.get(f"/v1/carts/{cid}"), 404)


async def test_quote_vat_inclusive_with_promotion(pricing: h.ServiceProc) -> None:
    async with httpx.AsyncClient(base_url=pricing.url, timeout=30) as client:
        resp = await client.post(
            "/v1/quotes",
            json={
                "country": "DE",
                "currency": "EUR",
                "lines": [{"sku": "tee", "quantity": 2}, {"sku": "mug", "quantity": 1}],
                "promo_code": "WELCOME10",
                "shipping_option": "express",
            },
        )
        assert resp.status_code == 201, resp.text
        q = resp.json()
        assert q["subtotal"] == 2 * 1999 + 1250 == 5248
        assert q["discount"] == 525  # 10 % of 5248 = 524.8 -> 525 (half-up)
        assert q["promo_applied"] == "WELCOME10"
        assert q["shipping"]["amount"] == 1299
        assert q["total"] == 5248 - 525 + 1299 == 6022
        # VAT included: 6022 - 6022 / 1.19 = 6022 - 5060.50 -> 5061 (half-up) -> 961
        assert q["tax"] == {"kind": "VAT", "rate_bp": 1900, "inclusive": True, "amount": 961}
        assert q["display_total"] == "60.22 EUR"
        assert [o["id"] for o in q["shipping_options"]] == ["standard", "express"]
        snap = await client.get(f"/v1/quotes/{q['snapshot_id']}")
        assert snap.status_code == 200
        assert snap.json() == q
        await asyncio.sleep(2.5)  # the snapshot is time-boxed
        h.assert_problem(await client.get(f"/v1/quotes/{q['snapshot_id']}"), 404)


async def test_quote_sales_tax_on_top_and_jpy(pricing: h.ServiceProc) -> None:
    async with httpx.AsyncClient(base_url=pricing.url, timeout=30) as client:
        us = (
            await client.post(
                "/v1/quotes",
                json={"country": "US", "currency": "USD", "lines": [{"sku": "mug", "quantity": 3}]},
            )
        ).json()
        # (4200 + 799) * 8.88 % = 443.91 -> 444, added on top
        assert us["tax"]["amount"] == 444
        assert us["total"] == 4200 + 799 + 444
        jp = (
            await client.post(
                "/v1/quotes",
                json={"country": "JP", "currency": "JPY", "lines": [{"sku": "tee", "quantity": 1}]},
            )
        ).json()
        assert jp["total"] == 3480
        assert jp["display_total"] == "3480 JPY"
        assert jp["tax"]["amount"] == 3480 - 3164  # 3480 / 1.1 = 3163.6 -> 3164


async def test_promotion_switched_off_at_runtime(pricing: h.ServiceProc, workdir: Path) -> None:
    body = {
        "country": "FR",
        "currency": "EUR",
        "lines": [{"sku": "tee", "quantity": 2}],
        "promo_code": "FIVEOFF",
    }
    async with httpx.AsyncClient(base_url=pricing.url, timeout=30) as client:
        on = (await client.post("/v1/quotes", json=body)).json()
        assert on["discount"] == 500
        cfg = workdir / "pricing.json"
        cfg.write_text(json.dumps(h.pricing_config(**{"promo.fiveoff": False})))
        os.utime(cfg, (time.time() + 5, time.time() + 5))  # a new mtime even on coarse clocks
        off = (await client.post("/v1/quotes", json=body)).json()
        assert off["discount"] == 0
        assert off["promo_applied"] is None
        assert off["total"] == on["total"] + 500


async def test_pricing_bad_input_names_the_field(pricing: h.ServiceProc) -> None:
    async with httpx.AsyncClient(base_url=pricing.url, timeout=30) as client:
        unknown = await client.post(
            "/v1/quotes",
            json={"country": "DE", "currency": "EUR", "lines": [{"sku": "nope", "quantity": 1}]},
        )
        assert h.assert_problem(unknown, 422)["field"] == "lines.0.sku"
        promo = await client.post(
            "/v1/quotes",
            json={
                "country": "DE",
                "currency": "EUR",
                "lines": [{"sku": "tee", "quantity": 1}],
                "promo_code": "FREE",
            },
        )
        assert h.assert_problem(promo, 422)["field"] == "promo_code"
        nowhere = await client.post(
            "/v1/quotes",
            json={"country": "ZZ", "currency": "EUR", "lines": [{"sku": "tee", "quantity": 1}]},
        )
        assert h.assert_problem(nowhere, 422)["field"] == "country"
        h.assert_problem(await client.get(f"/v1/quotes/{made_ids.ref(n=32)}"), 404)


KEY = ("pricing-test-key-" + made_ids.ref(n=32)).encode()


def _signed(method: str, path: str, who: str, body: bytes = b"") -> dict[str, str]:
    headers = principal.signed_headers(KEY, method, path, who, body)
    return {**headers, "Content-Type": "application/json"}


def test_pricing_trusts_only_signed_requests_and_binds_snapshots(
    redis: Redis, workdir: Path
) -> None:
    cfg = workdir / "pricing-signed.json"
    cfg.write_text(json.dumps(h.pricing_config()))
    env = {
        **h.write_configs(workdir),
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/3",
        "PRICING_CONFIG_FILE": str(cfg),
        "CHECKOUT_GATEWAY_KEY": KEY.decode(),
        "CHECKOUT_GATEWAY_AUTH": "on",
    }
    proc = h.ServiceProc("pricing", workdir, env).start()
    body = json.dumps(
        {"country": "DE", "currency": "EUR", "lines": [{"sku": "tee", "quantity": 2}]}
    ).encode()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            for path in ("/health/live", "/health/ready", "/metrics"):
                assert c.get(path).status_code == 200, path
            h.assert_problem(c.post("/v1/quotes", content=body), 401)
            signed = _signed("POST", "/v1/quotes", "ann", body)
            made = c.post("/v1/quotes", content=body, headers=signed)
            assert made.status_code == 201, made.text
            path = f"/v1/quotes/{made.json()['snapshot_id']}"
            h.assert_problem(c.get(path), 401)
            assert c.get(path, headers=_signed("GET", path, "ann")).status_code == 200
            # the same snapshot id in another principal's request: as if it did not exist
            h.assert_problem(c.get(path, headers=_signed("GET", path, "ben")), 404)
            # a signature for another path does not open this one
            h.assert_problem(c.get(path, headers=_signed("GET", "/v1/quotes/x", "ann")), 401)
    finally:
        proc.stop()
    # without its key the service does not start, naming the variable
    bare = {k: v for k, v in env.items() if k != "CHECKOUT_GATEWAY_KEY"}
    with pytest.raises(AssertionError, match="CHECKOUT_GATEWAY_KEY"):
        h.ServiceProc("pricing", workdir, bare).start()
