"""Properties of the renderer (hypothesis): deterministic, order-independent, no two objects
with the same identity; and the YAML emitter reads back to the same data."""

from __future__ import annotations

import random
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fleetgen
from checkout_operator.api import fleet, load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.render import region, stream

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], bool]:
    regions = draw(st.integers(min_value=1, max_value=7))
    routes = draw(st.integers(min_value=0, max_value=8))
    local = draw(st.booleans())
    docs = fleetgen.fleet_docs(regions, routes, local=local)
    for doc in docs:
        spec = doc["spec"]
        if doc["kind"] == "CheckoutRegion":
            spec["replication"]["mode"] = draw(st.sampled_from(["Strimzi", "Standalone"]))
            spec["services"]["cart"] = {"autoscaling": {"enabled": draw(st.booleans())}}
        else:
            spec["priority"] = draw(st.integers(min_value=0, max_value=3))
            spec["strategy"] = draw(st.sampled_from(["priority", "weighted"]))
    return docs, local


def _render(docs: list[dict[str, Any]]) -> str:
    objs = [load.parse(d) for d in docs]
    assert fleet.validate([fleet.Located("x", o) for o in objs]) == []
    regions = [o for o in objs if isinstance(o, CheckoutRegion)]
    routes = [o for o in objs if isinstance(o, PSPRoute)]
    return stream.dump_all(region.render_fleet(regions, routes))


@SETTINGS
@given(fleets(), st.randoms(use_true_random=False))
def test_render_is_deterministic_and_input_order_does_not_matter(
    generated: tuple[list[dict[str, Any]], bool], rnd: random.Random
) -> None:
    docs, _ = generated
    first = _render(docs)
    assert _render(docs) == first
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    assert _render(shuffled) == first


@SETTINGS
@given(fleets())
def test_no_two_objects_share_an_identity(generated: tuple[list[dict[str, Any]], bool]) -> None:
    docs, local = generated
    objects = list(yaml.safe_load_all(_render(docs)))
    per_region = [
        (
            o["metadata"]["labels"]["checkout-operator.io/region"],
            o["kind"],
            o["metadata"]["namespace"],
            o["metadata"]["name"],
        )
        for o in objects
    ]
    assert len(set(per_region)) == len(per_region)
    if local:  # all regions in one cluster: kind/namespace/name alone must be unique
        plain = [key[1:] for key in per_region]
        assert len(set(plain)) == len(plain)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_yaml_emitter_round_trips(value: Any) -> None:
    assert yaml.safe_load(stream.dump(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_yaml_emitter_round_trips_any_string_and_key(text: str) -> None:
    assert yaml.safe_load(stream.dump({text: text, "list": [text]})) == {text: text, "list": [text]}


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aZ09_./:@+-, ()'\"=<>!?;*&%$`#\\ \t", max_size=12))
def test_yaml_emitter_round_trips_punctuation(text: str) -> None:
    assert yaml.safe_load(stream.dump({text: [text]})) == {text: [text]}
