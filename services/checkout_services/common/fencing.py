"""Wiring the write leases into a service's lifespan.

:func:`keeper` starts a :class:`checkout_services.common.lease.LeaseKeeper` when the lease store
is configured (``CHECKOUT_LEASE_NAMESPACE``, plus ``CHECKOUT_LEASE_KUBECONFIG`` for a region
outside the management cluster, else the pod's service account), runs one renewal pass before
the service answers (so the holder can write at once), and stops it at the end. Without the
env it yields None and logs once that writes follow the routing ConfigMap alone.

Several services of a region keep the same market leases. Exactly one of them acknowledges
fencing (``acknowledge=True``): payments, whose in-flight authorizations (:class:`InFlight`)
must finish before the region says it stopped; the others stop writing on Fencing, record on
the Lease (their own ``keeper.<id>`` annotation) once their own in-flight writes are done, and
payments writes the ``fenced-ack`` only when every live keeper of the region did so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

from checkout_contract import config, env
from checkout_kube import errors as kerrors
from checkout_kube import policy
from checkout_services.common import lease

log = logging.getLogger("checkout_services.common.fencing")


class InFlight:
    """Writes in progress per market (``in_flight`` of a LeaseKeeper)."""

    def __init__(self) -> None:
        self._n: Counter[str] = Counter()

    def __call__(self, market: str) -> int:
        return self._n[market.upper()]

    @contextlib.contextmanager
    def track(self, market: str) -> Iterator[None]:
        key = market.upper()
        self._n[key] += 1
        try:
            yield
        finally:
            self._n[key] -= 1
            if self._n[key] <= 0:
                del self._n[key]


def say_unfenced(service: str) -> None:
    """The startup note of a service running without write leases (once per start)."""
    log.warning(
        "%s: %s is not set: no write leases; writes follow the fleet routing ConfigMap only",
        service,
        env.LEASE_NAMESPACE,
    )


@contextlib.asynccontextmanager
async def keeper(
    region: config.RegionConfig,
    service: str,
    *,
    acknowledge: bool = False,
    in_flight: Callable[[str], int] | None = None,
) -> AsyncIterator[lease.LeaseKeeper | None]:
    """A started keeper of ``region``'s market leases, or None when leases are not configured."""
    namespace = os.environ.get(env.LEASE_NAMESPACE)
    if not namespace:
        say_unfenced(service)
        yield None
        return
    try:
        k = lease.keeper_from_env(region.region, region.fleet, service=service)
    except policy.NotAllowed as exc:
        # the message names the field only (never a value)
        raise kerrors.ConfigError(f"{service}: {exc}") from exc
    except (kerrors.ConfigError, OSError) as exc:
        # the kubeconfig reader's messages name the file and the field, never a credential
        raise kerrors.ConfigError(
            f"{service}: cannot use the lease store credential "
            f"({env.LEASE_KUBECONFIG} or the pod's service account): {exc}"
        ) from exc
    assert k is not None
    k.acknowledge = acknowledge
    if in_flight is not None:
        k.in_flight = in_flight
    log.info(
        "%s: write leases of fleet %s in namespace %s on %s (%s fencing)",
        service,
        region.fleet,
        namespace,
        k.store.server,
        "acknowledges" if acknowledge else "follows",
    )
    try:
        await k.step()
        k.start()
        yield k
    finally:
        await k.aclose()
        await k.store.aclose()
