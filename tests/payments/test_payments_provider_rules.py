"""Pure rules of the provider adapters and webhook schemes (no server): each provider's answer
mapped as its documentation says, signatures verified as each provider signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from checkout_contract import payments as config
from checkout_services.payments import exceptions, webhook_schemes
from checkout_services.payments.adapters import adyen, base, stripe


# -- Stripe PaymentIntent statuses -----------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "outcome", "ours"),
    [
        ("requires_capture", "approved", "authorized"),
        ("succeeded", "approved", "captured"),
        ("requires_action", "pending", "pending"),
        ("processing", "pending", "pending"),
        ("requires_payment_method", "declined", "declined"),
        ("canceled", "declined", "declined"),
        ("requires_confirmation", "rejected", None),
    ],
)
def test_stripe_intent_status_is_mapped(status: str, outcome: str, ours: str | None) -> None:
    result = stripe.verdict({"id": "pi_1", "status": status})
    assert (result.outcome, result.status) == (outcome, ours)


def test_stripe_requires_action_carries_next_action_to_the_shopper() -> None:
    action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.test/3ds"}}
    result = stripe.verdict({"id": "pi_1", "status": "requires_action", "next_action": action})
    assert result.action == action


def test_stripe_decline_reads_last_payment_error() -> None:
    pi = {
        "id": "pi_1",
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "decline_code": "stolen_card"},
    }
    assert stripe.verdict(pi).decline_class == "hard_decline"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("succeeded", "approved"),
        ("pending", "pending"),
        ("failed", "rejected"),
        ("canceled", "rejected"),
        ("requires_action", "pending"),
    ],
)
def test_stripe_refund_outcome_is_the_refund_objects_status(status: str, outcome: str) -> None:
    assert stripe.refund_verdict({"id": "re_1", "status": status}, "pi_1").outcome == outcome


# -- Adyen resultCodes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("Authorised", "approved"),
        ("ChallengeShopper", "pending"),
        ("IdentifyShopper", "pending"),
        ("RedirectShopper", "pending"),
        ("PresentToShopper", "pending"),
        ("Pending", "pending"),
        ("Received", "pending"),
        ("Refused", "declined"),
        ("Cancelled", "declined"),
        ("Error", "rejected"),
    ],
)
def test_adyen_result_codes_are_mapped(code: str, outcome: str) -> None:
    action = {"type": "qrCode", "paymentMethodType": "pix", "qrCodeData": "000201"}
    result = adyen.verdict({"pspReference": "1", "resultCode": code, "action": action})
    assert result.outcome == outcome
    if outcome == "pending":
        assert result.action == action


def test_adyen_payment_method_comes_from_the_client_and_must_fit_the_method() -> None:
    token = base.PaymentMethodToken(adyen={"type": "ideal"}, return_url="https://s.test/r")
    assert adyen.payment_method("ideal", token) == {"type": "ideal"}
    assert adyen.payment_method("card", token) is None  # an iDEAL token never pays a card
    assert adyen.payment_method("pix", None) == {"type": "pix"}
    assert adyen.payment_method("card", None) is None


# -- retries with the same key ---------------------------------------------------------------
def target(kind: config.ProviderType) -> base.Target:
    return base.Target(f"{kind}-t", kind, "http://psp.test", "acct", 2000)


CREDS = base.Credentials(base.Secret("sk_test_x"), base.Secret("whsec_x"))


async def run_against(
    adapter_cls: type[base.HTTPAdapter],
    kind: config.ProviderType,
    answers: list[httpx.Response],
    call: Any,
) -> tuple[Any, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:  # a scripted provider
        seen.append(request)
        return answers.pop(0)

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        adapter = adapter_cls(target(kind), CREDS, http)
        return await call(adapter), seen


TOKEN = base.PaymentMethodToken(
    stripe="pm_card_visa", adyen={"type": "scheme"}, return_url="https://s.test/r"
)
PI = {"id": "pi_1", "object": "payment_intent", "status": "requires_capture"}


def authorize(adapter: Any) -> Any:
    return adapter.authorize(
        checkout_id="c1", amount=100, currency="EUR", method="card", key="k1", token=TOKEN
    )


async def test_stripe_429_and_lock_timeout_are_retried_with_the_same_key() -> None:
    lock = {"error": {"type": "invalid_request_error", "code": "lock_timeout"}}
    result, seen = await run_against(
        stripe.StripeAdapter,
        "stripe",
        [
            httpx.Response(429, json={"error": {"type": "rate_limit_error"}}),
            httpx.Response(409, json=lock),
            httpx.Response(200, json=PI),
        ],
        authorize,
    )
    assert result.outcome == "approved"
    assert {r.headers["Idempotency-Key"] for r in seen} == {"k1"}
    assert {r.headers["Stripe-Version"] for r in seen} == {stripe.API_VERSION}
    assert len(seen) == 3


async def test_stripe_key_in_use_is_in_progress_not_a_rejection() -> None:
    in_use = {"error": {"type": "idempotency_error", "code": "idempotency_key_in_use"}}
    with pytest.raises(base.PSPInProgress):
        await run_against(
            stripe.StripeAdapter, "stripe", [httpx.Response(409, json=in_use)], authorize
        )


async def test_adyen_704_is_in_progress_and_transient_error_is_retried() -> None:
    with pytest.raises(base.PSPInProgress):
        await run_against(
            adyen.AdyenAdapter,
            "adyen",
            [httpx.Response(422, json={"status": 422, "errorCode": "704", "message": "x"})],
            authorize,
        )
    ok = {"pspReference": "1", "resultCode": "Authorised"}
    result, seen = await run_against(
        adyen.AdyenAdapter,
        "adyen",
        [
            httpx.Response(500, json={"errorCode": "000"}, headers={"Transient-Error": "true"}),
            httpx.Response(200, json=ok),
        ],
        authorize,
    )
    assert result.outcome == "approved"
    assert [r.headers["Idempotency-Key"] for r in seen] == ["k1", "k1"]
    with pytest.raises(base.PSPAmbiguous):  # a 5xx without Transient-Error: unknown
        await run_against(
            adyen.AdyenAdapter, "adyen", [httpx.Response(500, json={"errorCode": "000"})], authorize
        )


async def test_adyen_partial_authorisation_is_cancelled_and_declined() -> None:
    partial = {"pspReference": "1", "resultCode": "PartiallyAuthorised"}
    cancelled = {
        "pspReference": "2",
        "status": "received",
        "merchantAccount": "acct",
        "paymentPspReference": "1",
    }
    result, seen = await run_against(
        adyen.AdyenAdapter,
        "adyen",
        [httpx.Response(200, json=partial), httpx.Response(201, json=cancelled)],
        authorize,
    )
    assert result.outcome == "declined"
    assert seen[1].url.path == "/v71/payments/1/cancels"


# -- webhook signatures ----------------------------------------------------------------------
def stripe_header(secret: str, body: bytes, ts: int) -> str:
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


def test_stripe_signature_with_several_v1_and_rotated_secrets() -> None:
    body = b'{"id":"evt_1"}'
    now = int(time.time())
    old, new = "whsec_old", "whsec_new"
    both = stripe_header(old, body, now) + "," + stripe_header(new, body, now).split(",", 1)[1]
    webhook_schemes.verify_timestamped([new], both, body)  # any v1 matching any secret
    webhook_schemes.verify_timestamped([old, new], stripe_header(old, body, now), body)
    with pytest.raises(exceptions.WebhookSignatureInvalid):
        webhook_schemes.verify_timestamped([new], stripe_header(old, body, now), body)
    with pytest.raises(exceptions.WebhookSignatureInvalid):  # outside the 300 s tolerance
        webhook_schemes.verify_timestamped([new], stripe_header(new, body, now - 301), body)
    with pytest.raises(exceptions.WebhookSignatureInvalid):
        webhook_schemes.verify_timestamped([new], stripe_header(new, body, now), body + b" ")


def adyen_item(key: str, **over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "additionalData": {},
        "amount": {"value": 1000, "currency": "EUR"},
        "eventCode": "CAPTURE",
        "eventDate": "2026-12-07T10:00:00+01:00",
        "merchantAccountCode": "Shop",
        "merchantReference": "co_1",
        "originalReference": "8815329842815468",
        "pspReference": "7914073381342284",
        "reason": "",
        "success": "true",
    }
    signing = ":".join(
        ["7914073381342284", "8815329842815468", "Shop", "co_1", "1000", "EUR", "CAPTURE", "true"]
    )
    mac = hmac.new(bytes.fromhex(key), signing.encode(), hashlib.sha256).digest()
    item["additionalData"]["hmacSignature"] = base64.b64encode(mac).decode()
    item.update(over)
    return item


def test_adyen_hmac_over_the_documented_fields() -> None:
    key = os.urandom(32).hex()
    body = json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": adyen_item(key)}]}
    ).encode()
    [event] = webhook_schemes.adyen_events(body, [key])
    assert (event.kind, event.reference, event.psp_reference, event.amount) == (
        "captured",
        "co_1",
        "8815329842815468",
        1000,
    )
    tampered = json.dumps(
        {
            "live": "false",
            "notificationItems": [
                {"NotificationRequestItem": adyen_item(key, amount={"value": 1, "currency": "EUR"})}
            ],
        }
    ).encode()
    with pytest.raises(exceptions.WebhookSignatureInvalid):
        webhook_schemes.adyen_events(tampered, [key])
    with pytest.raises(exceptions.WebhookSignatureInvalid):
        webhook_schemes.adyen_events(body, [os.urandom(32).hex()])


@pytest.mark.parametrize(
    ("code", "success", "kind"),
    [
        ("CAPTURE_FAILED", "true", "capture_failed"),
        ("CAPTURE", "false", "capture_failed"),
        ("CANCELLATION", "true", "voided"),
        ("REFUND", "true", "refunded"),
        ("REFUND_FAILED", "true", "refund_failed"),
        ("AUTHORISATION", "false", "declined"),
    ],
)
def test_adyen_event_codes(code: str, success: str, kind: str) -> None:
    key = os.urandom(32).hex()
    item = adyen_item(key)
    item.update(eventCode=code, success=success)
    item["additionalData"]["hmacSignature"] = webhook_schemes.adyen_signature(key, item)
    body = json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ).encode()
    assert webhook_schemes.adyen_events(body, [key])[0].kind == kind


# -- credentials -----------------------------------------------------------------------------
def test_an_empty_webhook_secret_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("sk_test_1\n")
    (tmp_path / "webhook-secret").write_text("  \n")
    provider = config.Provider(
        name="stripe-eu",
        type="stripe",
        endpoint="https://x.example",
        account="a",
        credentials_dir=str(tmp_path),
    )
    with pytest.raises(base.CredentialsError, match="webhook-secret is empty"):
        base.load_credentials(provider)
    (tmp_path / "webhook-secret").write_text("whsec_new\nwhsec_old\n")
    assert base.load_credentials(provider).webhook_secrets() == ["whsec_new", "whsec_old"]
