"""The renderer the reconciler uses: parse (api) -> cross-object rules (api.fleet) -> render.

Pure. A spec the CRD schema cannot reject (e.g. residency across regions) raises
``errors.InvalidSpec`` naming the field; nothing is rendered then, so nothing is applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from checkout_operator.api import fleet, load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.kube import remote as kremote
from checkout_operator.reconcile import errors, region
from checkout_operator.render import region as render_region


def _parse(body: Mapping[str, Any]) -> load.ApiObject:
    """Parse ``body``; a status this version cannot read does not make the spec invalid."""
    try:
        return load.parse(dict(body))
    except load.InvalidObject as exc:
        if body.get("status") and all(e.path.startswith("status") for e in exc.errors):
            return load.parse({k: v for k, v in body.items() if k != "status"})
        raise


def _invalid(exc: load.InvalidObject) -> errors.InvalidSpec:
    if not exc.errors:
        return errors.InvalidSpec("", str(exc))
    first, rest = exc.errors[0], exc.errors[1:]
    return errors.InvalidSpec(first.path, "; ".join([first.message, *(str(e) for e in rest)]))


def parse_region(body: Mapping[str, Any]) -> CheckoutRegion:
    try:
        obj = _parse(body)
    except load.InvalidObject as exc:
        raise _invalid(exc) from None
    if not isinstance(obj, CheckoutRegion):
        raise errors.InvalidSpec("kind", "expected a CheckoutRegion")
    return obj


def _parse_peers(bodies: Sequence[Mapping[str, Any]], kind: type[Any]) -> list[Any]:
    """The valid objects of ``bodies``; invalid ones report themselves in their own status."""
    out = []
    for body in bodies:
        try:
            obj = _parse(body)
        except load.InvalidObject:
            continue
        if isinstance(obj, kind):
            out.append(obj)
    return out


def render(
    body: Mapping[str, Any],
    routes: Sequence[Mapping[str, Any]],
    regions: Sequence[Mapping[str, Any]],
) -> region.Desired:
    """A ``region.Renderer``: the children of the CheckoutRegion ``body``."""
    me = parse_region(body)
    key = (me.metadata.namespace, me.metadata.name)
    peers: list[CheckoutRegion] = [
        r
        for r in _parse_peers(regions, CheckoutRegion)
        if (r.metadata.namespace, r.metadata.name) != key
    ]
    fleet_members = [me, *(p for p in peers if p.spec.fleet == me.spec.fleet)]
    psproutes: list[PSPRoute] = _parse_peers(routes, PSPRoute)
    problems = fleet.validate(
        [fleet.Located("self", me), *(fleet.Located("peer", p) for p in fleet_members[1:])]
    )
    mine = [p.error for p in problems if p.source == "self"]
    if mine:
        raise errors.InvalidSpec(
            mine[0].path, "; ".join([mine[0].message, *(str(e) for e in mine[1:])])
        )
    try:
        objects = render_region.render_region(me, fleet_members, psproutes)
    except render_region.RenderError as exc:
        raise errors.InvalidSpec("spec", str(exc)) from None
    remote = None
    mounted: tuple[tuple[str, str, str], ...] = ()
    if me.spec.remote_cluster is not None:
        ref = me.spec.remote_cluster.kubeconfig_secret_ref
        remote = region.RemoteTarget(me.metadata.namespace, ref.name, ref.key)
        lease_ref = me.spec.remote_cluster.lease_kubeconfig_secret_ref
        if lease_ref is not None:
            mounted = ((lease_ref.name, lease_ref.key, kremote.LEASE_FIELD),)
    return region.Desired(
        region=me.spec.region,
        namespace=me.spec.namespace_for(me.metadata.namespace),
        objects=tuple(objects),
        remote=remote,
        mounted_kubeconfigs=mounted,
    )
