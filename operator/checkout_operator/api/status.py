"""Status models of both kinds: written by the operator, read by people, Argo CD and tools."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from checkout_operator.api.meta import ApiModel, ChildSummary, Condition

Phase = Literal["Pending", "Progressing", "Ready", "Degraded"]
MarketState = Literal["Serving", "Fencing", "Down"]
HealthState = Literal["Healthy", "Unhealthy", "Unknown"]
FailoverState = Literal["AtHome", "Moving", "FailedOver", "Down"]


class MarketStatus(ApiModel):
    """Who writes for one home market right now."""

    market: str
    """ISO country code of the market."""
    writer: str
    """Region that currently accepts the market's writes (its home region unless failed over)."""
    epoch: int = Field(ge=0)
    """Fencing epoch, bumped on every change of writer."""
    state: MarketState = "Serving"
    """Serving, Fencing (a move is in progress) or Down (no healthy legal writer)."""
    target: str = ""
    """While Fencing: the region the market is moving to (empty otherwise)."""
    lease_expires_at: str = ""
    """When the writer's lease for this epoch expires (RFC 3339, UTC)."""
    message: str = ""
    """What the failover logic decided about the market, and what blocks a move (or, with
    ``dryRun``, the move it would make)."""


class FailoverRecord(ApiModel):
    """One move of markets from one region to another: what, when, and why."""

    time: str
    """When the move completed (RFC 3339, UTC)."""
    markets: tuple[str, ...]
    """Markets that moved."""
    from_region: str = Field(alias="from")
    """Previous writer region."""
    to_region: str = Field(alias="to")
    """New writer region."""
    epoch: int = Field(ge=0)
    """Epoch the new writer holds."""
    reason: str
    """Why, e.g. ``ProbeFailures``, ``Drain``, ``Failback``."""
    evidence: tuple[str, ...] = ()
    """Probe results and peer views that justified the move."""
    actor: str
    """``operator`` or the spec change that asked for it."""


class RegionHealth(ApiModel):
    """The operator's latest view of the region's health."""

    state: HealthState = "Unknown"
    """Healthy, Unhealthy or Unknown."""
    consecutive_failures: int = Field(default=0, ge=0)
    """Failed (or timed out) probes in a row, counted up to failureThreshold (the status is
    written when it changes, not on every probe)."""
    consecutive_successes: int = Field(default=0, ge=0)
    """Successful probes in a row, counted up to successThreshold."""
    last_probe_time: str = ""
    """When the last probe finished (RFC 3339, UTC)."""
    message: str = ""
    """Outcome and reason of the last probe when it did not succeed, e.g. ``Failure(503)``."""


class TopicReplicationLag(ApiModel):
    """How far one replicated topic of a peer is behind in this region."""

    topic: str
    """The topic's name in the peer region (replicated here as ``<peer>.<topic>`` under the
    Default policy)."""
    lag_messages: int = Field(default=0, ge=0)
    """Records in the peer not yet replicated here."""
    lag_seconds: int = Field(default=0, ge=0)
    """Age of the oldest record not yet replicated, in whole seconds (rounded up)."""


class PeerReplicationStatus(ApiModel):
    """MirrorMaker 2 lag of the flow from one peer into this region, read from MM2's offsets."""

    peer: str
    """The peer region."""
    lag_messages: int = Field(default=0, ge=0)
    """Sum over the peer's replicated topics."""
    lag_seconds: int = Field(default=0, ge=0)
    """Largest over the peer's replicated topics."""
    topics: tuple[TopicReplicationLag, ...] = Field(default=(), max_length=256)
    """Lag per replicated topic."""
    observed_at: str = ""
    """When the lag was last measured (RFC 3339, UTC); older values stay while it is unknown."""
    message: str = ""
    """Why the lag is unknown right now (empty when the measurement succeeded)."""


RequestAction = Literal["switchover", "drain", "return-home", "pause", "resume"]
RequestOutcome = Literal["Accepted", "Refused"]


class RequestRecord(ApiModel):
    """The outcome of the last imperative request (annotation ``checkout-operator.io/request``,
    set by ``kubectl checkout`` or an Argo CD action): consumed once per request id."""

    id: str = Field(max_length=128)
    """The request's id: a request with the same id is never carried out twice."""
    action: str = Field(max_length=32)
    """switchover, drain, return-home, pause or resume (as asked; refused when unknown)."""
    target: str = ""
    """The region asked for (switchover, drain)."""
    outcome: RequestOutcome
    """Accepted (now in force, see ``overrides``) or Refused (nothing changed)."""
    message: str = ""
    """What it does, or why it was refused (residency, lag budget, minimum dwell, ...)."""
    time: str = ""
    """When the operator consumed it (RFC 3339, UTC)."""
    requested_by: str = Field(default="", max_length=256)
    """Who asked, as the request says (``kubectl-checkout``, ``argocd``, ...)."""


class RequestOverrides(ApiModel):
    """What accepted imperative requests keep in force on top of the spec (the spec is never
    rewritten: Argo CD self-heal would revert it)."""

    automatic_failover_paused: bool = False
    """``pause``: the region's markets move only on request or a spec edit (policy Manual)."""
    drain: bool = False
    """``switchover`` / ``drain``: the region's markets move away (as spec.failover.drain)."""
    target: str = ""
    """The region a switchover moves the markets to (tried before spec.failover.targets)."""
    return_home: bool = False
    """``return-home``: the home markets move back (as spec.failover.returnHome) until home."""
    request_id: str = ""
    """The request that last changed these."""


class CheckoutRegionStatus(ApiModel):
    """Observed state of a CheckoutRegion."""

    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation the status describes."""
    phase: Phase = "Pending"
    """Summary of the reconcile: Pending, Progressing, Ready or Degraded (where the markets are
    is in ``markets``)."""
    conditions: tuple[Condition, ...] = ()
    """Ready, Progressing, Degraded and the failover conditions."""
    children: ChildSummary = ChildSummary()
    """Rendered objects and how many are ready."""
    markets: tuple[MarketStatus, ...] = ()
    """Effective writer, epoch and state of each home market."""
    last_failover: FailoverRecord | None = None
    """The most recent move of markets."""
    history: tuple[FailoverRecord, ...] = Field(default=(), max_length=20)
    """Recent moves, newest first (bounded)."""
    health: RegionHealth = RegionHealth()
    """Probe results."""
    expected_failover_seconds: int = Field(default=0, ge=0)
    """periodSeconds x failureThreshold + writeLeaseSeconds: what a failover should take."""
    replication: tuple[PeerReplicationStatus, ...] = Field(default=(), max_length=32)
    """Replication lag from each peer into this region (MirrorMaker 2 offsets)."""
    failover_state: FailoverState | None = None
    """Where the home markets are: AtHome (all written here), Moving (one is fencing towards
    another region), FailedOver (one is written by another region) or Down (one has no
    healthy legal writer); the worst wins."""
    writers: str | None = None
    """Each home market and the region writing it, e.g. ``FR=eu-b,NL=eu-b`` (for one printer
    column: a column shows only the first value of a list)."""
    max_replication_lag_messages: int | None = Field(default=None, ge=0)
    """The largest replication lag (messages) of any peer's data into this region."""
    request: RequestRecord | None = None
    """The last imperative request and its outcome."""
    overrides: RequestOverrides = RequestOverrides()
    """What accepted requests keep in force on top of the spec."""


class PSPRouteStatus(ApiModel):
    """Observed state of a PSPRoute."""

    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation the status describes."""
    phase: Phase = "Pending"
    """Pending, Ready or Degraded."""
    conditions: tuple[Condition, ...] = ()
    """Ready and Degraded."""
    regions: tuple[str, ...] = ()
    """Regions whose payments routing includes this route."""
