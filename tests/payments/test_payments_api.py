"""The payments API end to end: real service process, real PostgreSQL and Redis, the simulator."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from conftest import Env

pytestmark = pytest.mark.stack


def cid() -> str:
    return f"co_{uuid.uuid4().hex[:16]}"


def auth_body(checkout_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "checkout_id": checkout_id,
        "amount": 4999,
        "currency": "EUR",
        "country": "DE",
        "payment_method": "card",
    }
    body.update(over)
    return body


async def authorize(
    client: httpx.AsyncClient, checkout_id: str, key: str | None = None, **over: Any
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(
        "/v1/payments/authorize", json=auth_body(checkout_id, **over), headers=headers
    )


@pytest.fixture
async def client(env: Env) -> Any:
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        yield c


async def test_authorize_capture_refund_happy_path(env: Env, client: httpx.AsyncClient) -> None:
    c = cid()
    r = await authorize(client, c, key=f"k-{c}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "authorized"
    assert body["provider"] == "stripe-eu"
    assert "psp;dur=" in r.headers["server-timing"]
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "captured"
    assert r.json()["captured_amount"] == 4999
    r = await client.post(f"/v1/payments/{c}/refunds", json={"refund_id": "r1", "amount": 999})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "partially_refunded"
    r = await client.post(f"/v1/payments/{c}/refunds", json={"refund_id": "r2", "amount": 4000})
    assert r.json()["state"] == "refunded"
    [p] = env.sim.payments(c)
    assert (p["status"], p["captured"], p["refunded"]) == ("refunded", 4999, 4999)
