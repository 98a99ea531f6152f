"""Expected labels shared by the builder tests."""

from __future__ import annotations

from typing import Any

from checkout_operator.render import hashing

LABELS = {
    "app.kubernetes.io/name": "checkout-cart",
    "app.kubernetes.io/instance": "checkout-cart-eu-west-1",
    "app.kubernetes.io/component": "cart",
    "app.kubernetes.io/part-of": "checkout",
    "app.kubernetes.io/managed-by": "checkout-operator",
    "checkout-operator.io/region": "eu-west-1",
}
SELECTOR = {
    "app.kubernetes.io/name": "checkout-cart",
    "app.kubernetes.io/instance": "checkout-cart-eu-west-1",
}
META = {"name": "checkout-cart", "namespace": "shop", "labels": LABELS}


def hashed(obj: dict[str, Any]) -> dict[str, Any]:
    return hashing.with_spec_hash(obj)
