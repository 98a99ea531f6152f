"""Adyen's answers to the local payment methods it documents (Checkout API v71): none of them is
authorised on the spot; the shopper acts first, and the AUTHORISATION notification decides.

================  ==================  ==========================================
paymentMethod     resultCode          action
================  ==================  ==========================================
ideal             RedirectShopper     ``redirect`` to the shopper's bank
pix               PresentToShopper    ``qrCode`` (the Pix copy-and-paste code)
upi_qr            PresentToShopper    ``qrCode`` the payer scans in a UPI app
upi_collect       Pending             ``await``: the collect request waits in the
                                      payer's UPI app (the VPA they gave)
upi_intent        RedirectShopper     ``redirect`` into the payer's UPI app
================  ==================  ==========================================
"""

from __future__ import annotations

import secrets
from typing import Any

JsonDict = dict[str, Any]

BASE = "https://checkoutshopper-test.adyen.test"


def answer(method: str, psp_reference: str) -> JsonDict | None:
    """``resultCode`` and ``action`` for a local method, None for anything else (cards)."""
    if method in ("ideal", "upi_intent"):
        action: JsonDict = {
            "type": "redirect",
            "paymentMethodType": method,
            "method": "GET",
            "url": f"{BASE}/{method}/{psp_reference}",
        }
        return {"resultCode": "RedirectShopper", "action": action}
    if method in ("pix", "upi_qr"):
        action = {
            "type": "qrCode",
            "paymentMethodType": method,
            "qrCodeData": f"{method}:{psp_reference}:{secrets.token_hex(8)}",
            "url": f"{BASE}/qr/{psp_reference}",
        }
        return {"resultCode": "PresentToShopper", "action": action}
    if method == "upi_collect":
        action = {
            "type": "await",
            "paymentMethodType": method,
            "url": f"{BASE}/await/{psp_reference}",
        }
        return {"resultCode": "Pending", "action": action}
    return None
