"""The reconcile layer against a real kube-apiserver (+ controller-manager + kwok nodes).

Drives ``reconcile.region`` directly with the real client: every child created and owned,
Deployments Available, Ready with observedGeneration; drift restored; pruning; a no-op resync
that writes nothing; a bad spec that applies nothing and says why.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_kube import errors as kerrors
from checkout_operator.reconcile import controller, desired, index, region

from . import operator_support as sup

pytestmark = pytest.mark.stack

API = region.API_VERSION


@pytest.fixture(scope="module")
def crds(kube: Any) -> Any:
    sup.install_crds(kube)
    return kube


@pytest.fixture
def namespace(crds: Any) -> Iterator[str]:
    ns = sup.unique("rec")
    crds.kubectl("create", "namespace", ns)
    yield ns
    sup.delete_namespace(crds, ns)


@pytest.fixture
async def ctx(crds: Any) -> AsyncIterator[region.Context]:
    kube = kclient.KubeClient(kconfig.from_kubeconfig_file(crds.kubeconfig))
    ctx = region.Context(kube, desired.render)
    yield ctx
    assert ctx.remotes is not None
    await ctx.remotes.aclose()
    await kube.aclose()


async def create_region(ctx: region.Context, body: dict[str, Any]) -> index.Ref:
    await ctx.client.request(
        "POST",
        f"/apis/{API}/namespaces/{body['metadata']['namespace']}/checkoutregions",
        body=body,
    )
    return index.ref(body)


async def children(ctx: region.Context, ns: str, name: str = "ap-south-1") -> list[dict[str, Any]]:
    return await region.list_children(
        ctx.client, region.KNOWN_CHILD_KINDS, ns, region.labels_for(name)
    )


async def hpas_settled(ctx: region.Context, ns: str) -> bool:
    """Every autoscaled Deployment has been scaled to its HPA's minReplicas (the HPA controller
    does that on its own schedule; until then a Deployment's generation keeps moving)."""
    for hpa in await ctx.client.list("autoscaling/v2", "HorizontalPodAutoscaler", ns):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        dep = await ctx.client.get("apps/v1", "Deployment", target, ns)
        if dep["spec"].get("replicas", 1) < hpa["spec"].get("minReplicas", 1):
            return False
    return True


async def reconcile_until_ready(ctx: region.Context, ref: index.Ref) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        settled = await hpas_settled(ctx, ref.namespace)
        await region.reconcile_region(ctx, ref)
        body = await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace)
        ready = (body.get("status") or {}).get("phase") == "Ready"
        return body if settled and ready else None

    return await sup.eventually(probe, 120, f"CheckoutRegion {ref} Ready")


async def test_region_reconciles_to_ready_with_owned_children(
    ctx: region.Context, namespace: str
) -> None:
    body = sup.local_region(namespace)
    ref = await create_region(ctx, body)
    first = await region.reconcile_region(ctx, ref)
    assert first.error_reason == ""
    rendered = desired.render(
        await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace), [], [body]
    )
    expected = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendered.objects)
    assert sorted(a.split(" ")[0] for a in first.applied) == expected
    assert first.pruned == ()

    cr = await reconcile_until_ready(ctx, ref)
    st = cr["status"]
    assert st["observedGeneration"] == cr["metadata"]["generation"]
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    assert conditions["Progressing"]["status"] == "False"
    assert st["children"]["notReady"] == []
    assert st["children"]["ready"] == 6

    live = await children(ctx, namespace)
    assert sorted(f"{o['kind']}/{o['metadata']['name']}" for o in live) == expected
    uid = cr["metadata"]["uid"]
    for obj in live:
        refs = obj["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [
            ("CheckoutRegion", uid, True)
        ], obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "checkout-operator"
        managers = {m["manager"] for m in obj["metadata"].get("managedFields") or []}
        assert "checkout-operator" in managers
    for dep in [o for o in live if o["kind"] == "Deployment"]:
        assert dep["status"]["availableReplicas"] >= dep["spec"]["replicas"], dep["metadata"]
    events = await ctx.client.list("v1", "Event", namespace)
    assert any(e["reason"] == "Applied" and e["involvedObject"]["uid"] == uid for e in events)


async def test_noop_resync_writes_nothing(ctx: region.Context, namespace: str) -> None:
    ref = await create_region(ctx, sup.local_region(namespace))
    await reconcile_until_ready(ctx, ref)
    before = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for o in await children(ctx, namespace)
    }
    cr_before = (await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace))["metadata"]
    writes = ctx.client.write_count
    for _ in range(3):
        result = await region.reconcile_region(ctx, ref)
        assert (result.applied, result.pruned, result.status_written) == ((), (), False)
        assert result.writes == 0
    assert ctx.client.write_count == writes
    after = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for o in await children(ctx, namespace)
    }
    assert after == before
    cr_after = (await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace))["metadata"]
    assert cr_after["resourceVersion"] == cr_before["resourceVersion"]


async def test_drift_deleted_child_and_edited_replicas_are_restored(
    ctx: region.Context, namespace: str, crds: Any
) -> None:
    ref = await create_region(ctx, sup.local_region(namespace))
    await reconcile_until_ready(ctx, ref)
    crds.kubectl("-n", namespace, "delete", "configmap", "checkout-region")
    crds.kubectl("-n", namespace, "delete", "service", "checkout-orders")
    crds.kubectl("-n", namespace, "scale", "deployment", "checkout-cart", "--replicas=5")
    crds.kubectl(
        "-n", namespace, "set", "image", "deployment/checkout-pricing", "*=evil:latest"
    )  # fmt: skip
    result = await region.reconcile_region(ctx, ref)
    assert sorted(result.applied) == [
        "ConfigMap/checkout-region (missing)",
        "Deployment/checkout-cart (drift: spec.replicas)",
        "Deployment/checkout-pricing (drift: spec.template.spec.containers[0].image)",
        "Service/checkout-orders (missing)",
    ]
    cart = await ctx.client.get("apps/v1", "Deployment", "checkout-cart", namespace)
    assert cart["spec"]["replicas"] == 2
    pricing = await ctx.client.get("apps/v1", "Deployment", "checkout-pricing", namespace)
    assert pricing["spec"]["template"]["spec"]["containers"][0]["image"] != "evil:latest"
    assert await ctx.client.get_or_none("v1", "ConfigMap", "checkout-region", namespace)
    # and then it is quiet again
    await reconcile_until_ready(ctx, ref)
    again = await region.reconcile_region(ctx, ref)
    assert (again.applied, again.writes) == ((), 0)


async def test_children_the_render_drops_are_pruned(
    ctx: region.Context, namespace: str, crds: Any
) -> None:
    body = sup.local_region(namespace)
    ref = await create_region(ctx, body)
    await region.reconcile_region(ctx, ref)
    assert await ctx.client.get_or_none(
        "autoscaling/v2", "HorizontalPodAutoscaler", "checkout-payments", namespace
    )
    # a stray object with our labels (e.g. left by an older operator version)
    stray = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "checkout-stray",
            "namespace": namespace,
            "labels": region.labels_for("ap-south-1"),
        },
    }
    await ctx.client.apply(stray)
    # someone else's ConfigMap without our labels is never touched
    await ctx.client.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "user", "namespace": namespace},
        }
    )
    crds.kubectl(
        "-n", namespace, "patch", "checkoutregion", ref.name, "--type=merge",
        "-p", '{"spec":{"services":{"payments":{"replicas":2,"autoscaling":{"enabled":false}}}}}',
    )  # fmt: skip
    result = await region.reconcile_region(ctx, ref)
    assert sorted(result.pruned) == [
        "ConfigMap/checkout-stray",
        "HorizontalPodAutoscaler/checkout-payments",
    ]
    assert "Deployment/checkout-payments (spec-hash)" in result.applied
    assert not await ctx.client.get_or_none(
        "autoscaling/v2", "HorizontalPodAutoscaler", "checkout-payments", namespace
    )
    assert await ctx.client.get_or_none("v1", "ConfigMap", "user", namespace)


async def test_bad_spec_is_degraded_names_the_field_and_applies_nothing(
    ctx: region.Context, namespace: str
) -> None:
    us = sup.local_region(namespace)
    us["metadata"]["name"] = us["spec"]["region"] = "us-x"
    us["spec"]["jurisdiction"] = "US"
    us["spec"]["homeMarkets"] = [{"country": "US"}]
    await create_region(ctx, us)
    bad = sup.local_region(namespace)
    bad["spec"]["failover"]["targets"] = ["us-x"]
    ref = await create_region(ctx, bad)

    result = await region.reconcile_region(ctx, ref)
    message = (
        "spec.failover.targets[0]: region us-x (jurisdiction US) may not hold data of market IN "
        "(allowed: IN)"
    )
    assert (result.error_reason, result.error_message, result.permanent) == (
        "InvalidSpec",
        message,
        True,
    )
    assert not result.retry
    assert await children(ctx, namespace) == []
    cr = await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace)
    assert cr["status"]["phase"] == "Degraded"
    degraded = next(c for c in cr["status"]["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"], degraded["message"]) == (
        "True",
        "InvalidSpec",
        message,
    )
    assert degraded["observedGeneration"] == cr["metadata"]["generation"]
    events = [
        e
        for e in await ctx.client.list("v1", "Event", namespace)
        if e["involvedObject"]["uid"] == cr["metadata"]["uid"]
    ]
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Warning", "InvalidSpec", message)
    ]
    # no hot loop: resyncing the same bad spec writes nothing, posts no second event
    again = await region.reconcile_region(ctx, ref)
    assert (again.error_reason, again.writes) == ("InvalidSpec", 0)

    # fixing the spec recovers
    fixed = copy.deepcopy(cr)
    fixed["spec"]["failover"]["targets"] = []
    await ctx.client.request(
        "PUT",
        f"/apis/{API}/namespaces/{namespace}/checkoutregions/{ref.name}",
        body={k: v for k, v in fixed.items() if k != "status"},
    )
    ok = await region.reconcile_region(ctx, ref)
    assert ok.error_reason == ""
    assert ok.applied


async def test_psproute_change_rerenders_exactly_the_selected_regions(
    ctx: region.Context, namespace: str
) -> None:
    ref = await create_region(ctx, sup.local_region(namespace))
    ctl = controller.Controller(ctx, debounce=0.1)
    try:
        await region.reconcile_region(ctx, ref)
        route = sup.yaml.safe_load((sup.ROOT / "examples/psproutes/in-upi.yaml").read_text())
        route["metadata"]["namespace"] = namespace
        route["spec"]["regions"] = ["ap-south-1"]
        created = await ctx.client.request(
            "POST", f"/apis/{API}/namespaces/{namespace}/psproutes", body=route
        )
        results = await ctl.route_changed(None, created)
        assert [r.ref for r in results] == [ref]
        assert sorted(results[0].applied) == [
            "ConfigMap/checkout-psp-routing (spec-hash)",
            "Deployment/checkout-payments (spec-hash)",
        ]
        cm = await ctx.client.get("v1", "ConfigMap", "checkout-psp-routing", namespace)
        assert f"{namespace}/{route['metadata']['name']}" in cm["data"]["routing.json"]
        st = (await ctx.client.get(API, "PSPRoute", route["metadata"]["name"], namespace))["status"]
        assert (st["phase"], st["regions"]) == ("Ready", ["ap-south-1"])
        # a route for another region touches nothing here
        other = dict(created, spec={**created["spec"], "regions": ["us-nowhere"]})
        assert await ctl.route_changed(created, other, reconcile_regions=True) != []
        none = copy.deepcopy(other)
        assert [r.ref for r in await ctl.route_changed(other, none)] == []
    finally:
        await ctl.debouncer.aclose()


async def test_typed_errors_from_the_real_apiserver(ctx: region.Context, namespace: str) -> None:
    with pytest.raises(kerrors.NotFound):
        await ctx.client.get("v1", "ConfigMap", "nope", namespace)
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}}, "template": {}},
    }
    with pytest.raises(kerrors.Invalid) as exc:
        await ctx.client.apply(bad)
    assert "spec.replicas" in {c.field for c in exc.value.causes}
    with pytest.raises(kerrors.KindNotServed):
        await ctx.client.get("example.com/v1", "Nothing", "x", namespace)
