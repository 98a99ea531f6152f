"""MirrorMaker 2: each region pulls its peers' events into its own Kafka.

Two forms, the same flows:

* Strimzi: one ``KafkaMirrorMaker2`` at ``kafka.strimzi.io/v1`` (``spec.target`` is this region's
  Kafka, one ``spec.mirrors[]`` entry per peer with source and checkpoint connectors).
* Standalone: an ``mm2.properties`` ConfigMap plus a Deployment running MirrorMaker 2 in
  dedicated mode (``connect-mirror-maker.sh mm2.properties --clusters <region>``).

Residency: every flow into the region excludes (``topics.exclude`` / ``topicsExcludePattern``)
the personal and payment topics of the markets the region may not hold, and the local-only
topics, by name (:mod:`checkout_contract.classification`: market-scoped topics are
``<base>.<MARKET>``). A negative lookahead keeps only the allowed markets, so a market the
fleet does not know is excluded too (fail closed). Aggregates flow everywhere.

No replay of old rules: dedicated-mode MM2 runs the connector and task configs stored in
``mm2-configs.<peer>.internal`` (the previous topics, policy, residency excludes) before it
rewrites them, and MM2 4.1 takes that topic's name per target, not per flow (no settings hash in
it). So the pod's init container deletes the flows' config topics before MM2 starts; a settings
change changes the pod template's hash, hence a new pod. Positions (``mm2-offsets``), checkpoints
and offset-syncs stay: allowed topics resume without a gap and group offsets keep translating.

Bootstrap servers are never written into either: they come from env vars filled from the
Secrets the CheckoutRegion references, read through Kafka's ``EnvVarConfigProvider``
(``${env:KAFKA_BOOTSTRAP_<ALIAS>}``), so the same properties run unchanged in a test harness
that only sets those env vars.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from checkout_contract import classification
from checkout_operator.api import fleet as fleet_rules
from checkout_operator.api import residency
from checkout_operator.api.checkoutregion import CheckoutRegion, Replication
from checkout_operator.api.meta import SecretKeyRef
from checkout_operator.render import hashing, labels, pods

COMPONENT: Final = labels.MIRRORMAKER
NAME: Final = labels.child_name(COMPONENT)
PROPERTIES_KEY: Final = "mm2.properties"
PROPERTIES_DIR: Final = "/etc/mirrormaker2"
ENV_PROVIDER_CLASS: Final = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
POLICY_CLASSES: Final = {
    "Default": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
    "Identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
}


def bootstrap_env(alias: str) -> str:
    """``KAFKA_BOOTSTRAP_EU_WEST_1`` for ``eu-west-1``."""
    return "KAFKA_BOOTSTRAP_" + alias.upper().replace("-", "_").replace(".", "_")


def bootstrap_ref(alias: str) -> str:
    return "${env:" + bootstrap_env(alias) + "}"


def bootstrap_secrets(region: CheckoutRegion) -> list[tuple[str, SecretKeyRef]]:
    """(alias, secret key) of this region's Kafka and each peer's, sorted by alias."""
    own = (region.spec.region, region.spec.dependencies.kafka)
    peers = [(p.region, p.bootstrap_secret_ref) for p in region.spec.replication.peers]
    return sorted([own, *peers], key=lambda item: item[0])


def bootstrap_env_vars(region: CheckoutRegion) -> list[dict[str, Any]]:
    return [pods.env_from_secret(bootstrap_env(a), ref) for a, ref in bootstrap_secrets(region)]


DEFAULT_EXCLUDES: Final = (r".*[\-\.]internal", r".*\.replica", r"__.*")
"""MirrorMaker 2's own default ``topics.exclude`` (setting the key replaces it: keep them)."""
HEARTBEAT_SECONDS: Final = 5
JVM_PERFORMANCE_OPTS: Final = (
    "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"
)
"""The JVM flags of the standalone MM2 (``KAFKA_JVM_PERFORMANCE_OPTS``, which replaces the
scripts' G1 defaults). Serial GC: a heap of at most 512 MiB needs no concurrent collector threads.
C1 only (``TieredStopAtLevel=1``): measured on the demo stack, a third less CPU in the first
minute (9.3 vs 13.9 s) and 3.3 vs 4.7 % of a core idle, for slower code at high throughput, which
checkout events (small records, tens to hundreds a second per market) do not reach. Exit on OOM:
the Deployment restarts it instead of a half-dead JVM."""
_BASE: Final = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


def _members(region: CheckoutRegion, fleet: Sequence[CheckoutRegion]) -> list[CheckoutRegion]:
    members = {r.spec.region: r for r in fleet if r.spec.fleet == region.spec.fleet}
    members[region.spec.region] = region
    return [members[name] for name in sorted(members)]


def allowed_markets(region: CheckoutRegion, fleet: Sequence[CheckoutRegion]) -> list[str]:
    """The fleet's markets whose personal and payment data ``region`` may hold, sorted."""
    residencies = fleet_rules.market_residencies(_members(region, fleet))
    return residency.markets_allowed_in(residencies, region.spec.jurisdiction)


def _base_regex(base: str) -> str:
    assert _BASE.match(base), f"topic base {base!r} is not [a-z0-9.-]"
    return base.replace(".", r"\.")


def topic_excludes(region: CheckoutRegion, fleet: Sequence[CheckoutRegion]) -> list[str]:
    r"""The ``topics.exclude`` regexes of every flow into ``region`` (MM2 full-matches them).

    One per restricted topic family: ``(?:.+\.)?<base>(?!\.(?:DE|NL)$).*`` excludes every
    market but the allowed ones (and a replicated copy, ``<source>.<topic>``); with no allowed
    market, and for local-only topics, the whole family.
    """
    allowed = allowed_markets(region, fleet)
    out = list(DEFAULT_EXCLUDES)
    for family in classification.TOPICS:
        if family.scope == "fleet":
            continue
        base = _base_regex(family.base)
        if family.scope == "market" and allowed:
            out.append(rf"(?:.+\.)?{base}(?!\.(?:{'|'.join(allowed)})$).*")
        else:
            out.append(rf"(?:.+\.)?{base}.*")
    return out


def effective_topic_patterns(region: CheckoutRegion, fleet: Sequence[CheckoutRegion]) -> list[str]:
    """``spec.replication.topicPatterns`` with the residency excludes folded in (a negative
    lookahead): full-matched, they select exactly the topics MM2 replicates into ``region``,
    so replication lag is measured on those only (a topic residency keeps out never lags)."""
    exclude = "|".join(topic_excludes(region, fleet))
    return [f"(?!(?:{exclude})$)(?:{p})" for p in region.spec.replication.topic_patterns]


def _topics(replication: Replication) -> str:
    return ",".join(replication.topic_patterns)


def _groups(replication: Replication) -> str:
    return ",".join(replication.group_patterns)


def _escape(value: str) -> str:
    """Java properties treat ``\\`` as an escape: double it so regexes survive."""
    return value.replace("\\", "\\\\")


def properties(region: CheckoutRegion, fleet: Sequence[CheckoutRegion] = ()) -> str:
    """The dedicated-mode ``mm2.properties`` of the region (target = this region); ``fleet``
    holds the regions whose markets' residency decides the topic filters."""
    target = region.spec.region
    rep = region.spec.replication
    excludes = ",".join(topic_excludes(region, fleet))
    aliases = [alias for alias, _ in bootstrap_secrets(region)]
    rf = str(rep.replication_factor)
    lines = [
        f"# MirrorMaker 2 for region {target}: pulls from its peers into its own Kafka.",
        "# Rendered by checkout-operator; bootstrap servers come from env (Secrets).",
        "clusters = " + ", ".join(aliases),
        "config.providers = env",
        f"config.providers.env.class = {ENV_PROVIDER_CLASS}",
    ]
    lines += [f"{alias}.bootstrap.servers = {bootstrap_ref(alias)}" for alias in aliases]
    for peer in sorted(p.region for p in rep.peers):
        lines += [
            f"{peer}->{target}.enabled = true",
            f"{peer}->{target}.topics = {_escape(_topics(rep))}",
            f"{peer}->{target}.topics.exclude = {_escape(excludes)}",
            f"{peer}->{target}.groups = {_escape(_groups(rep))}",
            f"{target}->{peer}.enabled = false",
        ]
    lines += [
        f"replication.policy.class = {POLICY_CLASSES[rep.policy]}",
        "emit.heartbeats.enabled = true",
        # MM2's default is a heartbeat record per flow every second; every 5 s still shows a
        # live flow on the heartbeats topic well inside any alert window, at a fifth of the
        # produce/replicate work an idle region pays for it.
        f"emit.heartbeats.interval.seconds = {HEARTBEAT_SECONDS}",
        "emit.checkpoints.enabled = true",
        "sync.group.offsets.enabled = true",
        "sync.topic.acls.enabled = false",
        f"refresh.topics.interval.seconds = {rep.refresh_interval_seconds}",
        f"refresh.groups.interval.seconds = {rep.refresh_interval_seconds}",
        f"emit.checkpoints.interval.seconds = {rep.checkpoint_interval_seconds}",
        f"sync.group.offsets.interval.seconds = {rep.checkpoint_interval_seconds}",
        # A Connect worker setting: MirrorMakerConfig.workerConfig() takes only
        # `<target>.`-prefixed keys (and a few prefixes such as offset.storage*), so a
        # top-level offset.flush.interval.ms would be silently ignored (default 60 s).
        f"{target}.offset.flush.interval.ms = {rep.offset_flush_interval_ms}",
        f"replication.factor = {rf}",
        f"checkpoints.topic.replication.factor = {rf}",
        f"heartbeats.topic.replication.factor = {rf}",
        f"offset-syncs.topic.replication.factor = {rf}",
        f"offset.storage.replication.factor = {rf}",
        f"status.storage.replication.factor = {rf}",
        f"config.storage.replication.factor = {rf}",
    ]
    return "\n".join(lines) + "\n"


def properties_configmap(
    region: CheckoutRegion, namespace: str, fleet: Sequence[CheckoutRegion] = ()
) -> hashing.KubeObject:
    return hashing.with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": labels.metadata(NAME, namespace, region.spec.region, COMPONENT),
            "data": {PROPERTIES_KEY: properties(region, fleet)},
        }
    )


TOPICS_TOOL: Final = "/opt/kafka/bin/kafka-topics.sh"
TOOL_JVM_OPTS: Final = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"


def _jvm_env(heap: str, jvm_opts: str) -> list[dict[str, Any]]:
    """The env of a Kafka image's script: logs in the writable /tmp, heap and JVM flags."""
    return [
        pods.env_value("LOG_DIR", "/tmp/logs"),  # noqa: S108 (an emptyDir in the pod)
        pods.env_value("KAFKA_HEAP_OPTS", heap),
        pods.env_value("KAFKA_JVM_PERFORMANCE_OPTS", jvm_opts),
    ]


def config_topic(source: str) -> str:
    """The Connect config topic of the dedicated-mode flow ``source-><this region>``."""
    return f"mm2-configs.{source}.internal"


def config_topics_regex(region: CheckoutRegion) -> str:
    """A regex full-matching exactly the config topics of the flows into ``region``."""
    names = [config_topic(p.region).replace(".", r"\.") for p in region.spec.replication.peers]
    return "(?:" + "|".join(sorted(names)) + ")"


def clear_configs_container(region: CheckoutRegion) -> dict[str, Any]:
    """Init container: delete the flows' config topics so MM2 starts from its properties only.

    ``$(VAR)`` is expanded by the kubelet from the container's env (no shell in the command)."""
    tmp_mount = pods.tmp_volume()[1]
    own = region.spec.region
    return {
        "name": "clear-connect-configs",
        "image": region.spec.replication.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            TOPICS_TOOL,
            "--bootstrap-server",
            f"$({bootstrap_env(own)})",
            "--delete",
            "--if-exists",
            "--topic",
            config_topics_regex(region),
        ],
        "env": [
            pods.env_from_secret(bootstrap_env(own), region.spec.dependencies.kafka),
            *_jvm_env("-Xms32m -Xmx128m", TOOL_JVM_OPTS),
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "192Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": pods.container_security_context(),
        "volumeMounts": [tmp_mount],
    }


def standalone_deployment(
    region: CheckoutRegion, namespace: str, config_hash: str
) -> hashing.KubeObject:
    """One MirrorMaker 2 process in dedicated mode, driving only the flows into this region."""
    rep = region.spec.replication
    tmp_volume, tmp_mount = pods.tmp_volume()
    container = {
        "name": "mirrormaker2",
        "image": rep.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "/opt/kafka/bin/connect-mirror-maker.sh",
            f"{PROPERTIES_DIR}/{PROPERTIES_KEY}",
            "--clusters",
            region.spec.region,
        ],
        "env": [
            *bootstrap_env_vars(region),
            *_jvm_env("-Xms256m -Xmx512m", JVM_PERFORMANCE_OPTS),
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"memory": "768Mi"},
        },
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "properties", "mountPath": PROPERTIES_DIR, "readOnly": True},
            tmp_mount,
        ],
    }
    return hashing.with_spec_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": labels.metadata(NAME, namespace, region.spec.region, COMPONENT),
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": labels.selector(region.spec.region, COMPONENT)},
                # Two dedicated-mode processes for one target would both run the connectors.
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {
                        "labels": labels.labels(region.spec.region, COMPONENT),
                        "annotations": {labels.CONFIG_HASH_ANNOTATION: config_hash},
                    },
                    "spec": {
                        "serviceAccountName": NAME,
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security_context(),
                        "initContainers": [clear_configs_container(region)],
                        "containers": [container],
                        "volumes": [
                            {"name": "properties", "configMap": {"name": NAME}},
                            tmp_volume,
                        ],
                    },
                },
            },
        }
    )


def strimzi(
    region: CheckoutRegion, namespace: str, fleet: Sequence[CheckoutRegion] = ()
) -> hashing.KubeObject:
    """A Strimzi ``KafkaMirrorMaker2`` (``kafka.strimzi.io/v1``) with the same flows."""
    target = region.spec.region
    excludes = ",".join(topic_excludes(region, fleet))
    rep = region.spec.replication
    rf = rep.replication_factor
    policy = POLICY_CLASSES[rep.policy]
    mirrors = [
        {
            "source": {"alias": peer.region, "bootstrapServers": bootstrap_ref(peer.region)},
            "sourceConnector": {
                "tasksMax": 1,
                "config": {
                    "replication.policy.class": policy,
                    "replication.factor": rf,
                    "offset-syncs.topic.replication.factor": rf,
                    "sync.topic.acls.enabled": "false",
                    "refresh.topics.interval.seconds": rep.refresh_interval_seconds,
                },
            },
            "checkpointConnector": {
                "tasksMax": 1,
                "config": {
                    "replication.policy.class": policy,
                    "checkpoints.topic.replication.factor": rf,
                    "emit.checkpoints.enabled": "true",
                    "sync.group.offsets.enabled": "true",
                    "refresh.groups.interval.seconds": rep.refresh_interval_seconds,
                    "emit.checkpoints.interval.seconds": rep.checkpoint_interval_seconds,
                    "sync.group.offsets.interval.seconds": rep.checkpoint_interval_seconds,
                },
            },
            "topicsPattern": _topics(rep),
            "topicsExcludePattern": excludes,
            "groupsPattern": _groups(rep),
        }
        for peer in sorted(rep.peers, key=lambda p: p.region)
    ]
    return hashing.with_spec_hash(
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaMirrorMaker2",
            "metadata": labels.metadata(NAME, namespace, target, COMPONENT),
            "spec": {
                "replicas": 1,
                "target": {
                    "alias": target,
                    "bootstrapServers": bootstrap_ref(target),
                    "groupId": f"{NAME}-{target}",
                    "configStorageTopic": f"{NAME}-{target}-configs",
                    "offsetStorageTopic": f"{NAME}-{target}-offsets",
                    "statusStorageTopic": f"{NAME}-{target}-status",
                    "config": {
                        "config.providers": "env",
                        "config.providers.env.class": ENV_PROVIDER_CLASS,
                        "config.storage.replication.factor": rf,
                        "offset.storage.replication.factor": rf,
                        "status.storage.replication.factor": rf,
                        "offset.flush.interval.ms": rep.offset_flush_interval_ms,
                    },
                },
                "mirrors": mirrors,
                "template": {
                    "connectContainer": {"env": bootstrap_env_vars(region)},
                },
            },
        }
    )
