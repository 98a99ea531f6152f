"""Fold measured replication lag into CheckoutRegion status (pure: no I/O, time passed in).

* ``status.replication``: one entry per peer with the lag per topic; a peer whose lag could not
  be read keeps its last known values and says why in ``message``.
* Condition ``ReplicationLagging``: True when a peer lags more than ``maxLagOnFailover`` messages
  (a failover or a planned switchover to this region would lose or wait for that many events),
  Unknown when a peer's lag cannot be read and none is known to exceed the bound, else False.
  ``lastTransitionTime`` changes only when the condition's status does.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Final

from checkout_contract.timeutil import rfc3339
from checkout_operator.api.meta import Condition, ConditionStatus
from checkout_operator.api.status import (
    CheckoutRegionStatus,
    PeerReplicationStatus,
    TopicReplicationLag,
)
from checkout_operator.replication.lag import PeerLag

CONDITION: Final = "ReplicationLagging"


def _from_ms(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def peer_status(lag: PeerLag, previous: PeerReplicationStatus | None) -> PeerReplicationStatus:
    if lag.error:
        base = previous or PeerReplicationStatus(peer=lag.peer)
        return base.model_copy(update={"message": lag.error})
    return PeerReplicationStatus(
        peer=lag.peer,
        lag_messages=lag.messages,
        lag_seconds=math.ceil(lag.seconds),
        topics=tuple(
            TopicReplicationLag(
                topic=t.topic, lag_messages=t.messages, lag_seconds=math.ceil(t.seconds)
            )
            for t in lag.topics
        ),
        observed_at=rfc3339(_from_ms(lag.observed_at_ms)),
        message="",
    )


def lagging_condition(
    peers: Sequence[PeerReplicationStatus],
    max_lag: int,
    generation: int,
    now: datetime.datetime,
    previous: Condition | None,
) -> Condition:
    over = [p for p in peers if p.lag_messages > max_lag]
    unknown = [p for p in peers if p.message]
    status: ConditionStatus
    if over:
        status, reason = "True", "LagAboveBound"
        message = (
            "; ".join(
                f"{p.peer}: {p.lag_messages} messages, {p.lag_seconds} s behind" for p in over
            )
            + f" (maxLagOnFailover {max_lag})"
        )
    elif unknown:
        status, reason = "Unknown", "LagUnknown"
        message = "; ".join(p.message for p in unknown)
    else:
        status, reason = "False", "WithinBound"
        message = f"every peer within maxLagOnFailover {max_lag}"
    since = (
        previous.last_transition_time
        if previous is not None and previous.status == status and previous.last_transition_time
        else rfc3339(now)
    )
    return Condition(
        type=CONDITION,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def apply(
    status: CheckoutRegionStatus,
    lags: Sequence[PeerLag],
    max_lag: int,
    generation: int,
    now: datetime.datetime,
) -> CheckoutRegionStatus:
    """``status`` with the replication block and the ReplicationLagging condition updated.

    Peers no longer measured (removed from spec) drop out; other conditions are kept as they are.
    """
    before = {p.peer: p for p in status.replication}
    peers = tuple(
        peer_status(lag, before.get(lag.peer)) for lag in sorted(lags, key=lambda x: x.peer)
    )
    previous = next((c for c in status.conditions if c.type == CONDITION), None)
    others = tuple(c for c in status.conditions if c.type != CONDITION)
    conditions = others
    if peers:
        conditions = (*others, lagging_condition(peers, max_lag, generation, now, previous))
    return status.model_copy(update={"replication": peers, "conditions": conditions})


def lagging(status: CheckoutRegionStatus) -> bool | None:
    """True/False from the condition; None when unknown or never measured (drain must wait)."""
    cond = next((c for c in status.conditions if c.type == CONDITION), None)
    if cond is None or cond.status == "Unknown":
        return None
    return cond.status == "True"
