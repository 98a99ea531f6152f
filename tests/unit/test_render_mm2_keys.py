"""Every key of the rendered mm2.properties is one MirrorMaker 2 (dedicated mode) actually reads.

MirrorMakerConfig (apache/kafka connect/mirror/.../MirrorMakerConfig.java) hands a flow's Connect
worker only ``<target>.``-prefixed keys plus the top-level prefixes ``offset.storage``,
``config.storage``, ``status.storage``, ``key/value/header.converter``, ``task``, ``worker`` and
``replication.policy`` (workerConfig); connectors get top-level keys that are connector configs
(connectorBaseConfig keeps ``allConfigNames()``) and ``<source>-><target>.`` keys. Anything else
at top level is silently ignored: a top-level ``offset.flush.interval.ms`` was, on real MM2, until
the renderer prefixed it with the target alias.
"""

from __future__ import annotations

import example_data as helpers

from checkout_operator.render import mirrormaker

MM2_TOP_LEVEL = {"clusters", "config.providers"}
WORKER_PREFIXES = (
    "offset.storage",
    "config.storage",
    "status.storage",
    "key.converter",
    "value.converter",
    "header.converter",
    "task",
    "worker",
    "replication.policy",
    "config.providers.",
)
# Connector configs of MirrorSourceConfig / MirrorCheckpointConfig / MirrorHeartbeatConfig that
# the renderer uses (names as in Kafka's connector config docs).
CONNECTOR_CONFIGS = {
    "replication.policy.class",
    "emit.heartbeats.enabled",
    "emit.heartbeats.interval.seconds",
    "emit.checkpoints.enabled",
    "sync.group.offsets.enabled",
    "sync.topic.acls.enabled",
    "refresh.topics.interval.seconds",
    "refresh.groups.interval.seconds",
    "emit.checkpoints.interval.seconds",
    "sync.group.offsets.interval.seconds",
    "replication.factor",
    "checkpoints.topic.replication.factor",
    "heartbeats.topic.replication.factor",
    "offset-syncs.topic.replication.factor",
}
WORKER_ONLY = {"offset.flush.interval.ms", "bootstrap.servers"}


def _keys(text: str) -> list[str]:
    return [
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_every_rendered_key_reaches_mm2() -> None:
    region = helpers.example_region("eu-west-1")
    aliases = [a for a, _ in mirrormaker.bootstrap_secrets(region)]
    ignored = []
    for key in _keys(mirrormaker.properties(region)):
        scoped = any(key.startswith(f"{a}.") or key.startswith(f"{a}->") for a in aliases)
        if not (
            scoped
            or key in MM2_TOP_LEVEL
            or key in CONNECTOR_CONFIGS
            or key.startswith(WORKER_PREFIXES)
        ):
            ignored.append(key)
    assert ignored == []


def test_worker_only_settings_are_scoped_to_the_target() -> None:
    region = helpers.example_region("eu-west-1")
    keys = _keys(mirrormaker.properties(region))
    assert not WORKER_ONLY & set(keys)
    assert "eu-west-1.offset.flush.interval.ms" in keys
    assert "eu-west-1.bootstrap.servers" in keys
