"""Pure replication lag: MM2 Connect offsets records, lag per partition/topic, status folding."""

from __future__ import annotations

import datetime
import json

import pytest

from checkout_operator.api.status import CheckoutRegionStatus
from checkout_operator.replication import offsets, status
from checkout_operator.replication.lag import PeerLag

NOW = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)


def key(connector: str, cluster: str, topic: str, partition: int) -> bytes:
    return json.dumps(
        [connector, {"cluster": cluster, "partition": partition, "topic": topic}]
    ).encode()


def test_parse_mirror_source_connector_record() -> None:
    pos = offsets.parse_record(
        key("MirrorSourceConnector", "eu", "checkout.orders", 2), b'{"offset":41}'
    )
    assert pos == offsets.Position("eu", "checkout.orders", 2, 41)


def test_other_connectors_and_garbage_keys_are_ignored() -> None:
    assert (
        offsets.parse_record(key("MirrorCheckpointConnector", "eu", "t", 0), b'{"offset":1}')
        is None
    )
    assert offsets.parse_record(b"not json", b"{}") is None
    assert offsets.parse_record(None, b"{}") is None


def test_malformed_source_record_is_an_error_not_lag_zero() -> None:
    with pytest.raises(ValueError, match="offsets value"):
        offsets.parse_record(key("MirrorSourceConnector", "eu", "t", 0), b'{"position":1}')
    with pytest.raises(ValueError, match="offsets key"):
        offsets.parse_record(b'["MirrorSourceConnector", {"topic": "t"}]', b'{"offset":1}')


def test_later_records_win_and_tombstones_reset() -> None:
    records = [
        offsets.Position("eu", "a", 0, 5),
        offsets.Position("eu", "a", 0, 9),
        offsets.Position("us", "a", 0, 100),  # another source's flow
        offsets.Position("eu", "b", 0, 3),
        offsets.Position("eu", "b", 0, None),
        None,
    ]
    assert offsets.replicated_positions(records, "eu") == {("a", 0): 9}


def test_offsets_topic_name() -> None:
    assert offsets.offsets_topic("eu-west-1") == "mm2-offsets.eu-west-1.internal"


def test_replicated_topics_match_whole_names_and_skip_internals() -> None:
    topics = [
        "checkout.orders",
        "checkout.inventory",
        "xcheckout.orders",
        "us.checkout.orders",
        "checkout.orders.internal",
        "__consumer_offsets",
        "heartbeats",
        "mm2-offsets.us.internal",
    ]
    assert offsets.replicated_topics(topics, [r"checkout\..*"]) == [
        "checkout.inventory",
        "checkout.orders",
    ]


def test_partition_lag_is_end_minus_next_offset() -> None:
    lags = offsets.partition_lags(
        start_offsets={("t", 0): 0, ("t", 1): 50, ("u", 0): 10},
        end_offsets={("t", 0): 100, ("t", 1): 60, ("u", 0): 10},
        replicated={("t", 0): 89, ("u", 0): 9},
    )
    assert lags == [
        offsets.PartitionLag("t", 0, 10, 90),
        offsets.PartitionLag("t", 1, 10, 50),  # never replicated: all retained records lag
        offsets.PartitionLag("u", 0, 0, 10),
    ]


def test_position_before_log_start_counts_from_log_start() -> None:
    (lag,) = offsets.partition_lags({("t", 0): 500}, {("t", 0): 510}, {("t", 0): 3})
    assert (lag.messages, lag.next_offset) == (10, 500)


def test_topic_lags_sum_messages_and_take_the_oldest_age() -> None:
    parts = [
        offsets.PartitionLag("t", 0, 10, 90),
        offsets.PartitionLag("t", 1, 5, 50),
        offsets.PartitionLag("u", 0, 0, 10),
    ]
    now_ms = 1_000_000
    got = offsets.topic_lags(
        "eu", parts, {("t", 0): now_ms - 1500, ("t", 1): now_ms - 4000}, now_ms
    )
    assert got == [offsets.TopicLag("eu", "t", 15, 4.0), offsets.TopicLag("eu", "u", 0, 0.0)]


def lag(peer: str, messages: int, seconds: float = 0.0, error: str = "") -> PeerLag:
    topics = () if error else (offsets.TopicLag(peer, "checkout.orders", messages, seconds),)
    return PeerLag(peer, topics, error=error, observed_at_ms=int(NOW.timestamp() * 1000))


def test_status_within_bound() -> None:
    got = status.apply(CheckoutRegionStatus(), [lag("eu-central-1", 3, 0.2)], 100, 4, NOW)
    (peer,) = got.replication
    assert (peer.peer, peer.lag_messages, peer.lag_seconds) == ("eu-central-1", 3, 1)
    assert peer.observed_at == "2026-11-25T12:00:00Z"
    assert peer.topics[0].topic == "checkout.orders"
    (cond,) = got.conditions
    assert (cond.type, cond.status, cond.reason, cond.observed_generation) == (
        "ReplicationLagging",
        "False",
        "WithinBound",
        4,
    )
    assert status.lagging(got) is False


def test_status_above_bound_names_peer_and_bound_and_keeps_transition_time() -> None:
    first = status.apply(CheckoutRegionStatus(), [lag("a", 500, 12.5)], 100, 1, NOW)
    cond = first.conditions[0]
    assert cond.status == "True"
    assert cond.message == "a: 500 messages, 13 s behind (maxLagOnFailover 100)"
    later = NOW + datetime.timedelta(seconds=30)
    second = status.apply(first, [lag("a", 900, 40)], 100, 1, later)
    assert second.conditions[0].last_transition_time == cond.last_transition_time
    third = status.apply(second, [lag("a", 0)], 100, 1, later)
    assert third.conditions[0].status == "False"
    assert third.conditions[0].last_transition_time == "2026-11-25T12:00:30Z"
    assert status.lagging(third) is False


def test_unknown_lag_keeps_last_values_and_says_why() -> None:
    known = status.apply(CheckoutRegionStatus(), [lag("a", 7), lag("b", 0)], 100, 1, NOW)
    later = NOW + datetime.timedelta(seconds=10)
    got = status.apply(
        known,
        [lag("a", 0, error="lag from a unknown: KafkaConnectionError"), lag("b", 0)],
        100,
        1,
        later,
    )
    a = got.replication[0]
    assert (a.lag_messages, a.observed_at) == (7, "2026-11-25T12:00:00Z")
    assert a.message == "lag from a unknown: KafkaConnectionError"
    cond = got.conditions[0]
    assert (cond.status, cond.reason) == ("Unknown", "LagUnknown")
    assert status.lagging(got) is None


def test_other_conditions_are_kept_and_removed_peers_drop_out() -> None:
    from checkout_operator.api.meta import Condition

    base = CheckoutRegionStatus(conditions=(Condition(type="Ready", status="True"),))
    got = status.apply(base, [lag("a", 1), lag("b", 2)], 100, 1, NOW)
    got = status.apply(got, [lag("b", 2)], 100, 1, NOW)
    assert [c.type for c in got.conditions] == ["Ready", "ReplicationLagging"]
    assert [p.peer for p in got.replication] == ["b"]
    assert status.apply(got, [], 100, 1, NOW).conditions == base.conditions


def test_status_serialises_camel_case() -> None:
    got = status.apply(CheckoutRegionStatus(), [lag("a", 1, 2.0)], 100, 1, NOW)
    dumped = got.model_dump(by_alias=True, mode="json")
    assert dumped["replication"][0]["lagMessages"] == 1
    assert dumped["replication"][0]["observedAt"] == "2026-11-25T12:00:00Z"


def test_fold_keeps_the_reconcilers_conditions_and_replaces_ours() -> None:
    from checkout_operator.reconcile import replication as rec

    previous = {
        "phase": "Ready",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AllReady", "message": "",
             "lastTransitionTime": "2026-11-25T11:00:00Z", "observedGeneration": 3},
            {"type": "ReplicationLagging", "status": "True", "reason": "LagAboveBound",
             "message": "old", "lastTransitionTime": "2026-11-25T11:30:00Z",
             "observedGeneration": 3},
        ],
    }  # fmt: skip
    new = rec.fold(previous, [lag("a", 0)], 100, 3, NOW)
    assert set(new) == {"replication", "conditions", "maxReplicationLagMessages"}
    assert new["maxReplicationLagMessages"] == 0
    assert new["conditions"][0] == previous["conditions"][0]
    assert new["conditions"][1]["status"] == "False"
    assert new["conditions"][1]["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert new["replication"][0]["peer"] == "a"
    assert rec.changed(previous, new)
    # the same lag observed later: only observedAt differs, nothing to write
    again = PeerLag("a", lag("a", 0).topics, observed_at_ms=int(NOW.timestamp() * 1000) + 30_000)
    later = rec.fold(new, [again], 100, 3, NOW + datetime.timedelta(seconds=30))
    assert later["replication"][0]["observedAt"] != new["replication"][0]["observedAt"]
    assert not rec.changed(new, later)
