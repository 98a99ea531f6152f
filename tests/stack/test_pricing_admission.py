"""``spec.pricing`` at a real kube-apiserver: the example is admitted, and a duplicate SKU /
currency / country or a promotion whose flag is not listed is rejected at admission, naming
the field (list-map keys and a CEL rule in the generated CRD)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from checkout_stack.components.kube import ControlPlane

from . import operator_support as sup

pytestmark = pytest.mark.stack

Doc = dict[str, Any]


def _dup_sku(doc: Doc) -> None:
    doc["spec"]["pricing"]["catalog"][1]["sku"] = "tee"


def _dup_currency(doc: Doc) -> None:
    doc["spec"]["pricing"]["catalog"][0]["prices"].append({"currency": "EUR", "amount": 1})


def _dup_tax_country(doc: Doc) -> None:
    doc["spec"]["pricing"]["tax"][1]["country"] = "NL"


def _unknown_flag(doc: Doc) -> None:
    doc["spec"]["pricing"]["promotions"][0]["flag"] = "promo.nope"


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (_dup_sku, "spec.pricing.catalog[1]", "Duplicate value"),
        (_dup_currency, "spec.pricing.catalog[0].prices[1]", "Duplicate value"),
        (_dup_tax_country, "spec.pricing.tax[1]", "Duplicate value"),
        (_unknown_flag, "spec.pricing.promotions", "every promotion's flag must be listed"),
    ],
    ids=["sku-twice", "currency-twice", "tax-country-twice", "promotion-flag-unknown"],
)
def test_apiserver_rejects_bad_pricing_naming_the_field(
    kube: ControlPlane, mutate: Callable[[Doc], None], field: str, reason: str
) -> None:
    sup.install_crds(kube)
    good = sup.example("eu-west-1")
    good["metadata"]["namespace"] = "default"
    ok = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(good), check=False)
    assert ok.returncode == 0, ok.stderr
    bad = copy.deepcopy(good)
    mutate(bad)
    done = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False)
    assert done.returncode != 0
    assert field in done.stderr, done.stderr
    assert reason in done.stderr, done.stderr
