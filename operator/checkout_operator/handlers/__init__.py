"""kopf handlers: decorators and delegation to ``checkout_operator.reconcile`` only.

Importing this package registers the handlers in kopf's default registry. The periodic
resync's interval comes from ``CHECKOUT_OPERATOR_DRIFT_INTERVAL`` (seconds, default 60), read at
import; the namespaces it covers from ``memo.namespaces`` (None: all namespaces).

The periodic resync is one operator-wide loop (started at startup), not a ``@kopf.timer``:
kopf puts its finalizer on every object that has a timer or daemon, and the finalizer belongs
only on remote-cluster regions (whose children no owner reference can garbage-collect).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

import kopf

from checkout_operator.reconcile import controller, region, runtime

GROUP: Final = region.GROUP
VERSION: Final = "v1alpha1"
REGIONS: Final = "checkoutregions"
ROUTES: Final = "psproutes"
FINALIZER: Final = "checkout-operator.io/finalizer"
MANAGED: Final = {region.MANAGED_BY_LABEL: region.MANAGED_BY}
DRIFT_INTERVAL: Final = float(os.environ.get("CHECKOUT_OPERATOR_DRIFT_INTERVAL", "60"))
RETRY_DELAY: Final = float(os.environ.get("CHECKOUT_OPERATOR_RETRY_DELAY", "15"))
# How often MirrorMaker 2's replication lag is read into status (seconds).
LAG_INTERVAL: Final = float(os.environ.get("CHECKOUT_OPERATOR_LAG_INTERVAL", "30"))
# Failover: on unless CHECKOUT_OPERATOR_FAILOVER=0; decision tick (seconds) between probes.
FAILOVER: Final = os.environ.get("CHECKOUT_OPERATOR_FAILOVER", "1") != "0"
FAILOVER_TICK: Final = float(os.environ.get("CHECKOUT_OPERATOR_FAILOVER_TICK", "0.5"))


def _controller(memo: Any) -> controller.Controller:
    ctl = memo.controller
    assert isinstance(ctl, controller.Controller)
    return ctl


def _raise_for(result: region.Result) -> None:
    if result.retry:
        raise kopf.TemporaryError(f"{result.error_reason}: {result.error_message}", RETRY_DELAY)


def _is_remote(spec: Any, **_: Any) -> bool:
    return bool(spec.get("remoteCluster"))


def _deleted(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = True
    settings.posting.level = logging.WARNING  # our own Events say what was applied
    ctl = runtime.build_controller(
        getattr(memo, "kubeconfig", None),
        debounce=float(getattr(memo, "debounce", 0.5)),
        max_concurrent=getattr(memo, "max_concurrent", runtime.DEFAULT_MAX_CONCURRENT),
    )
    memo.controller = ctl
    ctl.start_resync(getattr(memo, "namespaces", None), DRIFT_INTERVAL)
    ctl.start_replication_monitor(getattr(memo, "namespaces", None), LAG_INTERVAL)
    if FAILOVER:
        namespaces = getattr(memo, "namespaces", None)
        ctl.start_failover(
            runtime.build_failover_context(getattr(memo, "kubeconfig", None)),
            namespaces,
            tick=FAILOVER_TICK,
            leader_namespace=getattr(memo, "leader_namespace", None)
            or (namespaces[0] if namespaces else "default"),
            elected=getattr(memo, "leader", None),
        )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).aclose()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    creds = runtime.credentials(getattr(memo, "kubeconfig", None))
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_data=creds.ca_pem,
        insecure=creds.insecure,
        certificate_data=creds.client_cert_pem,
        private_key_data=creds.client_key_pem,
        scheme="Bearer" if creds.current_token() else None,
        token=creds.current_token(),
        default_namespace=creds.default_namespace,
    )


@kopf.on.resume(GROUP, VERSION, REGIONS)
@kopf.on.create(GROUP, VERSION, REGIONS)
@kopf.on.update(GROUP, VERSION, REGIONS)
async def region_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _raise_for(await _controller(memo).region_changed(body))


@kopf.on.delete(GROUP, VERSION, REGIONS, when=_is_remote)
async def remote_region_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).region_deleted(body)


@kopf.on.event(GROUP, VERSION, REGIONS, when=_deleted)
async def region_gone(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).region_gone(body)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
async def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).child_event(body)


@kopf.on.resume(GROUP, VERSION, ROUTES)
async def route_resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).route_changed(None, body, reconcile_regions=False)


@kopf.on.create(GROUP, VERSION, ROUTES)
@kopf.on.update(GROUP, VERSION, ROUTES)
async def route_changed(old: Any, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    for result in await _controller(memo).route_changed(old, body):
        _raise_for(result)


@kopf.on.event(GROUP, VERSION, ROUTES, when=_deleted)
async def route_gone(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).route_changed(body, None)
