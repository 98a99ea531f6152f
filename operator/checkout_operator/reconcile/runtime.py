"""Building the operator's controller: credentials, the shared client, metrics wiring."""

from __future__ import annotations

from checkout_kube import client, config
from checkout_operator import metrics
from checkout_operator.reconcile import controller, desired, leader, region


def credentials(kubeconfig: str | None) -> config.Credentials:
    """``kubeconfig`` if given, else $KUBECONFIG, in-cluster, ~/.kube/config."""
    return config.load(kubeconfig)


DEFAULT_MAX_CONCURRENT = 8
"""Reconciles at once by default: enough to keep the API server busy, few enough that a
burst of new regions finishes region by region (see ``region.Context.max_concurrent``)."""


def build_controller(
    kubeconfig: str | None,
    *,
    debounce: float = 0.5,
    max_concurrent: int | None = DEFAULT_MAX_CONCURRENT,
) -> controller.Controller:
    kube = client.KubeClient(credentials(kubeconfig), on_write=metrics.count_write)
    ctx = region.Context(kube, desired.render, max_concurrent=max_concurrent)
    return controller.Controller(ctx, debounce=debounce)


def build_failover_context(kubeconfig: str | None) -> region.Context:
    """A context with its own client for the failover engine and its leader Lease."""
    kube = client.KubeClient(
        credentials(kubeconfig), on_write=metrics.count_write, timeout=5.0, name="lease store"
    )
    return region.Context(kube, desired.render)


def build_leader(
    kubeconfig: str | None,
    namespace: str,
    name: str,
    *,
    identity: str | None = None,
    duration: float = 15.0,
    retry: float = 2.0,
) -> leader.Leader:
    """The operator's leader election (``run --leader-elect``), with its own client: a busy
    reconciler never delays a renewal. The caller closes ``leader.client``."""
    kube = client.KubeClient(
        credentials(kubeconfig), on_write=metrics.count_write, timeout=5.0, name="leader lease"
    )
    return leader.Leader(
        kube, namespace, name=name, identity=identity, duration=duration, retry=retry
    )
