"""What ``checkout-operator render`` and ``crds`` produce, as text (the CLI only prints it)."""

from __future__ import annotations

from collections.abc import Iterable

from checkout_operator.api import crd
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.render import inputs, region, stream


def render_paths(paths: Iterable[str]) -> str:
    """The whole desired state of the fleets in ``paths`` as one YAML stream.

    Raises :class:`inputs.InputError` (with every problem) if any input is invalid.
    """
    items = inputs.load_paths(paths)
    regions = [i.obj for i in items if isinstance(i.obj, CheckoutRegion)]
    routes = [i.obj for i in items if isinstance(i.obj, PSPRoute)]
    return stream.dump_all(region.render_fleet(regions, routes))


def crd_documents() -> dict[str, str]:
    """File name -> YAML text of each CRD."""
    return {name: stream.dump_all([doc]) for name, doc in sorted(crd.all_crds().items())}
