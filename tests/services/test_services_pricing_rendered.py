"""The pricing service runs on the file the operator renders from ``spec.pricing``
(ConfigMap ``checkout-pricing``), and follows an edit of it without a restart."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import services_harness as h
import yaml

from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import configmaps
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "regions" / "eu-west-1.yaml"


def example_doc() -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(doc, dict)
    return doc


def render_pricing(doc: dict[str, Any], path: Path) -> None:
    region = load.parse(doc)
    assert isinstance(region, CheckoutRegion)
    data = configmaps.pricing_configmap(region, "checkout")["data"]
    # like the kubelet: the new file appears whole (rename), with a newer mtime
    tmp = path.with_suffix(".tmp")
    tmp.write_text(data["pricing.json"])
    tmp.replace(path)
    stamp = time.time() + 2
    os.utime(path, (stamp, stamp))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pricing-rendered")


@pytest.fixture(scope="module")
def pricing(redis: Redis, workdir: Path) -> Iterator[h.ServiceProc]:
    cfg = workdir / "pricing.json"
    render_pricing(example_doc(), cfg)
    env = {
        **h.write_configs(workdir),
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/3",
        "PRICING_CONFIG_FILE": str(cfg),
    }
    proc = h.ServiceProc("pricing", workdir, env).start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_quotes_from_the_rendered_config_and_follows_a_flag_flip(
    pricing: h.ServiceProc, workdir: Path
) -> None:
    body = {
        "country": "NL",
        "currency": "EUR",
        "lines": [{"sku": "tee", "quantity": 2}, {"sku": "mug", "quantity": 1}],
        "promo_code": "WELCOME10",
    }
    async with httpx.AsyncClient(base_url=pricing.url, timeout=30) as client:
        resp = await client.post("/v1/quotes", json=body)
        assert resp.status_code == 201, resp.text
        q = resp.json()
        assert q["subtotal"] == 2 * 1999 + 1250 == 5248
        assert q["discount"] == 525  # WELCOME10: 10 % of 5248 = 524.8 -> 525
        assert q["shipping"]["amount"] == 495  # NL standard, the first option
        assert q["total"] == 5248 - 525 + 495 == 5218
        # NL VAT 21 % included: 5218 / 1.21 = 4312.40 -> 4312, so 906 of it is VAT
        assert q["tax"] == {"kind": "VAT", "rate_bp": 2100, "inclusive": True, "amount": 906}
        assert [o["id"] for o in q["shipping_options"]] == ["standard", "express"]

        fiveoff = {**body, "promo_code": "FIVEOFF"}
        off = (await client.post("/v1/quotes", json=fiveoff)).json()
        assert off["discount"] == 0  # its flag is off in the example
        assert off["promo_applied"] is None

        # an SRE flips the flag in the CR; the operator re-renders the ConfigMap; the running
        # service picks it up (no restart)
        doc = copy.deepcopy(example_doc())
        for flag in doc["spec"]["pricing"]["flags"]:
            if flag["name"] == "promo.fiveoff":
                flag["enabled"] = True
        render_pricing(doc, workdir / "pricing.json")
        on = (await client.post("/v1/quotes", json=fiveoff)).json()
        assert on["discount"] == 500
        assert on["promo_applied"] == "FIVEOFF"

        # a country the CR has no tax rule for is refused, naming the field
        unknown = await client.post("/v1/quotes", json={**body, "country": "DE"})
        assert h.assert_problem(unknown, 422)["field"] == "country"
