"""Exact output of the PodDisruptionBudget builder."""

from __future__ import annotations

from render_expect import META, SELECTOR, hashed

from checkout_operator.render import pdb


def test_pdb() -> None:
    assert pdb.build("eu-west-1", "shop", "cart") == hashed(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": META,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}},
        }
    )
