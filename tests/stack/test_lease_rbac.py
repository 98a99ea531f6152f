"""The rendered lease RBAC on the real apiserver (issue 18 #5): the internet-facing gateway may
only read the market write Leases; the lease writers may patch only the fleet's market Leases.

The objects are the operator's own render of a local example region, applied as they are;
the apiserver's authorizer answers (SubjectAccessReview through ``kubectl auth can-i --as``),
and a real PATCH as the gateway's ServiceAccount is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from checkout_contract import lease
from checkout_operator.reconcile import desired

from . import operator_support as sup

pytestmark = pytest.mark.stack

RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")


@pytest.fixture
def rendered(kube: Any) -> Iterator[tuple[str, str]]:
    """(namespace, the name of one market write Lease) with the region's rendered RBAC."""
    ns = sup.unique("lease-rbac")
    kube.kubectl("create", "namespace", ns)
    body = sup.local_region(ns)
    objects = [o for o in desired.render(body, [], [body]).objects if o["kind"] in RBAC_KINDS]
    assert {o["kind"] for o in objects} == set(RBAC_KINDS)
    kube.kubectl("apply", "-f", "-", input=json.dumps({"kind": "List", "apiVersion": "v1",
                                                        "items": objects}))  # fmt: skip
    market = body["spec"]["homeMarkets"][0]["country"]
    name = lease.lease_name(body["spec"]["fleet"], market)
    sup.apply_yaml(
        kube,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"holderIdentity": "ap-south-1", "leaseDurationSeconds": 15},
        },
    )
    try:
        yield ns, name
    finally:
        sup.delete_namespace(kube, ns)


def can(kube: Any, ns: str, sa: str, verb: str, what: str) -> bool:
    done = kube.kubectl(
        "auth", "can-i", verb, what, "-n", ns, f"--as=system:serviceaccount:{ns}:{sa}",
        check=False,
    )  # fmt: skip
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), done.stderr
    return answer == "yes"


def test_the_gateway_reads_the_leases_and_cannot_patch_one(
    kube: Any, rendered: tuple[str, str]
) -> None:
    ns, name = rendered
    gateway = "checkout-gateway"
    assert can(kube, ns, gateway, "list", "leases.coordination.k8s.io")
    for verb in ("patch", "update", "create", "delete", "deletecollection"):
        assert not can(kube, ns, gateway, verb, f"leases.coordination.k8s.io/{name}"), verb
    refused = kube.kubectl(
        "patch", "lease", name, "-n", ns, "--type=merge",
        "-p", '{"spec":{"holderIdentity":"attacker"}}',
        f"--as=system:serviceaccount:{ns}:{gateway}", check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower(), refused.stderr
    assert sup.get(kube, "-n", ns, "lease", name)["spec"]["holderIdentity"] == "ap-south-1"


def test_the_lease_writers_patch_only_the_fleets_market_leases(
    kube: Any, rendered: tuple[str, str]
) -> None:
    ns, name = rendered
    for writer in ("checkout-orders", "checkout-inventory", "checkout-payments"):
        assert can(kube, ns, writer, "patch", f"leases.coordination.k8s.io/{name}"), writer
        assert can(kube, ns, writer, "watch", "leases.coordination.k8s.io"), writer
        for verb in ("update", "create", "delete"):
            assert not can(kube, ns, writer, verb, f"leases.coordination.k8s.io/{name}"), verb
        # not another Lease of the namespace (e.g. a leader-election Lease)
        assert not can(kube, ns, writer, "patch", "leases.coordination.k8s.io/other-leader")
    # the read-only services hold no Lease right at all
    for reader in ("checkout-cart", "checkout-pricing"):
        assert not can(kube, ns, reader, "list", "leases.coordination.k8s.io"), reader
    patched = kube.kubectl(
        "patch", "lease", name, "-n", ns, "--type=merge",
        "-p", '{"spec":{"holderIdentity":"ap-south-1","leaseDurationSeconds":16}}',
        f"--as=system:serviceaccount:{ns}:checkout-orders", check=False,
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
