"""The PCI/PII scrubber on its own: detection, masking, logs, events, the ASGI refusal."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
from fastapi import FastAPI

from checkout_services.common import scrub

VISA = "4111111111111111"
AMEX = "378282246310005"
MASTERCARD_SPACED = "5555 5555 5555 4444"
NOT_LUHN = "4111111111111112"
EPOCH_MS = "1764115200000"  # 13 digits, Luhn-valid or not: starts with 1, never a card
EMAIL = "jane.doe+shop@example.co.uk"


def test_find_pan() -> None:
    assert scrub.find_pan(f"card {VISA} ok") == VISA
    assert scrub.find_pan(f"amex:{AMEX}") == AMEX
    assert scrub.find_pan(f"mc {MASTERCARD_SPACED}.") == MASTERCARD_SPACED
    assert scrub.find_pan("4111-1111-1111-1111") == "4111-1111-1111-1111"
    assert scrub.find_pan(NOT_LUHN) is None
    assert scrub.find_pan(EPOCH_MS) is None
    assert scrub.find_pan("order 123456789012") is None  # 12 digits
    assert scrub.find_pan("9" + VISA) is None  # 17 digits starting with 9
    assert scrub.luhn_ok("79927398713")
    assert not scrub.luhn_ok("79927398710")


def test_scrub_text_masks_cards_and_emails_only() -> None:
    text = f"paid with {VISA} by {EMAIL} at {EPOCH_MS}, total 1999"
    assert (
        scrub.scrub_text(text) == f"paid with [card ****1111] by [email] at {EPOCH_MS}, total 1999"
    )


def test_scrub_value_redacts_personal_fields_unless_kept() -> None:
    data = {
        "checkoutId": "co-1",
        "email": EMAIL,
        "shippingAddress": {"line1": "Damrak 1", "city": "Amsterdam"},
        "note": f"call {EMAIL} or pay {VISA}",
        "lines": [{"sku": "tee", "quantity": 2}],
        "amount": int(VISA),
    }
    assert scrub.scrub_value(data) == {
        "checkoutId": "co-1",
        "email": "[redacted]",
        "shippingAddress": "[redacted]",
        "note": "call [email] or pay [card ****1111]",
        "lines": [{"sku": "tee", "quantity": 2}],
        "amount": "[redacted]",
    }
    kept = scrub.scrub_value({"email": EMAIL, "name": f"J {VISA}"}, keep_personal=True)
    assert kept == {"email": EMAIL, "name": "J [card ****1111]"}


def test_scrub_event_keeps_personal_fields_only_in_personal_events() -> None:
    data = {"customerId": "c-1", "email": EMAIL, "detail": f"x {VISA}"}
    assert scrub.scrub_event("CUSTOMER_UPSERTED", data) == {
        "customerId": "c-1",
        "email": EMAIL,
        "detail": "x [card ****1111]",
    }
    assert scrub.scrub_event("PAYMENT_CAPTURE_FAILED", data)["email"] == "[redacted]"
    assert scrub.scrub_event("STOCK_DELTA", {"email": EMAIL})["email"] == "[redacted]"


def test_every_log_record_is_scrubbed() -> None:
    scrub.install_logging()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("test.scrub")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("card %s for %s", VISA, EMAIL)
        log.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/v1/x?pan={AMEX}", "1.1", 422)
        try:
            raise ValueError(f"bad card {AMEX}")
        except ValueError:
            log.exception("failed for %s", EMAIL)
    finally:
        log.removeHandler(handler)
        scrub.uninstall_logging()
    out = stream.getvalue()
    for secret in (VISA, AMEX, EMAIL):
        assert secret not in out
    assert "card [card ****1111] for [email]" in out
    assert '"GET /v1/x?pan=[card ****0005] HTTP/1.1" 422' in out  # args stay args (uvicorn)
    assert "Logging error" not in out
    assert "bad card [card ****0005]" in out  # the traceback too


def _app() -> FastAPI:
    app = FastAPI()
    seen: list[Any] = []

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return body

    app.add_middleware(scrub.RefuseCardNumbers)
    app.state.seen = seen
    return app


async def test_a_request_with_a_card_number_is_refused_with_a_problem() -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.post("/echo", json={"sku": "tee", "at": int(EPOCH_MS)})
        assert ok.status_code == 200
        assert ok.json() == {"sku": "tee", "at": int(EPOCH_MS)}
        for body, field in (
            ({"payment": {"card": {"number": VISA}}}, "payment.card.number"),
            ({"lines": [{"sku": "tee"}, {"sku": MASTERCARD_SPACED}]}, "lines[1].sku"),
            ({"pan": int(AMEX)}, "pan"),
        ):
            resp = await client.post("/echo", json=body)
            assert resp.status_code == 422
            assert resp.headers["content-type"] == "application/problem+json"
            problem = resp.json()
            assert problem["field"] == field
            assert problem["type"].endswith("/card-number-refused")
            assert VISA not in resp.text
            assert AMEX not in resp.text
            assert "5555" not in resp.text
        path = await client.post(f"/echo/{VISA}", json={})
        assert path.status_code == 422
        assert path.json()["field"] == "path"
        assert VISA not in path.text
        q = await client.post(f"/echo?token={VISA}", json={})
        assert q.status_code == 422
        assert q.json()["field"] == "query.token"
        raw = await client.post(
            "/echo", content=f"not json {VISA}".encode(), headers={"content-type": "text/plain"}
        )
        assert raw.status_code == 422
    assert app.state.seen == [{"sku": "tee", "at": int(EPOCH_MS)}]
    assert json.dumps(app.state.seen).find(VISA) == -1


def test_uvicorn_access_log_still_formats_after_scrubbing() -> None:
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/v1/orders/{VISA}", "1.1", 422),
        None,
    )
    line = AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s").format(
        scrub.scrub_record(record)
    )
    assert line == "127.0.0.1:5 GET /v1/orders/[card ****1111] HTTP/1.1 422 Unprocessable Entity"
