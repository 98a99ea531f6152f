"""Issue 18 item 6: a webhook whose signature header holds non-ASCII bytes is a 401 problem,
not a 500 (56b6d7f: ``hmac.compare_digest`` raised TypeError on the non-ASCII ``str``)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from payments_env import Env

pytestmark = pytest.mark.stack


async def test_a_non_ascii_webhook_signature_is_401_not_500(env: Env) -> None:
    body = json.dumps(
        {"id": "evt_na", "type": "payment.authorized", "data": {"id": "u1", "reference": "x"}}
    ).encode()
    ts = int(time.time())
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as client:
        for tail in ("é".encode("latin-1"), "é".encode(), "ünïcødé".encode(), b"\xff" * 64):
            header = f"t={ts},v1=".encode() + tail
            r = await client.post(
                "/v1/webhooks/upi-in", content=body, headers={"Sim-Signature": header}
            )
            assert r.status_code == 401, (header, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
