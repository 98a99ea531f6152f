"""The Stripe adapter's requests against stripe-mock, Stripe's own mock server.

stripe-mock validates every request against the OpenAPI description Stripe publishes (and runs
with ``-strict-version-check``, so the pinned ``Stripe-Version`` must be the one it serves): a
parameter Stripe does not know, a wrong type or a missing required one is a 400 there. Its
answers are fixtures, so these tests check the wire format, not payment behaviour (the PSP
simulator's tests do that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import payments_harness as harness
import pytest

from checkout_services.payments import routing
from checkout_services.payments.adapters import base, registry, stripe
from checkout_stack.components.stripe_mock import StripeMock

pytestmark = pytest.mark.stack


@pytest.fixture
async def wire(stripe_mock: StripeMock) -> AsyncIterator[tuple[stripe.StripeAdapter, list[str]]]:
    seen: list[str] = []

    async def record(resp: httpx.Response) -> None:
        await resp.aread()
        seen.append(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}")
        assert resp.status_code < 300, f"stripe-mock refused the request: {resp.text}"

    target = base.Target("stripe-eu", "stripe", stripe_mock.url, "acct_test", 5000)
    creds = base.Credentials(base.Secret("sk_test_123"), base.Secret("whsec_test"))
    async with httpx.AsyncClient(event_hooks={"response": [record]}) as http:
        yield stripe.StripeAdapter(target, creds, http), seen


def test_the_pinned_version_is_the_one_stripe_mock_serves(stripe_mock: StripeMock) -> None:
    assert stripe_mock.api_version == stripe.API_VERSION


async def test_card_authorize_capture_void_refund_are_accepted(
    wire: tuple[stripe.StripeAdapter, list[str]],
) -> None:
    adapter, seen = wire
    token = base.PaymentMethodToken(stripe="pm_card_visa", return_url="https://shop.test/back")
    result = await adapter.authorize(
        checkout_id="co-1", amount=1999, currency="EUR", method="card", key="k-auth", token=token
    )
    assert result.psp_reference
    assert result.psp_reference.startswith("pi_")
    ref = result.psp_reference
    await adapter.capture(
        psp_reference=ref, checkout_id="co-1", amount=1999, currency="EUR", key="k-cap"
    )
    await adapter.void(psp_reference=ref, checkout_id="co-1", key="k-void")
    refund = await adapter.refund(
        psp_reference=ref, checkout_id="co-1", amount=500, currency="EUR", key="k-ref"
    )
    assert refund.psp_reference == ref
    assert (refund.modification or "").startswith("re_")  # the Refund's id: its webhooks name it
    found = await adapter.retrieve(psp_reference=ref)
    assert found is not None
    assert found.psp_reference == ref
    back = await adapter.complete_action(psp_reference=ref, details={}, key="k-details")
    assert back.psp_reference == ref  # after requires_action: the intent read back
    assert [s.split(" -> ")[0] for s in seen] == [
        "POST /v1/payment_intents",
        f"POST /v1/payment_intents/{ref}/capture",
        f"POST /v1/payment_intents/{ref}/cancel",
        "POST /v1/refunds",
        f"GET /v1/payment_intents/{ref}",
        f"GET /v1/payment_intents/{ref}",
    ]


async def test_a_refund_is_read_back_by_its_id(
    wire: tuple[stripe.StripeAdapter, list[str]],
) -> None:
    """The sweeper's read-back of a refund left pending (its webhook lost): GET the Refund."""
    adapter, seen = wire
    refund = await adapter.refund(
        psp_reference="pi_123", checkout_id="co-2", amount=500, currency="EUR", key="k-ref2"
    )
    assert refund.modification
    back = await adapter.retrieve_refund(
        refund_reference=refund.modification, psp_reference="pi_123"
    )
    assert back is not None
    assert back.psp_reference == "pi_123"
    assert back.modification == refund.modification
    assert [s.split(" -> ")[0] for s in seen] == [
        "POST /v1/refunds",
        f"GET /v1/refunds/{refund.modification}",
    ]


@pytest.mark.parametrize("method", ["upi", "ideal", "pix"])
async def test_apm_authorize_is_accepted(
    wire: tuple[stripe.StripeAdapter, list[str]], method: str
) -> None:
    adapter, seen = wire
    token = base.PaymentMethodToken(return_url="https://shop.test/back")
    result = await adapter.authorize(
        checkout_id=f"co-{method}",
        amount=500,
        currency="EUR",
        method=method,
        key=f"k-{method}",
        token=token,
    )
    assert result.psp_reference
    assert result.psp_reference.startswith("pi_")
    assert seen == ["POST /v1/payment_intents -> 200"]


async def test_apms_are_sent_as_stripe_documents_them(
    wire: tuple[stripe.StripeAdapter, list[str]], stripe_mock: StripeMock
) -> None:
    """payment_method_data[type], confirm=true with the return_url, no manual capture (they
    capture on confirmation); an iDEAL without a return_url is not sent (Stripe refuses to
    confirm a redirect without one)."""
    adapter, seen = wire
    sent: list[dict[str, str]] = []

    async def keep(request: httpx.Request) -> None:
        sent.append(dict(httpx.QueryParams(request.content.decode())))

    adapter.http.event_hooks["request"].append(keep)
    token = base.PaymentMethodToken(return_url="https://shop.test/back")
    for method, currency in (("ideal", "EUR"), ("pix", "BRL"), ("upi", "INR")):
        result = await adapter.authorize(
            checkout_id=f"co-{method}-2",
            amount=700,
            currency=currency,
            method=method,
            key=f"k-{method}-2",
            token=token,
        )
        assert (result.psp_reference or "").startswith("pi_")
        form = sent[-1]
        assert form["payment_method_data[type]"] == method, form
        assert form["payment_method_types[0]"] == method, form
        assert (form["confirm"], form["return_url"]) == ("true", "https://shop.test/back"), form
        assert "capture_method" not in form, form
        assert "payment_method" not in form, form
    assert len(seen) == 3
    refused = await adapter.authorize(
        checkout_id="co-ideal-3", amount=700, currency="EUR", method="ideal", key="k-i3"
    )
    assert refused.outcome == "rejected"
    assert len(seen) == 3  # never sent


async def test_stripe_mock_refuses_what_stripe_does_not_know(stripe_mock: StripeMock) -> None:
    """The check above can fail: a parameter outside Stripe's description is a 400."""
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{stripe_mock.url}/v1/payment_intents",
            headers={"Authorization": "Bearer sk_test_123", "Stripe-Version": stripe.API_VERSION},
            data={
                "amount": "100",
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "capture": "later",
            },
        )
        assert resp.status_code == 400, resp.text
        old = await http.post(
            f"{stripe_mock.url}/v1/payment_intents",
            headers={"Authorization": "Bearer sk_test_123", "Stripe-Version": "2020-08-27"},
            data={"amount": "100", "currency": "eur"},
        )
        assert old.status_code == 400, old.text


async def test_a_card_without_a_client_token_is_not_sent(
    wire: tuple[stripe.StripeAdapter, list[str]],
) -> None:
    adapter, seen = wire
    assert not adapter.accepts("card", None)
    result = await adapter.authorize(
        checkout_id="co-x", amount=100, currency="EUR", method="card", key="k-x", token=None
    )
    assert result.outcome == "rejected"
    assert seen == []


async def test_an_ideal_provider_carried_by_stripe_sends_stripes_payment_method_type(
    wire: tuple[stripe.StripeAdapter, list[str]], stripe_mock: StripeMock
) -> None:
    """A PSPRoute provider ``type: ideal`` with ``api: stripe`` is a Stripe PaymentIntent with
    ``payment_method_types[]=ideal``, accepted by stripe-mock."""
    adapter, seen = wire
    cfg = harness.carried_routing("ideal-nl", "ideal", "stripe", stripe_mock.url, "acct_test")
    wired, only = routing.by_wire(cfg)
    [provider] = wired.routes[0].providers
    built = registry.build(base.Target.of(provider), adapter.credentials, adapter.http)
    assert isinstance(built, stripe.StripeAdapter)
    assert only == {"ideal-nl": "ideal"}
    token = base.PaymentMethodToken(return_url="https://shop.test/back")
    result = await built.authorize(
        checkout_id="co-ideal-carried",
        amount=500,
        currency="EUR",
        method="ideal",
        key="k-ideal-carried",
        token=token,
    )
    assert result.psp_reference
    assert result.psp_reference.startswith("pi_")
    assert seen == ["POST /v1/payment_intents -> 200"]
