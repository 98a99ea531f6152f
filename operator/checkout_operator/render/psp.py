"""Which PSPRoutes a region uses, in which order, and where their credentials are mounted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from checkout_contract import payments as payments_config
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute


def applies_to(route: PSPRoute, region: CheckoutRegion) -> bool:
    """A route applies to the regions of its namespace, all of them or the ones it lists."""
    if route.metadata.namespace != region.metadata.namespace:
        return False
    return not route.spec.regions or region.spec.region in route.spec.regions


def route_id(route: PSPRoute) -> str:
    return f"{route.metadata.namespace}/{route.metadata.name}"


def ordered(routes: Iterable[PSPRoute]) -> list[PSPRoute]:
    """Evaluation order: higher priority, then more specific match, then ``namespace/name``."""
    return sorted(
        routes, key=lambda r: (-r.spec.priority, -r.spec.match.specificity(), route_id(r))
    )


def routes_for(region: CheckoutRegion, routes: Iterable[PSPRoute]) -> list[PSPRoute]:
    return ordered(r for r in routes if applies_to(r, region))


def credentials_dir(secret_name: str) -> str:
    """Where the payments pods see a provider's credentials Secret (one directory per Secret)."""
    return f"{payments_config.CREDENTIALS_MOUNT_ROOT}/{secret_name}"


def credential_secrets(routes: Sequence[PSPRoute]) -> list[str]:
    """The credentials Secrets the payments Deployment mounts, sorted, each once."""
    return sorted({p.credentials_secret_ref.name for r in routes for p in r.spec.providers})
