"""Stripe's local payment methods as Stripe runs them: iDEAL, Pix and UPI PaymentIntents.

Created with ``payment_method_data[type]`` and ``confirm=true``, they capture on confirmation
(no ``capture_method=manual``): the intent answers ``requires_action`` with the ``next_action``
Stripe documents for the method (shapes from the OpenAPI description inside stripe-mock):

- ``ideal``: ``redirect_to_url`` (``url``, ``return_url``) - the shopper's bank; a
  ``return_url`` is required to confirm;
- ``pix``: ``pix_display_qr_code`` (``data``, ``expires_at``, ``hosted_instructions_url``,
  ``image_url_png``, ``image_url_svg``);
- ``upi``: ``upi_handle_redirect_or_display_qr_code`` (``hosted_instructions_url``,
  ``qr_code``: ``expires_at``, ``image_url_png``, ``image_url_svg``).

The payer completes in their bank or app after ``autoCompleteMs``: the intent is ``succeeded``
and Stripe sends ``payment_intent.succeeded``. Each method takes one currency (iDEAL EUR, Pix
BRL, UPI INR); another is refused as Stripe refuses it.
"""

from __future__ import annotations

from typing import Final

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim.core import JsonDict

CURRENCIES: Final = {"ideal": "eur", "pix": "brl", "upi": "inr"}
METHODS: Final = frozenset(CURRENCIES)
QR_TTL_S: Final = 3600


def refusal(method: str, currency: str, return_url: str | None) -> tuple[str, str] | None:
    """(param, message) when Stripe would refuse to confirm this intent, else None."""
    if currency != CURRENCIES[method]:
        return (
            "payment_method_types",
            f"The currency provided ({currency}) is invalid for {method}, which only supports "
            f"{CURRENCIES[method]}.",
        )
    if method == "ideal" and not return_url:
        return "return_url", "A return_url is required to confirm an ideal PaymentIntent."
    return None


def next_action(p: st.Payment, return_url: str | None, now: float) -> JsonDict:
    base = f"https://payments.stripe.test/{p.method}/{p.id}"
    expires = int(now) + QR_TTL_S
    if p.method == "ideal":
        return {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": f"{base}/authorize", "return_url": return_url},
        }
    if p.method == "pix":
        return {
            "type": "pix_display_qr_code",
            "pix_display_qr_code": {
                "data": f"00020126580014br.gov.bcb.pix0136{p.id}",
                "expires_at": expires,
                "hosted_instructions_url": f"{base}/instructions",
                "image_url_png": f"{base}/qr.png",
                "image_url_svg": f"{base}/qr.svg",
            },
        }
    return {
        "type": "upi_handle_redirect_or_display_qr_code",
        "upi_handle_redirect_or_display_qr_code": {
            "hosted_instructions_url": f"{base}/instructions",
            "qr_code": {
                "expires_at": expires,
                "image_url_png": f"{base}/qr.png",
                "image_url_svg": f"{base}/qr.svg",
            },
        },
    }
