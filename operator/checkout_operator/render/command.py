"""What ``checkout-operator render`` and ``crds`` produce, as text (the CLI only prints it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from checkout_operator.api import crd
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.render import inputs, labels, region, stream


def render_paths(paths: Iterable[str], only: Sequence[str] = ()) -> str:
    """The whole desired state of the fleets in ``paths`` as one YAML stream; with ``only``,
    just those regions' objects (e.g. one Argo CD application per region's cluster).

    Raises :class:`inputs.InputError` (with every problem) if any input is invalid.
    """
    items = inputs.load_paths(paths)
    regions = [i.obj for i in items if isinstance(i.obj, CheckoutRegion)]
    routes = [i.obj for i in items if isinstance(i.obj, PSPRoute)]
    unknown = sorted(set(only) - {r.spec.region for r in regions})
    if unknown:
        raise inputs.InputError(
            [f"--region {name}: no such region in the input" for name in unknown]
        )
    objects = region.render_fleet(regions, routes)
    if only:
        objects = [o for o in objects if o["metadata"]["labels"][labels.REGION_LABEL] in only]
    return stream.dump_all(objects)


def crd_documents() -> dict[str, str]:
    """File name -> YAML text of each CRD."""
    return {name: stream.dump_all([doc]) for name, doc in sorted(crd.all_crds().items())}


def flows_paths(paths: Iterable[str], only: Sequence[str] = ()) -> str:
    """The replication flows of the fleets in ``paths`` as a table (``checkout-operator
    flows``); with ``only``, the flows into or out of those regions."""
    from checkout_operator.render import flows

    items = inputs.load_paths(paths)
    regions = [i.obj for i in items if isinstance(i.obj, CheckoutRegion)]
    unknown = sorted(set(only) - {r.spec.region for r in regions})
    if unknown:
        raise inputs.InputError(
            [f"--region {name}: no such region in the input" for name in unknown]
        )
    rows = flows.flow_rows(regions)
    if only:
        rows = [r for r in rows if r.source in only or r.target in only]
    return flows.table(rows)
