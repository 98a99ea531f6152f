"""The card-number filter on the two-region fleet (real gateways and services): what the gateway
writes itself is never refused at the next hop, what the client writes still is.

* A shopper whose token numbers its subject and client like cards (an identity provider may)
  checks out, in its region and forwarded to the writer region, reads its order and uses a
  cart: the signed principal passes orders and cart, and the peer gateway gets no unsigned
  identity (before, orders refused ``X-Checkout-Principal`` and the peer gateway
  ``X-Checkout-Client``; ``test_made_ids_units`` shows the first one in-process).
* The same shopper sending a card number in its own ``X-Request-Id`` is refused at the edge,
  and nothing reaches orders.

The request ids the gateway makes are covered in ``tests/services/test_made_ids_units.py``
(one ``uuid4().hex`` in about a thousand was refused; too rare to provoke here).
"""

from __future__ import annotations

import uuid

import gateway_harness as gh
import httpx
import pytest
import services_harness as h

from checkout_services.common import ids

pytestmark = pytest.mark.stack

SUBJECT = "4000056655665556"
CLIENT = "5555555555554444"


def test_a_shopper_numbered_like_a_card_checks_out_here_and_forwarded(fleet: gh.Fleet) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)
    auth = fleet.keys.auth(SUBJECT, client_id=CLIENT)
    eu = fleet.gateways[gh.EU]
    with httpx.Client(base_url=eu, timeout=60) as c:
        for market, writer in (("DE", gh.EU), ("US", gh.US)):
            cid = f"co-card-{uuid.uuid4().hex[:8]}"
            placed = c.post(
                "/v1/checkouts",
                json=gh.checkout_body(cid, market),
                headers={**auth, "Idempotency-Key": f"k-{cid}"},
            )
            assert placed.status_code == 201, (market, placed.text)
            assert placed.headers["x-checkout-served-by"] == writer
            rid = placed.headers["x-request-id"]  # made by the gateway: never card-like
            assert all(rid[i].isalpha() for i in ids.LETTER_AT), rid
            if writer == gh.EU:
                got = c.get(f"/v1/orders/{cid}", headers=auth)
                assert got.status_code == 200, got.text
        made = c.post("/v1/carts", json={"market": "DE", "currency": "EUR"}, headers=auth)
        assert made.status_code == 201, made.text
        cart = c.get(f"/v1/carts/{made.json()['cart_id']}", headers=auth)
        assert cart.status_code == 200, cart.text


def test_a_card_number_in_the_clients_request_id_is_still_refused(fleet: gh.Fleet) -> None:
    fleet.route({}, {}, 1)
    before = fleet.checkouts_seen(gh.EU)
    cid = f"co-card-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=fleet.gateways[gh.EU], timeout=60) as c:
        refused = c.post(
            "/v1/checkouts",
            json=gh.checkout_body(cid, "DE"),
            headers={**fleet.keys.auth("alice"), "X-Request-Id": f"r-{SUBJECT}"},
        )
    problem = h.assert_problem(refused, 422)
    assert problem["field"] == "header.x-request-id"
    assert SUBJECT not in refused.text
    assert fleet.checkouts_seen(gh.EU) == before
