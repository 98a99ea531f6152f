"""What a CheckoutRegion reconcile works with: names, the shared Context, Desired, Result.

The API names and child kinds, where a region's children go (:class:`Desired`, read from the
render or, for cleanup, from the raw spec), the :class:`Context` every reconcile shares (client,
renderer, remote clients, locks, slots) and the :class:`Result` of one reconcile.
:mod:`.region` holds the reconcile itself and re-exports these names.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from checkout_kube import client as kclient
from checkout_operator.kube import remote as kremote
from checkout_operator.reconcile import index, plan
from checkout_operator.reconcile.slots import Slots

GROUP: Final = "checkout-operator.io"
API_VERSION: Final = "checkout-operator.io/v1alpha1"
REGION_KIND: Final = "CheckoutRegion"
ROUTE_KIND: Final = "PSPRoute"
REGION_LABEL: Final = "checkout-operator.io/region"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "checkout-operator"

KNOWN_CHILD_KINDS: Final[tuple[tuple[str, str], ...]] = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("kafka.strimzi.io/v1", "KafkaMirrorMaker2"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("externaldns.k8s.io/v1alpha1", "DNSEndpoint"),
)
"""Kinds the render can produce: listed (when the server serves them) to find what to prune."""

URGENT: Final = 0
"""Reconcile priority of a spec change (a new region, an edit, a PSPRoute change)."""
BACKGROUND: Final = 1
"""Reconcile priority of children's progress, fleet peers' routing and the periodic resync."""

Obj = dict[str, Any]


@dataclass(frozen=True)
class RemoteTarget:
    """The region's children go to another cluster, via a kubeconfig in a Secret."""

    secret_namespace: str
    secret_name: str
    secret_key: str


@dataclass(frozen=True)
class Desired:
    """The render of one region: its children and where they go."""

    region: str
    """The region's name (the value of the region label on its children)."""
    namespace: str
    """Namespace of the children (in the target cluster)."""
    objects: tuple[Obj, ...]
    remote: RemoteTarget | None = None
    mounted_kubeconfigs: tuple[tuple[str, str, str], ...] = ()
    """(Secret name, key, spec field) of kubeconfigs in the children's namespace that the
    children mount (the lease store's): policy-checked before anything is applied."""


Renderer = Callable[
    [Mapping[str, Any], Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]], Desired
]
"""(region body, the PSPRoutes selecting it, every CheckoutRegion of its namespace) -> Desired.

Pure; raises ``errors.InvalidSpec`` naming the field for a spec it cannot render."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Context:
    client: kclient.KubeClient
    renderer: Renderer
    remotes: kremote.RemoteClients | None = None
    known_kinds: tuple[tuple[str, str], ...] = KNOWN_CHILD_KINDS
    clock: Callable[[], datetime.datetime] = _utcnow
    locks: dict[index.Ref, asyncio.Lock] = field(default_factory=dict)
    max_concurrent: int | None = None
    """At most this many reconciles read and write at once (None: no bound). Fifty regions
    created together then finish a few at a time (their Deployments reach the cluster early,
    in parallel with the rest) instead of all of them together at the end."""
    slots: Slots | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.remotes is None:
            self.remotes = kremote.RemoteClients(self.client)
        if self.max_concurrent is not None:
            self.slots = Slots(self.max_concurrent)

    def lock(self, ref: index.Ref) -> asyncio.Lock:
        return self.locks.setdefault(ref, asyncio.Lock())

    def slot(self, priority: int = URGENT) -> contextlib.AbstractAsyncContextManager[None]:
        """One of the ``max_concurrent`` reconcile slots (a no-op without a bound)."""
        return self.slots.hold(priority) if self.slots is not None else contextlib.nullcontext()


@dataclass(frozen=True)
class Result:
    ref: index.Ref
    found: bool = True
    applied: tuple[str, ...] = ()
    """``Kind/name (reason)`` of each child applied: ``Deployment/x (drift: spec.replicas)``."""
    pruned: tuple[str, ...] = ()
    status_written: bool = False
    ready: bool = False
    error_reason: str = ""
    error_message: str = ""
    permanent: bool = False
    writes: int = 0
    """Write requests this reconcile sent (to every cluster)."""

    @property
    def retry(self) -> bool:
        return bool(self.error_reason) and not self.permanent


async def patch_region_status(
    client: kclient.KubeClient, body: Mapping[str, Any], new: Mapping[str, Any]
) -> None:
    """Merge-patch ``new`` into the status of the CheckoutRegion ``body`` (its name and
    namespace); a refusal raises the client's :class:`kerrors.KubeError`."""
    meta = body.get("metadata") or {}
    await client.patch_status(
        API_VERSION, REGION_KIND, str(meta["name"]), str(meta["namespace"]), dict(new)
    )


def placement_of(body: Mapping[str, Any]) -> Desired:
    """Where a region's children live, read from the raw spec (no objects): for cleanup, which
    must work even when the spec no longer renders."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    region = str(spec.get("region") or meta.get("name") or "")
    namespace = str(meta.get("namespace") or "")
    remote_spec = spec.get("remoteCluster")
    remote: RemoteTarget | None = None
    if isinstance(remote_spec, Mapping):
        ref = remote_spec.get("kubeconfigSecretRef") or {}
        remote = RemoteTarget(
            namespace, str(ref.get("name") or ""), str(ref.get("key") or kremote.KUBECONFIG_KEY)
        )
        namespace = str(remote_spec.get("namespace") or namespace)
    return Desired(region=region, namespace=namespace, objects=(), remote=remote)


def labels_for(region: str) -> dict[str, str]:
    return {REGION_LABEL: region, MANAGED_BY_LABEL: MANAGED_BY}


def owner_of(body: Mapping[str, Any]) -> plan.Owner:
    meta = body.get("metadata") or {}
    return plan.Owner(
        api_version=str(body.get("apiVersion") or API_VERSION),
        kind=str(body.get("kind") or REGION_KIND),
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        namespace=str(meta.get("namespace")),
    )


async def target_client(ctx: Context, desired: Desired) -> kclient.KubeClient:
    if desired.remote is None:
        return ctx.client
    assert ctx.remotes is not None
    r = desired.remote
    return await ctx.remotes.get(r.secret_namespace, r.secret_name, r.secret_key)
