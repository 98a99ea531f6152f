"""Which routes a region uses and in which order."""

from __future__ import annotations

import example_data as helpers

from checkout_operator.render import psp


def test_routes_for_region_in_priority_then_specificity_then_name_order() -> None:
    _, routes = helpers.example_objects()
    eu_west = helpers.example_region("eu-west-1")
    assert [psp.route_id(r) for r in psp.routes_for(eu_west, routes)] == [
        "checkout/nl-ideal",  # priority 200
        "checkout/eu-cards",  # priority 100, applies to every region of the namespace
    ]
    us_east = helpers.example_region("us-east-1")
    assert [psp.route_id(r) for r in psp.routes_for(us_east, routes)] == [
        "checkout/br-pix",  # 100, 3 match dimensions, name before us-cards
        "checkout/eu-cards",
        "checkout/us-cards",
    ]


def test_specificity_breaks_priority_ties() -> None:
    route = helpers.example_route("us-cards")
    general = route.model_copy(
        update={
            "metadata": route.metadata.model_copy(update={"name": "a-general"}),
            "spec": route.spec.model_copy(
                update={
                    "match": route.spec.match.model_copy(
                        update={"currencies": (), "payment_methods": ()}
                    )
                }
            ),
        }
    )
    assert [r.metadata.name for r in psp.ordered([general, route])] == ["us-cards", "a-general"]


def test_routes_of_another_namespace_never_apply() -> None:
    route = helpers.example_route("eu-cards")
    other = route.model_copy(
        update={"metadata": route.metadata.model_copy(update={"namespace": "other"})}
    )
    assert psp.routes_for(helpers.example_region("eu-west-1"), [other]) == []


def test_credentials_are_mounted_once_per_secret() -> None:
    _, routes = helpers.example_objects()
    region = helpers.example_region("eu-west-1")
    assert psp.credential_secrets(psp.routes_for(region, routes)) == [
        "psp-adyen-eu",
        "psp-ideal-nl",
        "psp-stripe-eu",
    ]
    assert psp.credentials_dir("psp-adyen-eu") == "/etc/checkout/psp-credentials/psp-adyen-eu"
