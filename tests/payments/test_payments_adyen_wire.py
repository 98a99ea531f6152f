"""Every Adyen request the adapter sends, every answer of the simulator and every notification
it delivers, validated against Adyen's own OpenAPI descriptions (tests/data/specs/adyen: Checkout
API v71, Webhooks v1). There is no official Adyen mock server, so the simulator plays Adyen and
the descriptions judge both sides."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
import payments_harness as harness
import pytest
from openapi_schema_validator import OAS31Validator

import loopback_http
from checkout_services.payments import routing, webhook_schemes
from checkout_services.payments.adapters import adyen, base, registry

pytestmark = pytest.mark.stack


def specs_dir() -> Path:
    """Adyen's descriptions vendored in tests/data/specs/adyen (MIT, unchanged)."""
    return Path(__file__).resolve().parents[1] / "data" / "specs" / "adyen"


SPECS = specs_dir()
ACCOUNT = "AdyenWireShop"
API_KEY = "adyen_wire_" + uuid.uuid4().hex
HMAC_KEY = os.urandom(32).hex()
# (method, path suffix) -> (request schema, {status: response schema})
OPERATIONS: dict[str, tuple[str, dict[int, str]]] = {
    "/payments/details": ("PaymentDetailsRequest", {200: "PaymentDetailsResponse"}),
    "/payments": ("PaymentRequest", {200: "PaymentResponse"}),
    "/captures": ("PaymentCaptureRequest", {201: "PaymentCaptureResponse"}),
    "/cancels": ("PaymentCancelRequest", {201: "PaymentCancelResponse"}),
    "/refunds": ("PaymentRefundRequest", {201: "PaymentRefundResponse"}),
}


def spec(name: str) -> dict[str, Any]:
    path = SPECS / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: Adyen's published descriptions are vendored there "
            "(restore tests/data/specs/adyen from git)"
        )
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


CHECKOUT = spec("CheckoutService-v71.json")
WEBHOOKS = spec("Webhooks-v1.json")


def errors(document: dict[str, Any], schema: str, instance: Any) -> list[str]:
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return sorted(e.message[:300] for e in OAS31Validator(root).iter_errors(instance))


def schemas_for(path: str) -> tuple[str, dict[int, str]]:
    for suffix, found in OPERATIONS.items():
        if path.endswith(suffix):
            return found
    raise AssertionError(f"the adapter called {path}, which the test does not know")


class Recorder(BaseHTTPRequestHandler):
    """The shop's webhook endpoint, as far as this test is concerned: keeps what Adyen sends."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        Recorder.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"[accepted]")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def webhook_url() -> Iterator[str]:
    with loopback_http.serving(Recorder) as url:
        yield f"{url}/adyen"


@pytest.fixture
async def wire(
    sim: harness.Sim, webhook_url: str
) -> AsyncIterator[tuple[adyen.AdyenAdapter, list[str]]]:
    sim.admin(
        "POST",
        "accounts",
        {
            "accounts": [
                {
                    "provider": "adyen",
                    "account": ACCOUNT,
                    "apiKey": API_KEY,
                    "webhookSecret": HMAC_KEY,
                    "webhookUrl": webhook_url,
                }
            ]
        },
    )
    problems: list[str] = []

    async def check_request(req: httpx.Request) -> None:
        schema, _ = schemas_for(req.url.path)
        problems.extend(
            f"request {req.url.path}: {e}"
            for e in errors(CHECKOUT, schema, json.loads(req.content))
        )

    async def check_response(resp: httpx.Response) -> None:
        await resp.aread()
        _, answers = schemas_for(resp.request.url.path)
        schema = answers.get(resp.status_code, "ServiceError")
        problems.extend(
            f"response {resp.request.url.path} {resp.status_code}: {e}"
            for e in errors(CHECKOUT, schema, resp.json())
        )

    target = base.Target("adyen-eu", "adyen", f"{sim.url}/eu/adyen", ACCOUNT, 5000)
    creds = base.Credentials(base.Secret(API_KEY), base.Secret(HMAC_KEY))
    hooks = {"request": [check_request], "response": [check_response]}
    async with httpx.AsyncClient(event_hooks=hooks) as http:
        yield adyen.AdyenAdapter(target, creds, http), problems


async def notifications(count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        if len(Recorder.received) >= count:
            break
        await asyncio.sleep(0.05)
    return list(Recorder.received)


async def test_card_payment_and_its_modifications_match_the_descriptions(
    wire: tuple[adyen.AdyenAdapter, list[str]],
) -> None:
    adapter, problems = wire
    Recorder.received.clear()
    token = base.PaymentMethodToken(adyen=harness.TOKEN["adyen"], return_url=harness.RETURN_URL)
    c = f"aw_{uuid.uuid4().hex[:12]}"
    auth = await adapter.authorize(
        checkout_id=c, amount=1999, currency="EUR", method="card", key=f"{c}:a", token=token
    )
    assert (auth.outcome, auth.status) == ("approved", "authorized")
    assert auth.psp_reference is not None
    ref = auth.psp_reference
    cap = await adapter.capture(
        psp_reference=ref, checkout_id=c, amount=1999, currency="EUR", key=f"{c}:c"
    )
    assert cap.outcome == "pending"  # 201 received: the outcome comes by webhook
    refund = await adapter.refund(
        psp_reference=ref, checkout_id=c, amount=500, currency="EUR", key=f"{c}:r"
    )
    assert refund.outcome == "pending"
    assert refund.modification  # the refund's own pspReference: REFUND names it
    assert problems == []
    sent = await notifications(2)
    codes = [n["notificationItems"][0]["NotificationRequestItem"]["eventCode"] for n in sent]
    # Adyen does not promise delivery order (each webhook is sent on its own), nor does the
    # simulator: a loaded CI run delivered REFUND first.
    assert sorted(codes) == ["CAPTURE", "REFUND"]
    for n in sent:
        # Adyen documents additionalData.hmacSignature (the signature) but its Webhooks
        # description's NotificationAdditionalData does not list it (and allows nothing
        # unlisted): validate the rest, and check the signature below.
        unsigned = json.loads(json.dumps(n))
        for wrapper in unsigned["notificationItems"]:
            assert wrapper["NotificationRequestItem"]["additionalData"].pop("hmacSignature")
        assert errors(WEBHOOKS, "NotificationRequest", unsigned) == []
        # and the service reads and verifies them with the same key
        [event] = webhook_schemes.adyen_events(json.dumps(n).encode(), [HMAC_KEY])
        assert (event.reference, event.psp_reference) == (c, ref)
        assert event.modification in (cap.modification, refund.modification)


@pytest.mark.parametrize(
    ("method", "payment_method"),
    [
        ("upi", {"type": "upi_collect", "virtualPaymentAddress": "shopper@upi"}),
        ("ideal", {"type": "ideal"}),
        ("pix", {"type": "pix"}),
    ],
)
async def test_apm_requests_match_the_description(
    wire: tuple[adyen.AdyenAdapter, list[str]], method: str, payment_method: dict[str, Any]
) -> None:
    adapter, problems = wire
    token = base.PaymentMethodToken(adyen=payment_method, return_url=harness.RETURN_URL)
    c = f"aw_{uuid.uuid4().hex[:12]}"
    result = await adapter.authorize(
        checkout_id=c, amount=700, currency="EUR", method=method, key=f"{c}:a", token=token
    )
    assert result.outcome != "rejected", result
    assert problems == []


async def test_a_upi_provider_carried_by_adyen_speaks_adyens_checkout_api(
    wire: tuple[adyen.AdyenAdapter, list[str]], sim: harness.Sim
) -> None:
    """A PSPRoute provider ``type: upi`` with ``api: adyen`` is Adyen's Checkout API with its
    UPI types (``upi_collect`` with the payer's VPA from the client, ``upi_qr`` without),
    validated like every Adyen request; it takes nothing but UPI."""
    adapter, problems = wire
    cfg = harness.carried_routing("upi-in", "upi", "adyen", f"{sim.url}/eu/adyen", ACCOUNT)
    wired, only = routing.by_wire(cfg)
    [provider] = wired.routes[0].providers
    built = registry.build(base.Target.of(provider), adapter.credentials, adapter.http)
    assert isinstance(built, adyen.AdyenAdapter)
    assert only == {"upi-in": "upi"}
    for given in ({"type": "upi_collect", "virtualPaymentAddress": "shopper@upi"}, None):
        token = base.PaymentMethodToken(adyen=given, return_url=harness.RETURN_URL)
        c = f"aw_{uuid.uuid4().hex[:12]}"
        result = await built.authorize(
            checkout_id=c, amount=900, currency="INR", method="upi", key=f"{c}:a", token=token
        )
        assert result.outcome == "pending", result  # the payer approves in the UPI app
    assert problems == []


async def test_the_description_catches_what_adyen_refuses() -> None:
    """The check can fail: the request this adapter used to send (no returnUrl, no payment
    method data) does not validate."""
    old = {
        "merchantAccount": ACCOUNT,
        "amount": {"value": 100, "currency": "EUR"},
        "reference": "x",
        "paymentMethod": {"type": "scheme"},
    }
    assert any("returnUrl" in e for e in errors(CHECKOUT, "PaymentRequest", old))


async def test_704_is_in_progress_and_a_modification_without_the_webhook_stays_pending(
    wire: tuple[adyen.AdyenAdapter, list[str]], sim: harness.Sim
) -> None:
    adapter, problems = wire
    token = base.PaymentMethodToken(adyen=harness.TOKEN["adyen"], return_url=harness.RETURN_URL)
    c = f"aw_{uuid.uuid4().hex[:12]}"
    sim.faults({"kind": "latency", "provider": "adyen", "operation": "authorize", "latencyMs": 600})
    first = asyncio.create_task(
        adapter.authorize(
            checkout_id=c, amount=100, currency="EUR", method="card", key=f"{c}:a", token=token
        )
    )
    await asyncio.sleep(0.2)
    with pytest.raises(base.PSPInProgress):
        await adapter.authorize(
            checkout_id=c, amount=100, currency="EUR", method="card", key=f"{c}:a", token=token
        )
    assert (await first).outcome == "approved"
    assert problems == []


async def test_details_after_3ds_match_the_description(
    wire: tuple[adyen.AdyenAdapter, list[str]], sim: harness.Sim
) -> None:
    """RedirectShopper -> the shopper's redirectResult -> POST /payments/details: Authorised,
    request and answer both valid against PaymentDetailsRequest / PaymentDetailsResponse."""
    adapter, problems = wire
    token = base.PaymentMethodToken(adyen=harness.TOKEN["adyen"], return_url=harness.RETURN_URL)
    c = f"aw_{uuid.uuid4().hex[:12]}"
    sim.faults({"kind": "three_ds", "provider": "adyen", "count": 1})
    sim.admin("POST", "settings", {"autoCompleteMs": -1})
    try:
        auth = await adapter.authorize(
            checkout_id=c, amount=300, currency="EUR", method="card", key=f"{c}:a", token=token
        )
        assert (auth.outcome, auth.reason) == ("pending", "RedirectShopper")
        assert auth.action is not None
        assert auth.action["type"] == "redirect"
        assert auth.psp_reference is not None
        back = sim.admin("POST", f"shopper/{auth.psp_reference}/complete", {})
        result = await adapter.complete_action(
            psp_reference=auth.psp_reference,
            details={"redirectResult": back["redirectResult"]},
            key=f"{c}:d",
        )
        assert (result.outcome, result.psp_reference) == ("approved", auth.psp_reference)
        forged = await adapter.complete_action(
            psp_reference=auth.psp_reference, details={"redirectResult": "forged"}, key=f"{c}:x"
        )
        assert forged.outcome == "rejected"
    finally:
        sim.admin("POST", "settings", {"autoCompleteMs": 5})
    assert problems == []
