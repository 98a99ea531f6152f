"""Rules that span objects: a fleet's regions must agree with each other (pure).

* region names are unique in a fleet, object names unique per kind and namespace;
* failover targets and replication peers exist in the fleet;
* residency: a failover target must be a jurisdiction every home market of the region allows
  (it would take the markets' writes and data); a market has one home region in a fleet (two
  would disagree on where its data may live). Replication peers may be in any jurisdiction: the
  rendered MirrorMaker 2 filters (``render.mirrormaker``) let only aggregates and the personal
  and payment topics of markets the pulling region may hold cross (``checkout-operator flows``);
* Identity replication keeps topic names, so it only works in one direction;
* a PSPRoute's ``regions`` exist in its namespace.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from checkout_operator.api import residency
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.load import ApiObject, FieldError
from checkout_operator.api.psproute import PSPRoute


@dataclass(frozen=True, slots=True)
class Located:
    """An API object and where it came from (a file, a document of a file, a cluster)."""

    source: str
    obj: ApiObject


@dataclass(frozen=True, slots=True, order=True)
class SourcedError:
    source: str
    error: FieldError

    def __str__(self) -> str:
        return f"{self.source}: {self.error}"


def placement(region: CheckoutRegion) -> tuple[str, str]:
    """(cluster, namespace) the region's children go to; no two regions may share one."""
    remote = region.spec.remote_cluster
    if remote is None:
        return ("the operator's cluster", region.metadata.namespace)
    ref = remote.kubeconfig_secret_ref
    cluster = f"the cluster of kubeconfig {region.metadata.namespace}/{ref.name}[{ref.key}]"
    return (cluster, remote.namespace)


def _residencies(region: CheckoutRegion) -> list[residency.MarketResidency]:
    spec = region.spec
    return [
        residency.market_residency(
            m.country, spec.region, spec.jurisdiction, m.allowed_jurisdictions
        )
        for m in spec.home_markets
    ]


def market_residencies(regions: Sequence[CheckoutRegion]) -> list[residency.MarketResidency]:
    """Every home market of ``regions`` (one fleet) with where its data may live, by market."""
    out = [r for region in regions for r in _residencies(region)]
    return sorted(out, key=lambda r: (r.market, r.home_region))


def _check_region(
    item: Located, members: dict[str, CheckoutRegion], errors: list[SourcedError]
) -> None:
    assert isinstance(item.obj, CheckoutRegion)
    spec = item.obj.spec

    def fail(path: str, message: str) -> None:
        errors.append(SourcedError(item.source, FieldError(path, message)))

    own = _residencies(item.obj)
    for index, market in enumerate(spec.home_markets):
        homes = sorted(
            r.spec.region
            for r in members.values()
            if r.spec.region != spec.region
            and any(m.country == market.country for m in r.spec.home_markets)
        )
        if homes:
            fail(
                f"spec.homeMarkets[{index}].country",
                f"market {market.country} is also a home market of {', '.join(homes)} in fleet "
                f"{spec.fleet}: a market has one home region (its residency and its writer)",
            )
    for index, target in enumerate(spec.failover.targets):
        path = f"spec.failover.targets[{index}]"
        other = members.get(target)
        if other is None:
            fail(path, f"region {target} is not in fleet {spec.fleet}")
            continue
        for bad in residency.violations(own, target, other.spec.jurisdiction):
            fail(path, residency.violation_message(target, other.spec.jurisdiction, bad))
    for index, peer in enumerate(spec.replication.peers):
        path = f"spec.replication.peers[{index}].region"
        other = members.get(peer.region)
        if other is None:
            fail(path, f"region {peer.region} is not in fleet {spec.fleet}")
            continue
        # A peer in another jurisdiction is fine: the rendered topic filters let only what this
        # region may hold cross (aggregates; personal/payment topics of allowed markets).
        pulls_back = any(p.region == spec.region for p in other.spec.replication.peers)
        if spec.replication.policy == "Identity" and pulls_back:
            fail(
                "spec.replication.policy",
                f"Identity replication keeps topic names and works in one direction only, "
                f"but {peer.region} also pulls from {spec.region}: use Default",
            )


def validate(items: Sequence[Located]) -> list[SourcedError]:
    """Every cross-object problem, sorted by source and path."""
    errors: list[SourcedError] = []
    seen: dict[tuple[str, str, str], str] = {}
    for item in items:
        key = (item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name)
        if key in seen:
            errors.append(
                SourcedError(
                    item.source,
                    FieldError(
                        "metadata.name", f"{key[0]} {key[1]}/{key[2]} is also in {seen[key]}"
                    ),
                )
            )
        seen.setdefault(key, item.source)
    fleets: dict[str, dict[str, CheckoutRegion]] = defaultdict(dict)
    namespaces: dict[str, set[str]] = defaultdict(set)
    placements: dict[tuple[str, str], str] = {}
    for item in items:
        if isinstance(item.obj, CheckoutRegion):
            spec = item.obj.spec
            where = placement(item.obj)
            if where in placements and placements[where] != spec.region:
                errors.append(
                    SourcedError(
                        item.source,
                        FieldError(
                            "spec.remoteCluster" if spec.remote_cluster else "metadata.namespace",
                            f"regions {placements[where]} and {spec.region} would both deploy "
                            f"into namespace {where[1]} of {where[0]}: give each region its "
                            "own namespace or cluster (spec.remoteCluster)",
                        ),
                    )
                )
            placements.setdefault(where, spec.region)
            if spec.region in fleets[spec.fleet]:
                errors.append(
                    SourcedError(
                        item.source,
                        FieldError(
                            "spec.region",
                            f"region {spec.region} appears twice in fleet {spec.fleet}",
                        ),
                    )
                )
            fleets[spec.fleet][spec.region] = item.obj
            namespaces[item.obj.metadata.namespace].add(spec.region)
    for item in items:
        if isinstance(item.obj, CheckoutRegion):
            _check_region(item, fleets[item.obj.spec.fleet], errors)
        elif isinstance(item.obj, PSPRoute):
            ns = item.obj.metadata.namespace
            known = namespaces[ns]
            for index, name in enumerate(item.obj.spec.regions):
                if name not in known:
                    errors.append(
                        SourcedError(
                            item.source,
                            FieldError(
                                f"spec.regions[{index}]",
                                f"no CheckoutRegion {name} in namespace {ns}",
                            ),
                        )
                    )
    return sorted(set(errors))
