"""Ids for tests that send them to a service: a random id the card-number filter can never
refuse (:func:`checkout_services.common.ids.new`, at most ten digits in a row).

``uuid4().hex[:16]`` holds a Luhn-valid 13-to-19-digit run starting 2-6 about once in ten
thousand, and the services rightly answer 422 ``card-number-refused`` to a path or body holding
one: a CI run once failed on ``co_<16 hex>`` sent as a checkout id. Every id a test sends to a
service (path, body, ``Idempotency-Key``) comes from here.
"""

from __future__ import annotations

from checkout_services.common import ids


def ref(prefix: str = "", n: int = 16) -> str:
    """``prefix`` and ``n`` (at most 32) random hex characters that hold no card-like number."""
    if not 1 <= n <= 32:
        raise ValueError(f"n must be 1-32, not {n}")
    return prefix + ids.new()[:n]
