"""How a region's services reach the market write Leases (:mod:`checkout_contract.lease`).

The Leases live in the namespace of the fleet's CheckoutRegions on the management cluster. The
services that write or route writes (:data:`COMPONENTS`) get ``CHECKOUT_LEASE_NAMESPACE`` (that
namespace) and a credential:

* a region whose children run in the management cluster (no ``spec.remoteCluster``) uses its
  components' ServiceAccount tokens, with namespaced Roles + RoleBindings granting exactly
  what each service does:

  - the writers (:data:`WRITERS`: inventory, orders, payments; :func:`role`,
    :func:`role_binding`): ``list`` and ``watch`` the namespace's Leases (a list cannot be
    limited by name), ``get`` and ``patch`` only the fleet's market Leases by name (renew,
    acknowledge fencing: compare-and-swap merge patches carrying the resourceVersion read).
    No ``create``, ``update`` or ``delete``: the operator creates the Leases, and every change
    is a patch (the operator itself holds no ``update``, and RBAC lets it grant only what it
    holds).
  - the gateway (:data:`READERS`; :func:`reader_role`, :func:`reader_role_binding`), the one
    internet-facing service, only reads who holds a market: ``list`` and ``watch`` (it lists
    once and then follows the renewals; polling the list twice a second per gateway was most
    of an idle fleet's apiserver requests). A compromised gateway can then never renew, take
    or fence a market's write Lease.
* a remote region uses a kubeconfig for the management cluster from the Secret key
  ``spec.remoteCluster.leaseKubeconfigSecretRef`` in its own namespace, mounted read-only and
  named by ``CHECKOUT_LEASE_KUBECONFIG``. Its identity's permissions on the management cluster
  are the same Role's, granted by whoever issued the kubeconfig.
* a remote region without that reference gets no lease env: its services follow the fleet
  routing ConfigMap alone (and say so at startup).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from checkout_contract import env, lease
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import hashing, labels

COMPONENTS: Final = ("gateway", "inventory", "orders", "payments")
WRITERS: Final = ("inventory", "orders", "payments")
"""Keep (renew, acknowledge) the market write Leases: get and patch them."""
READERS: Final = ("gateway",)
"""Only read who holds each market's write Lease (the gateway routes writes by it)."""
COMPONENT: Final = "leases"
"""The component label of the writers' Role and RoleBinding (named ``checkout-leases``)."""
READER_COMPONENT: Final = "leases-read"
"""The component label of the readers' Role and RoleBinding (``checkout-leases-read``)."""
READER_VERBS: Final = ("list", "watch")
KUBECONFIG_VOLUME: Final = "lease-kubeconfig"
KUBECONFIG_DIR: Final = "/etc/checkout/lease-store"


@dataclass(frozen=True)
class Access:
    namespace: str
    """Where the Leases are: the CheckoutRegion's namespace."""
    kubeconfig_secret: str | None = None
    kubeconfig_key: str | None = None
    """Set for a remote region: the Secret (in the children's namespace) and its key."""

    @property
    def in_cluster(self) -> bool:
        return self.kubeconfig_secret is None


def for_region(region: CheckoutRegion) -> Access | None:
    """The lease access of ``region``'s services, or None (routing ConfigMap only)."""
    cr_namespace = region.metadata.namespace
    remote = region.spec.remote_cluster
    if remote is None:
        return Access(namespace=cr_namespace)
    ref = remote.lease_kubeconfig_secret_ref
    if ref is None:
        return None
    return Access(namespace=cr_namespace, kubeconfig_secret=ref.name, kubeconfig_key=ref.key)


def wire(access: Access, container: dict[str, Any]) -> list[dict[str, Any]]:
    """Add the lease env (and the kubeconfig mount) to ``container``; return extra volumes."""
    container["env"].append({"name": env.LEASE_NAMESPACE, "value": access.namespace})
    if access.in_cluster:
        return []
    assert access.kubeconfig_secret is not None
    assert access.kubeconfig_key is not None
    container["env"].append(
        {"name": env.LEASE_KUBECONFIG, "value": f"{KUBECONFIG_DIR}/{access.kubeconfig_key}"}
    )
    container["volumeMounts"].append(
        {"name": KUBECONFIG_VOLUME, "mountPath": KUBECONFIG_DIR, "readOnly": True}
    )
    return [
        {
            "name": KUBECONFIG_VOLUME,
            "secret": {
                "secretName": access.kubeconfig_secret,
                "items": [{"key": access.kubeconfig_key, "path": access.kubeconfig_key}],
            },
        }
    ]


def _role(
    region: str, namespace: str, component: str, rules: list[dict[str, Any]]
) -> hashing.KubeObject:
    return hashing.with_spec_hash(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": labels.metadata(labels.child_name(component), namespace, region, component),
            "rules": rules,
        }
    )


def _binding(
    region: str, namespace: str, component: str, subjects: Iterable[str]
) -> hashing.KubeObject:
    name = labels.child_name(component)
    return hashing.with_spec_hash(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": labels.metadata(name, namespace, region, component),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [
                {"kind": "ServiceAccount", "name": labels.child_name(c), "namespace": namespace}
                for c in subjects
            ],
        }
    )


def role(region: str, namespace: str, fleet: str, markets: Iterable[str]) -> hashing.KubeObject:
    """The writers' Role: list/watch the Leases, get/patch the fleet's market Leases."""
    names = sorted({lease.lease_name(fleet, m) for m in markets})
    group = lease.API_VERSION.split("/", 1)[0]
    rules: list[dict[str, Any]] = [
        {"apiGroups": [group], "resources": ["leases"], "verbs": ["list", "watch"]},
    ]
    if names:
        rules.append(
            {
                "apiGroups": [group],
                "resources": ["leases"],
                "resourceNames": names,
                "verbs": ["get", "patch"],
            }
        )
    return _role(region, namespace, COMPONENT, rules)


def role_binding(region: str, namespace: str) -> hashing.KubeObject:
    return _binding(region, namespace, COMPONENT, WRITERS)


def reader_role(region: str, namespace: str) -> hashing.KubeObject:
    """The gateway's Role: read-only (``list``) on the namespace's Leases."""
    group = lease.API_VERSION.split("/", 1)[0]
    rule = {"apiGroups": [group], "resources": ["leases"], "verbs": list(READER_VERBS)}
    return _role(region, namespace, READER_COMPONENT, [rule])


def reader_role_binding(region: str, namespace: str) -> hashing.KubeObject:
    return _binding(region, namespace, READER_COMPONENT, READERS)
