"""One reconcile of one CheckoutRegion: render -> diff -> apply -> prune -> status.

All cluster I/O goes through ``checkout_kube``. A reconcile that finds nothing to do
makes reads only: zero write requests (no apply, no delete, no status patch, no event).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator import metrics
from checkout_operator.kube import remote as kremote
from checkout_operator.reconcile import errors, index, plan, status

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

logger = logging.getLogger("checkout_operator.reconcile")

Obj = dict[str, Any]
T = TypeVar("T")


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


class Slots:
    """At most ``limit`` holders at once; a waiter of a more urgent class (lower number) is
    admitted before any less urgent one, first come first served within a class.

    Reconciles for a spec change (a new region, an edit) go before those that only roll up
    children's progress, so that fifty new regions get their children applied first while
    the rollouts they start proceed in the cluster."""

    def __init__(self, limit: int, classes: int = 2) -> None:
        if limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.limit = limit
        self._free = limit
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = tuple(
            collections.deque() for _ in range(classes)
        )

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters)

    @contextlib.asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters[min(max(priority, 0), len(self._waiters) - 1)]
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            raise

    def _release(self) -> None:
        for queue in self._waiters:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)  # the slot passes straight to this waiter
                    return
        self._free += 1


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


async def _list_optional(
    client: kclient.KubeClient, api_version: str, kind: str, namespace: str | None
) -> list[Obj]:
    if not await client.serves(api_version, kind):
        return []
    return await client.list(api_version, kind, namespace)


async def _gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``aws`` concurrently; wait for all of them, then raise the first error if any."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def list_children(
    client: kclient.KubeClient,
    kinds: Sequence[tuple[str, str]],
    namespace: str,
    labels: Mapping[str, str],
) -> list[Obj]:
    """Live objects of ``kinds`` with ``labels`` in ``namespace`` (kinds not served are skipped).

    One list request per kind, concurrently."""
    served = [k for k in kinds if await client.serves(*k)]
    lists = await _gather(client.list(av, kind, namespace, labels) for av, kind in served)
    return [obj for items in lists for obj in items]


async def _target(ctx: Context, desired: Desired) -> kclient.KubeClient:
    if desired.remote is None:
        return ctx.client
    assert ctx.remotes is not None
    r = desired.remote
    return await ctx.remotes.get(r.secret_namespace, r.secret_name, r.secret_key)


def _describe_api_error(exc: kerrors.KubeError) -> str:
    text = str(exc)
    if isinstance(exc, kerrors.ApiError) and exc.causes:
        causes = "; ".join(str(c) for c in exc.causes)
        if causes not in text:
            text = f"{text} ({causes})"
    return text


def _error_reason(exc: kerrors.KubeError) -> tuple[str, bool]:
    """(condition reason, permanent?) of a cluster error."""
    if isinstance(exc, kerrors.Invalid):
        return "ApplyRejected", True
    if isinstance(exc, kerrors.Forbidden | kerrors.Unauthorized):
        return "Forbidden", False
    if isinstance(exc, kremote.KubeconfigNotAllowed):
        return "KubeconfigNotAllowed", False
    if isinstance(exc, kerrors.ConfigError):
        return "RemoteClusterUnavailable", False
    if isinstance(exc, kerrors.TransportError):
        return "ClusterUnreachable", False
    if isinstance(exc, kerrors.KindNotServed):
        return "KindNotServed", False
    return "ApplyFailed", False


STATUS_ATTEMPTS: Final = 3
"""Status writes of one reconcile, when other writers changed the region since it was read."""


async def _write_status(
    ctx: Context, body: Mapping[str, Any], outcome: status.Outcome
) -> tuple[dict[str, Any], bool]:
    """Write the status ``outcome`` gives, computed from the region as it is: the patch holds
    only at the resourceVersion read, so conditions another writer added meanwhile (e.g.
    ``RemoteClusterReachable``) are read again and kept rather than overwritten."""
    api_version = str(body.get("apiVersion") or API_VERSION)
    kind = str(body.get("kind") or REGION_KIND)
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    for attempt in range(1, STATUS_ATTEMPTS + 1):
        previous = body.get("status") or {}
        new = status.compute(outcome, previous, ctx.clock())
        if not status.changed(previous, new):
            return new, False
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        try:
            await ctx.client.patch_status(
                api_version, kind, name, namespace, new, resource_version=version
            )
            break
        except kerrors.Conflict:
            if attempt == STATUS_ATTEMPTS:
                raise
            body = await ctx.client.get(api_version, kind, name, namespace)
    if status.degraded_transition(previous, new):
        await ctx.client.post_event(
            body, type_="Warning", reason=outcome.error_reason, message=outcome.error_message
        )
    return new, True


async def reconcile_region(
    ctx: Context,
    ref: index.Ref,
    *,
    on_start: Callable[[], object] | None = None,
    priority: int = URGENT,
) -> Result:
    """Bring the children of CheckoutRegion ``ref`` to its spec, then write its status.

    ``on_start`` is called once the reconcile holds its region's lock and a slot, just before
    it reads the cluster: a change seen after that needs another reconcile, one seen before
    does not. ``priority``: ``URGENT`` (a spec changed) or ``BACKGROUND`` (children moved,
    periodic resync), for the order in which waiting reconciles get a slot."""
    async with ctx.lock(ref), ctx.slot(priority):
        if on_start is not None:
            on_start()
        started = time.perf_counter()
        writes_before = _writes(ctx)
        try:
            result = await _reconcile(ctx, ref)
        finally:
            metrics.RECONCILE_SECONDS.labels(kind=REGION_KIND).observe(
                time.perf_counter() - started
            )
        writes = _writes(ctx) - writes_before
        if result.error_reason:
            metrics.RECONCILE_ERRORS.labels(kind=REGION_KIND, reason=result.error_reason).inc()
        if result.found:
            metrics.REGION_READY.labels(namespace=ref.namespace, name=ref.name).set(
                1 if result.ready else 0
            )
        return dataclasses.replace(result, writes=writes)


def _writes(ctx: Context) -> int:
    total = ctx.client.write_count
    if ctx.remotes is not None:
        total += ctx.remotes.write_count()
    return total


async def _reconcile(ctx: Context, ref: index.Ref) -> Result:
    # One list gives the region and its fleet peers (the fleet routing needs them all).
    regions = await ctx.client.list(API_VERSION, REGION_KIND, ref.namespace)
    body = next((r for r in regions if index.ref(r) == ref), None)
    if body is None:
        with contextlib.suppress(KeyError):
            metrics.REGION_READY.remove(ref.namespace, ref.name)
        return Result(ref, found=False)
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Result(ref)
    generation = int(meta.get("generation") or 0)
    routes = await _list_optional(ctx.client, API_VERSION, ROUTE_KIND, ref.namespace)
    selected = index.routes_for(body, routes)

    try:
        desired = ctx.renderer(body, selected, regions)
    except errors.InvalidSpec as exc:
        outcome = status.Outcome(
            generation,
            error_reason="InvalidSpec",
            error_message=str(exc),
            permanent=True,
        )
        new, written = await _write_status(ctx, body, outcome)
        logger.warning("CheckoutRegion %s: invalid spec: %s", ref, exc)
        return Result(
            ref,
            status_written=written,
            error_reason="InvalidSpec",
            error_message=str(exc),
            permanent=True,
        )

    try:
        target = await _target(ctx, desired)
        for name, key, field in desired.mounted_kubeconfigs:
            # not there yet: the pods wait for it (and the services check it when they read it)
            with contextlib.suppress(kremote.SecretMissing):
                await kremote.checked_kubeconfig(target, desired.namespace, name, key, field)
        owner = owner_of(body) if desired.remote is None else None
        objects = [plan.with_owner(o, owner) for o in desired.objects]
        kinds = plan.child_kinds(objects, ctx.known_kinds)
        live = await list_children(target, kinds, desired.namespace, labels_for(desired.region))
        todo = plan.plan(objects, live)
        applied_live: list[Obj] = []
        applied: list[str] = []
        # One rank (kind group) at a time, in order; the objects of a rank in parallel.
        for _, group in itertools.groupby(todo.apply, key=lambda a: plan.apply_rank(a.obj)):
            items = list(group)
            responses = await _gather(target.apply(item.obj) for item in items)
            for item, response in zip(items, responses, strict=True):
                applied_live.append(response)
                kind = str(item.obj.get("kind"))
                metrics.OBJECTS_APPLIED.labels(kind=kind).inc()
                if item.reason == "drift" or (item.reason == "missing" and _was_ready(body)):
                    metrics.DRIFT_CORRECTIONS.labels(kind=kind).inc()
                name = str(plan.key_of(item.obj))
                applied.append(
                    f"{name} ({item.reason}: {item.detail})"
                    if item.detail
                    else f"{name} ({item.reason})"
                )
        pruned: list[str] = []
        for _, doomed in itertools.groupby(todo.prune, key=plan.apply_rank):
            objs = list(doomed)
            await _gather(
                target.delete(
                    str(o["apiVersion"]),
                    str(o["kind"]),
                    str((o.get("metadata") or {})["name"]),
                    (o.get("metadata") or {}).get("namespace"),
                )
                for o in objs
            )
            for o in objs:
                metrics.OBJECTS_PRUNED.labels(kind=str(o["kind"])).inc()
                pruned.append(str(plan.key_of(o)))
    except kerrors.KubeError as exc:
        reason, permanent = _error_reason(exc)
        message = _describe_api_error(exc)
        outcome = status.Outcome(
            generation,
            desired=len(desired.objects),
            error_reason=reason,
            error_message=message,
            permanent=permanent,
        )
        try:
            _, written = await _write_status(ctx, body, outcome)
        except kerrors.KubeError:
            written = False
        logger.warning("CheckoutRegion %s: %s: %s", ref, reason, message)
        return Result(
            ref,
            error_reason=reason,
            error_message=message,
            permanent=permanent,
            status_written=written,
        )

    health = [status.child_health(o) for o in (*applied_live, *todo.in_sync)]
    outcome = status.Outcome(
        generation,
        desired=len(objects),
        in_sync=len(objects),
        children=tuple(health),
    )
    if applied or pruned:
        logger.info(
            "CheckoutRegion %s: applied %d, pruned %d: %s",
            ref,
            len(applied),
            len(pruned),
            ", ".join([*applied, *(f"{p} (pruned)" for p in pruned)]),
        )
    new, written = await _write_status(ctx, body, outcome)
    if applied or pruned:
        await ctx.client.post_event(
            body,
            type_="Normal",
            reason="Applied",
            message=f"applied {len(applied)} and pruned {len(pruned)} children"
            + (f": {', '.join([*applied, *pruned])}" if applied or pruned else ""),
        )
    return Result(
        ref,
        applied=tuple(applied),
        pruned=tuple(pruned),
        status_written=written,
        ready=new.get("phase") == "Ready",
    )


def _was_ready(body: Mapping[str, Any]) -> bool:
    st = body.get("status") or {}
    return st.get("phase") == "Ready" and st.get("observedGeneration") == (
        body.get("metadata") or {}
    ).get("generation")


async def cleanup_region(ctx: Context, body: Mapping[str, Any]) -> list[str]:
    """Delete every child of the region in its target cluster (for remote regions: the
    finalizer's job; local children go with their owner through garbage collection)."""
    ref = index.ref(body)
    async with ctx.lock(ref):
        placement = placement_of(body)
        target = await _target(ctx, placement)
        kinds = plan.child_kinds((), ctx.known_kinds)
        live = await list_children(target, kinds, placement.namespace, labels_for(placement.region))
        deleted: list[str] = []
        for obj in live:
            m = obj.get("metadata") or {}
            if await target.delete(
                str(obj["apiVersion"]), str(obj["kind"]), str(m["name"]), m.get("namespace")
            ):
                deleted.append(str(plan.key_of(obj)))
        metrics.REGION_READY.labels(namespace=ref.namespace, name=ref.name).set(0)
        return deleted
