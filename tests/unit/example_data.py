"""Loading the examples in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
INVALID = ROOT / "tests" / "data" / "invalid"


def example_docs() -> dict[str, dict[str, Any]]:
    """``metadata.name`` -> document of every example CR."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out[doc["metadata"]["name"]] = doc
    return out


def example_objects() -> tuple[list[CheckoutRegion], list[PSPRoute]]:
    objs = [load.parse(d) for d in example_docs().values()]
    regions = [o for o in objs if isinstance(o, CheckoutRegion)]
    routes = [o for o in objs if isinstance(o, PSPRoute)]
    return regions, routes


def example_region(name: str) -> CheckoutRegion:
    obj = load.parse(example_docs()[name])
    assert isinstance(obj, CheckoutRegion)
    return obj


def example_route(name: str) -> PSPRoute:
    obj = load.parse(example_docs()[name])
    assert isinstance(obj, PSPRoute)
    return obj
