"""Build the adapter for a provider type."""

from __future__ import annotations

import httpx

from checkout_services.payments.adapters import adyen, base, ideal, pix, stripe, upi

ADAPTERS: dict[str, type[base.HTTPAdapter]] = {
    "stripe": stripe.StripeAdapter,
    "adyen": adyen.AdyenAdapter,
    "upi": upi.UpiAdapter,
    "ideal": ideal.IdealAdapter,
    "pix": pix.PixAdapter,
}


def build(
    target: base.Target, credentials: base.Credentials, http: httpx.AsyncClient
) -> base.PSPAdapter:
    adapter: base.PSPAdapter = ADAPTERS[target.type](target, credentials, http)  # type: ignore[assignment]
    return adapter
