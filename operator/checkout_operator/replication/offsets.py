"""Pure lag arithmetic on MirrorMaker 2's own bookkeeping (no I/O).

MirrorMaker 2 in dedicated mode stores, for the flow ``<source>-><target>``, the position of its
``MirrorSourceConnector`` in the Connect offsets topic ``mm2-offsets.<source>.internal`` on the
target cluster. Each record is keyed by ``["MirrorSourceConnector", {"cluster": <source alias>,
"partition": <n>, "topic": <source topic>}]`` with value ``{"offset": <last replicated upstream
offset>}`` (compacted; a null value is a tombstone). The lag of a source partition is therefore

    end offset (source) - (last replicated offset + 1)

and, in time, how old the first record not yet replicated is. The position is written every
``offset.flush.interval.ms``, so the lag is at most that stale (it errs on the high side).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

SOURCE_CONNECTOR: Final = "MirrorSourceConnector"
# MM2's default topics.exclude plus its own topics: never replicated, never lagging.
EXCLUDED: Final = (
    re.compile(r".*[\-.]internal"),
    re.compile(r".*\.replica"),
    re.compile(r"__.*"),
    re.compile(r"(.*\.)?heartbeats"),
    re.compile(r"(.*\.)?checkpoints\.internal"),
)

TopicPartition = tuple[str, int]


def offsets_topic(source: str) -> str:
    """Where MM2's Connect worker of the flow ``source->target`` keeps positions (on target)."""
    return f"mm2-offsets.{source}.internal"


@dataclass(frozen=True)
class Position:
    """One record of the Connect offsets topic about a MirrorSourceConnector partition."""

    source: str
    topic: str
    partition: int
    offset: int | None  # None: tombstone (the position was reset)


def parse_record(key: bytes | None, value: bytes | None) -> Position | None:
    """The position a Connect offsets record carries, or None for other connectors' records.

    Raises ValueError for a record of MirrorSourceConnector that does not have the known shape
    (so a format change is noticed rather than read as lag 0)."""
    if key is None:
        return None
    try:
        decoded = json.loads(key)
    except ValueError:
        return None
    if not (isinstance(decoded, list) and len(decoded) == 2 and decoded[0] == SOURCE_CONNECTOR):
        return None
    part = decoded[1]
    if not isinstance(part, dict):
        raise ValueError(f"unexpected MirrorSourceConnector offsets key: {key!r}")
    try:
        source, topic, partition = str(part["cluster"]), str(part["topic"]), int(part["partition"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unexpected MirrorSourceConnector offsets key: {key!r}") from exc
    if value is None:
        return Position(source, topic, partition, None)
    try:
        offset = int(json.loads(value)["offset"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unexpected MirrorSourceConnector offsets value: {value!r}") from exc
    return Position(source, topic, partition, offset)


def replicated_positions(
    records: Iterable[Position | None], source: str
) -> dict[TopicPartition, int]:
    """Last replicated upstream offset per source partition (later records win)."""
    out: dict[TopicPartition, int] = {}
    for pos in records:
        if pos is None or pos.source != source:
            continue
        if pos.offset is None:
            out.pop((pos.topic, pos.partition), None)
        else:
            out[(pos.topic, pos.partition)] = pos.offset
    return out


def replicated_topics(topics: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The source topics MM2 replicates: a pattern matches the whole name, internals excluded."""
    compiled = [re.compile(p) for p in patterns]
    return sorted(
        t
        for t in topics
        if any(p.fullmatch(t) for p in compiled) and not any(x.fullmatch(t) for x in EXCLUDED)
    )


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    messages: int
    next_offset: int  # first source offset not replicated yet


def partition_lags(
    start_offsets: Mapping[TopicPartition, int],
    end_offsets: Mapping[TopicPartition, int],
    replicated: Mapping[TopicPartition, int],
) -> list[PartitionLag]:
    """Lag of every source partition; one never replicated lags by all records it holds."""
    out: list[PartitionLag] = []
    for tp in sorted(end_offsets):
        end = end_offsets[tp]
        start = start_offsets.get(tp, 0)
        next_offset = max(replicated[tp] + 1, start) if tp in replicated else start
        out.append(PartitionLag(tp[0], tp[1], max(0, end - next_offset), next_offset))
    return out


@dataclass(frozen=True)
class TopicLag:
    """Replication lag of one source topic of one peer into this region."""

    peer: str
    topic: str
    messages: int
    seconds: float


def topic_lags(
    peer: str,
    partitions: Sequence[PartitionLag],
    oldest_timestamps_ms: Mapping[TopicPartition, int],
    now_ms: int,
) -> list[TopicLag]:
    """Per topic: messages summed over partitions, seconds = age of the oldest record not yet
    replicated (0 when nothing lags; unknown timestamps count as 0 s)."""
    messages: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for p in partitions:
        messages[p.topic] = messages.get(p.topic, 0) + p.messages
        age = 0.0
        if p.messages > 0 and (p.topic, p.partition) in oldest_timestamps_ms:
            age = max(0.0, (now_ms - oldest_timestamps_ms[(p.topic, p.partition)]) / 1000.0)
        seconds[p.topic] = max(seconds.get(p.topic, 0.0), age)
    return [TopicLag(peer, t, messages[t], round(seconds[t], 3)) for t in sorted(messages)]
