"""What the services write themselves is never refused as a card number (the demo refused about
one checkout in 500 with 422 ``card-number-refused``), while what a client writes still is.

* The request id the gateway makes when the client sends none (``uuid4().hex`` before) went to
  the services and, on a forwarded write, to the peer gateway in ``X-Request-Id``; about one in
  a thousand held 13-16 digits in a row that pass the Luhn check, and the next hop's filter
  refused the checkout. The same for cart and quote snapshot ids, which a client sends back in
  a path. Made ids (``ids.new``) now cannot hold one.
* The principal the gateway signs (the token's subject) passes when the signature verifies: an
  identity provider may number its subjects like cards. Unsigned, or with a signature that does
  not verify, it is scanned like any client header.

Pure: the middlewares run in-process, no server.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import services_harness as h
from fastapi import FastAPI
from hypothesis import strategies as st

from checkout_services.common import ids, pan, principal, requestid, scrub

REQUEST_IDS = 20_000
"""Enough that ``uuid4().hex`` request ids hold card-like numbers ~20 times (p(none) ~ 1e-9)."""
UUID_HEX_WITH_A_CARD = "61502dee3518437682410ad1f6da7a63"
"""A ``uuid4().hex`` (version 4, variant 8) with ``3518437682410`` in it: 13 digits, Luhn-valid."""
PAN_SUBJECT = "4000056655665556"
KEY = ("made-ids-test-key-" + uuid.uuid4().hex).encode()


async def _gateway_request_ids(n: int) -> list[dict[str, str]]:
    """The ``X-Request-Id`` headers the gateway's request-id middleware hands to the next hop
    (``requestid.outgoing_headers``, what ``Gateway._headers`` sends) for ``n`` client requests
    that carry no id of their own."""
    seen: list[dict[str, str]] = []

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        seen.append(requestid.outgoing_headers())

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    middleware = requestid.RequestIdMiddleware(upstream)
    scope = {"type": "http", "method": "POST", "path": "/v1/checkouts", "headers": []}
    for _ in range(n):
        await middleware(dict(scope), receive, send)
    return seen


def test_request_ids_the_gateway_makes_pass_the_next_hops_card_filter() -> None:
    made = asyncio.run(_gateway_request_ids(REQUEST_IDS))
    assert len(made) == REQUEST_IDS
    assert len({h["X-Request-Id"] for h in made}) == REQUEST_IDS  # still unique
    scopes = [
        {"path": "/v1/checkouts", "headers": [(k.lower().encode(), v.encode())]}
        for h in made
        for k, v in h.items()
    ]
    refused = [(s["headers"], f) for s in scopes if (f := scrub._head_pan_field(s)) is not None]
    assert refused == [], (
        f"{len(refused)} of {REQUEST_IDS} request ids the gateway made would be refused as card "
        f"numbers by the service or peer gateway it sends them to: {refused[:5]}"
    )


def test_a_uuid_hex_can_hold_a_card_number_a_made_id_cannot() -> None:
    assert pan.find_pan(UUID_HEX_WITH_A_CARD) == "3518437682410"
    assert uuid.UUID(UUID_HEX_WITH_A_CARD).version == 4
    made = ids.shaped(bytes.fromhex(UUID_HEX_WITH_A_CARD))
    assert pan.find_pan(made) is None, made
    worst = ids.shaped(bytes.fromhex("4111111111111111" * 2))  # all digits, a Visa test card
    assert pan.find_pan(worst) is None, worst
    assert worst[0].isalpha()
    assert worst[-1].isalpha()


@hypothesis.settings(max_examples=300, derandomize=True, database=None, deadline=None)
@hypothesis.given(
    raw=st.binary(min_size=ids.RAW_BYTES, max_size=ids.RAW_BYTES),
    before=st.text("0123456789", max_size=12),
    after=st.text("0123456789", max_size=12),
    sep=st.sampled_from(["", "-", ":", " ", ".", "/", "_", "--", " - "]),
)
def test_a_made_id_holds_no_card_number_even_joined_to_digits(
    raw: bytes, before: str, after: str, sep: str
) -> None:
    made = ids.shaped(raw)
    assert len(made) == 32
    assert all(c in "0123456789abcdef" for c in made)
    assert pan.find_pan(made) is None
    # 12 digits or fewer on either side hold none; an id between them does not make one
    assert pan.find_pan(f"{before}{sep}{made}{sep}{after}") is None, (before, made, after)


def test_made_ids_fit_the_routes_that_take_them_back_and_are_random() -> None:
    made = [ids.new() for _ in range(2000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(ids.MADE, m) for m in made)
    assert all(pan.find_pan(m) is None for m in made)
    for place in range(32):  # every place varies (no constant slipped in)
        assert len({m[place] for m in made}) >= 6, place
    with pytest.raises(ValueError, match="16 bytes"):
        ids.shaped(b"short")


# -- the signed principal ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_log_scrubbing_left() -> Iterator[None]:
    """The services' app factory masks every log record of the process from then on; the tests
    run after these (one asserts a record's exc_info, which masking folds into text) must not
    inherit it."""
    installed_before = bool(scrub._installed)
    yield
    if not installed_before:
        scrub.uninstall_logging()


def _service_app() -> FastAPI:
    """An app from the services' own factory with a route that needs the gateway's signature."""
    app = h.in_process_app("made-ids")
    app.state.gateway_key = KEY
    app.state.gateway_auth_off = False

    @app.post("/v1/things")
    async def things(caller: principal.CallerDep, body: dict[str, Any]) -> dict[str, Any]:
        return {"tag": caller.tag, "body": body}

    return app


async def _post(
    app: FastAPI, body: dict[str, Any], who: str, *, key: bytes = KEY, **extra: str
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = principal.signed_headers(key, "POST", "/v1/things", who, raw)
    headers.update(extra)
    headers["content-type"] = "application/json"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.post("/v1/things", content=raw, headers=headers)


async def test_a_signed_principal_numbered_like_a_card_is_served() -> None:
    app = _service_app()
    ok = await _post(app, {"a": "b"}, PAN_SUBJECT)
    assert ok.status_code == 200, ok.text
    assert ok.json()["tag"] == principal.tag(KEY, PAN_SUBJECT)


async def test_an_unsigned_or_forged_principal_is_still_scanned() -> None:
    app = _service_app()
    forged = await _post(app, {"a": "b"}, PAN_SUBJECT, key=b"x" * 40)
    assert forged.status_code == 422, forged.text
    assert forged.json()["field"] == "header.x-checkout-principal"
    assert PAN_SUBJECT not in forged.text
    # signed for another body: the signature does not cover this request
    raw = json.dumps({"a": "b"}).encode()
    headers = principal.signed_headers(KEY, "POST", "/v1/things", PAN_SUBJECT, b"{}")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        moved = await client.post("/v1/things", content=raw, headers=headers)
        assert moved.status_code == 422, moved.text
        bare = await client.post(
            "/v1/things", json={"a": "b"}, headers={principal.PRINCIPAL_HEADER: PAN_SUBJECT}
        )
        assert bare.status_code == 422, bare.text
        assert bare.json()["field"] == "header.x-checkout-principal"


async def test_a_signature_vouches_for_the_principal_only() -> None:
    """Client-controlled parts of a signed request stay scanned: headers, body, path, query."""
    app = _service_app()
    rid = await _post(app, {"a": "b"}, "alice", **{"X-Request-Id": PAN_SUBJECT})
    assert rid.status_code == 422
    assert rid.json()["field"] == "header.x-request-id"
    key = await _post(app, {"a": "b"}, PAN_SUBJECT, **{"Idempotency-Key": f"k-{PAN_SUBJECT}"})
    assert key.status_code == 422
    assert key.json()["field"] == "header.idempotency-key"
    body = await _post(app, {"promo_code": PAN_SUBJECT}, PAN_SUBJECT)
    assert body.status_code == 422
    assert body.json()["field"] == "promo_code"
