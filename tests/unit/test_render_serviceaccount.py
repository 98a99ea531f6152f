"""Exact output of the ServiceAccount builder."""

from __future__ import annotations

from render_expect import META, hashed

from checkout_operator.render import serviceaccount


def test_serviceaccount() -> None:
    assert serviceaccount.build("eu-west-1", "shop", "cart") == hashed(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": META,
            "automountServiceAccountToken": False,
        }
    )
