"""The failover engine: probe every region, decide (pure), carry the decision out, record why.

By concern, one module each:

* :mod:`.watching` - the in-memory index of CheckoutRegions kept by a watch, and the market
  Lease watch; both wake the decision loop;
* :mod:`.probing` - a probe task per region (its own ``periodSeconds`` and
  ``timeoutSeconds``) folding results into the region's health;
* :mod:`.deciding` - the observation handed to :func:`checkout_operator.failover.decide.decide`;
* :mod:`.moving` - carrying the actions out: creates missing leases, fences and promotes by
  compare-and-swap (:mod:`checkout_operator.reconcile.leases`); a lost race is decided again;
* :mod:`.recording` - the home regions' ``status.markets`` (writer, epoch, state, lease expiry,
  why), ``health``, ``expectedFailoverSeconds``, ``lastFailover`` and ``history``, the Events
  (Fencing, FailedOver, MarketDown) and metrics, written off the decision path; the renderer
  turns ``status.markets`` into every region's fleet routing ConfigMap, re-rendered through
  the engine's ``on_routing`` hook whenever a writer or state changes;
* :mod:`.engine` - the loop tying them together, every background part a guarded task.

Automatic failover never writes ``spec`` (GitOps): only status, Leases and Events. The lease
store unreachable freezes everything. With ``spec.failover.dryRun`` the moves are computed and
shown in ``status.markets[].message`` and an Event, never carried out.
"""

from checkout_operator.reconcile.failover.engine import Engine, RoutingHook
from checkout_operator.reconcile.failover.moving import Move
from checkout_operator.reconcile.failover.probing import ProbeSpec, health_url
from checkout_operator.reconcile.failover.recording import HISTORY_LIMIT, Recorder, rfc3339
from checkout_operator.reconcile.failover.watching import RegionIndex

__all__ = [
    "HISTORY_LIMIT",
    "Engine",
    "Move",
    "ProbeSpec",
    "Recorder",
    "RegionIndex",
    "RoutingHook",
    "health_url",
    "rfc3339",
]
