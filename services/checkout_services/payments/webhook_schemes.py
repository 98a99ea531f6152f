"""Each provider's webhook signature and body, read into one event shape.

- Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``, each v1 an HMAC-SHA256 of
  ``"<t>.<raw body>"`` with the endpoint's secret; ``t`` within 300 s of now. During a secret
  rotation Stripe signs with every active secret (several v1), and we accept any of our active
  secrets (the credentials file may list several, one a line). Body: an Event whose
  ``data.object`` is the PaymentIntent (``payment_intent.*``) or the Refund (``refund.*``).
- Adyen: a NotificationRequest (``notificationItems[].NotificationRequestItem``); each item
  carries ``additionalData.hmacSignature`` = base64 HMAC-SHA256, with the hex-decoded HMAC key,
  of ``pspReference:originalReference:merchantAccountCode:merchantReference:amount.value:
  amount.currency:eventCode:success`` (empty string for a missing field).
- upi / ideal / pix (the simulator's own local-method dialect): ``Sim-Signature``, same scheme as
  Stripe's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from checkout_services.common import principal
from checkout_services.payments import exceptions

TOLERANCE_SECONDS = 300
Kind = Literal[
    "authorized",
    "declined",
    "captured",
    "capture_failed",
    "voided",
    "void_failed",
    "refunded",
    "refund_failed",
]


@dataclass(frozen=True)
class Event:
    event_id: str
    kind: Kind | None
    """None: an event we do not act on (acknowledged, not applied)."""
    reference: str
    """Our checkout id (Stripe metadata.checkout_id, Adyen merchantReference)."""
    psp_reference: str
    """The payment's reference at the provider (PaymentIntent id, Adyen original pspReference)."""
    amount: int | None = None
    account: str | None = None
    """The merchant account the event is about, when the body says (Adyen)."""
    modification: str | None = None
    """A capture/refund's own id at the provider (Adyen's pspReference of the modification,
    the Stripe Refund id): tells apart two refunds of one payment."""


def verify_timestamped(
    secrets: Sequence[str], header: str, body: bytes, *, now: float | None = None
) -> None:
    """Stripe's scheme (also the simulator's): raises unless one v1 matches one secret."""
    ts_text: str | None = None
    given: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            ts_text = value
        elif name == "v1":
            given.append(value)
    try:
        ts = int(ts_text or "")
    except ValueError:
        raise exceptions.WebhookSignatureInvalid("malformed signature header") from None
    if not given:
        raise exceptions.WebhookSignatureInvalid("no v1 signature in the header")
    if abs((now if now is not None else time.time()) - ts) > TOLERANCE_SECONDS:
        raise exceptions.WebhookSignatureInvalid("signature timestamp outside the tolerance")
    signed = f"{ts}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(principal.same_secret(expected, sig) for sig in given):  # non-ASCII: no 500
            return
    raise exceptions.WebhookSignatureInvalid("signature does not match")


def adyen_signing_string(item: Mapping[str, Any]) -> str:
    amount = item.get("amount") or {}
    fields = (
        item.get("pspReference"),
        item.get("originalReference"),
        item.get("merchantAccountCode"),
        item.get("merchantReference"),
        amount.get("value"),
        amount.get("currency"),
        item.get("eventCode"),
        item.get("success"),
    )
    return ":".join("" if f is None else str(f) for f in fields)


def adyen_signature(hex_key: str, item: Mapping[str, Any]) -> str:
    try:
        key = binascii.unhexlify(hex_key)
    except (binascii.Error, ValueError):
        raise exceptions.WebhookSignatureInvalid("the HMAC key is not hex") from None
    mac = hmac.new(key, adyen_signing_string(item).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify_adyen_item(hex_keys: Sequence[str], item: Mapping[str, Any]) -> None:
    given = str((item.get("additionalData") or {}).get("hmacSignature") or "")
    if not given:
        raise exceptions.WebhookSignatureInvalid("notification item has no hmacSignature")
    for key in hex_keys:
        if principal.same_secret(adyen_signature(key, item), given):
            return
    raise exceptions.WebhookSignatureInvalid("notification item signature does not match")


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise exceptions.PaymentsError("webhook body is not JSON") from None
    if not isinstance(parsed, dict):
        raise exceptions.PaymentsError("webhook body is not a JSON object")
    return parsed


STRIPE_INTENT_EVENTS: dict[str, Kind] = {
    "payment_intent.amount_capturable_updated": "authorized",
    "payment_intent.succeeded": "captured",
    "payment_intent.payment_failed": "declined",
    "payment_intent.canceled": "voided",
}

STRIPE_REFUND_STATUS: dict[str, Kind] = {
    "succeeded": "refunded",
    "failed": "refund_failed",
    "canceled": "refund_failed",
}


def stripe_events(body: bytes) -> list[Event]:
    event = _json(body)
    try:
        event_id, event_type = str(event["id"]), str(event["type"])
        obj = event["data"]["object"]
    except (KeyError, TypeError):
        raise exceptions.PaymentsError("webhook body is not a Stripe event") from None
    if not isinstance(obj, dict):
        raise exceptions.PaymentsError("webhook body is not a Stripe event")
    if obj.get("object") == "refund":
        # refund.created / refund.updated / refund.failed: the Refund's status decides
        # (pending and requires_action are not verdicts yet).
        kind = STRIPE_REFUND_STATUS.get(str(obj.get("status")))
        meta = obj.get("metadata") or {}
        return [
            Event(
                f"{event_id}",
                kind,
                str(meta.get("checkout_id", "")),
                str(obj.get("payment_intent", "")),
                int(obj.get("amount") or 0),
                modification=str(obj["id"]) if obj.get("id") else None,
            )
        ]
    meta = obj.get("metadata") or {}
    kind = STRIPE_INTENT_EVENTS.get(event_type)
    amount = obj.get("amount_received") if kind == "captured" else None
    return [
        Event(
            event_id,
            kind,
            str(meta.get("checkout_id", "")),
            str(obj.get("id", "")),
            int(amount) if amount else None,
        )
    ]


ADYEN_EVENTS: dict[tuple[str, bool], Kind] = {
    ("AUTHORISATION", True): "authorized",
    ("AUTHORISATION", False): "declined",
    ("CAPTURE", True): "captured",
    ("CAPTURE", False): "capture_failed",
    ("CAPTURE_FAILED", True): "capture_failed",
    ("CANCELLATION", True): "voided",
    ("CANCELLATION", False): "void_failed",
    ("REFUND", True): "refunded",
    ("REFUND", False): "refund_failed",
    ("REFUND_FAILED", True): "refund_failed",
}


def adyen_events(body: bytes, hex_keys: Sequence[str]) -> list[Event]:
    """Every item verified first: one bad signature refuses the whole delivery."""
    request = _json(body)
    items = request.get("notificationItems")
    if not isinstance(items, list) or not items:
        raise exceptions.PaymentsError("webhook body is not an Adyen notification")
    events: list[Event] = []
    for wrapper in items:
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise exceptions.PaymentsError("notification item missing")
        verify_adyen_item(hex_keys, item)
        code = str(item.get("eventCode", ""))
        success = str(item.get("success", "")).lower() == "true"
        psp = str(item.get("pspReference", ""))
        original = item.get("originalReference")
        amount = (item.get("amount") or {}).get("value")
        events.append(
            Event(
                f"{code}:{psp}:{item.get('success')}",
                ADYEN_EVENTS.get((code, success)),
                str(item.get("merchantReference", "")),
                str(original) if original else psp,
                int(amount) if isinstance(amount, int) else None,
                str(item.get("merchantAccountCode", "")) or None,
                modification=psp if original else None,
            )
        )
    return events


LOCAL_EVENTS: dict[str, Kind] = {
    "payment.authorized": "authorized",
    "payment.declined": "declined",
    "payment.captured": "captured",
    "payment.voided": "voided",
}


def local_events(body: bytes) -> list[Event]:
    event = _json(body)
    try:
        data = event["data"]
        return [
            Event(
                str(event["id"]),
                LOCAL_EVENTS.get(str(event["type"])),
                str(data["reference"]),
                str(data["id"]),
            )
        ]
    except (KeyError, TypeError):
        raise exceptions.PaymentsError("webhook body is not a payment event") from None
