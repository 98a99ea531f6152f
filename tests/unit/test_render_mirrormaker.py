"""MirrorMaker 2: the standalone properties + Deployment, and the Strimzi v1 resource."""

from __future__ import annotations

import re

import example_data as helpers

from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import mirrormaker

EU_WEST_PROPERTIES = """\
# MirrorMaker 2 for region eu-west-1: pulls from its peers into its own Kafka.
# Rendered by checkout-operator; bootstrap servers come from env (Secrets).
clusters = eu-central-1, eu-west-1
config.providers = env
config.providers.env.class = org.apache.kafka.common.config.provider.EnvVarConfigProvider
eu-central-1.bootstrap.servers = ${env:KAFKA_BOOTSTRAP_EU_CENTRAL_1}
eu-west-1.bootstrap.servers = ${env:KAFKA_BOOTSTRAP_EU_WEST_1}
eu-central-1->eu-west-1.enabled = true
eu-central-1->eu-west-1.topics = checkout\\\\..*
eu-central-1->eu-west-1.topics.exclude = \
.*[\\\\-\\\\.]internal,.*\\\\.replica,__.*,\
(?:.+\\\\.)?checkout\\\\.order-placed(?!\\\\.(?:AT|DE|FR|IE|NL|PL)$).*,\
(?:.+\\\\.)?checkout\\\\.payment-captured(?!\\\\.(?:AT|DE|FR|IE|NL|PL)$).*,\
(?:.+\\\\.)?checkout\\\\.fulfillment-requested(?!\\\\.(?:AT|DE|FR|IE|NL|PL)$).*,\
(?:.+\\\\.)?checkout\\\\.customers(?!\\\\.(?:AT|DE|FR|IE|NL|PL)$).*,\
(?:.+\\\\.)?checkout\\\\.dlq\\\\.payment-capture-failed.*,\
(?:.+\\\\.)?checkout\\\\.dlq\\\\.reservation-expired.*
eu-central-1->eu-west-1.groups = checkout-.*
eu-west-1->eu-central-1.enabled = false
replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy
emit.heartbeats.enabled = true
emit.heartbeats.interval.seconds = 5
emit.checkpoints.enabled = true
sync.group.offsets.enabled = true
sync.topic.acls.enabled = false
refresh.topics.interval.seconds = 60
refresh.groups.interval.seconds = 60
emit.checkpoints.interval.seconds = 60
sync.group.offsets.interval.seconds = 60
eu-west-1.offset.flush.interval.ms = 10000
replication.factor = 3
checkpoints.topic.replication.factor = 3
heartbeats.topic.replication.factor = 3
offset-syncs.topic.replication.factor = 3
offset.storage.replication.factor = 3
status.storage.replication.factor = 3
config.storage.replication.factor = 3
"""


def _fleet() -> list[CheckoutRegion]:
    return helpers.example_objects()[0]


def test_standalone_properties_exact() -> None:
    got = mirrormaker.properties(helpers.example_region("eu-west-1"), _fleet())
    assert got == EU_WEST_PROPERTIES


def test_properties_escape_regex_backslashes_for_java_properties() -> None:
    # Java's Properties.load turns "\\\\" into "\\": the regex MM2 sees is checkout\..*
    line = next(
        x for x in EU_WEST_PROPERTIES.splitlines() if x.startswith("eu-central-1->eu-west-1.topics")
    )
    assert line.endswith("checkout\\\\..*")


def test_identity_policy_class() -> None:
    region = helpers.example_region("eu-west-1")
    identity = region.model_copy(
        update={
            "spec": region.spec.model_copy(
                update={
                    "replication": region.spec.replication.model_copy(update={"policy": "Identity"})
                }
            )
        }
    )
    assert (
        "replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
        in mirrormaker.properties(identity)
    )


def test_standalone_deployment_fills_bootstrap_env_from_secrets() -> None:
    got = mirrormaker.standalone_deployment(helpers.example_region("eu-west-1"), "shop", "h")
    pod = got["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == [
        "/opt/kafka/bin/connect-mirror-maker.sh",
        "/etc/mirrormaker2/mm2.properties",
        "--clusters",
        "eu-west-1",
    ]
    assert container["env"][:2] == [
        {
            "name": "KAFKA_BOOTSTRAP_EU_CENTRAL_1",
            "valueFrom": {
                "secretKeyRef": {"name": "eu-central-1-kafka-remote", "key": "bootstrap"}
            },
        },
        {
            "name": "KAFKA_BOOTSTRAP_EU_WEST_1",
            "valueFrom": {"secretKeyRef": {"name": "eu-west-1-kafka", "key": "bootstrap"}},
        },
    ]
    assert got["spec"]["strategy"] == {"type": "Recreate"}
    assert got["spec"]["replicas"] == 1
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["volumes"][0] == {
        "name": "properties",
        "configMap": {"name": "checkout-mirrormaker2"},
    }


def test_init_container_clears_exactly_the_flows_config_topics_before_mm2_starts() -> None:
    region = helpers.example_region("eu-west-1")
    pod = mirrormaker.standalone_deployment(region, "shop", "h")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == [
        "/opt/kafka/bin/kafka-topics.sh",
        "--bootstrap-server",
        "$(KAFKA_BOOTSTRAP_EU_WEST_1)",
        "--delete",
        "--if-exists",
        "--topic",
        r"(?:mm2-configs\.eu-central-1\.internal)",
    ]
    # the $(VAR) the kubelet expands is this region's own Kafka, from its Secret
    assert {
        "name": "KAFKA_BOOTSTRAP_EU_WEST_1",
        "valueFrom": {"secretKeyRef": {"name": "eu-west-1-kafka", "key": "bootstrap"}},
    } in init["env"]
    assert init["image"] == pod["containers"][0]["image"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    # kafka-topics.sh full-matches --topic as a regex: only config topics, never positions
    pattern = re.compile(mirrormaker.config_topics_regex(region))
    assert pattern.fullmatch("mm2-configs.eu-central-1.internal")
    for kept in (
        "mm2-offsets.eu-central-1.internal",
        "mm2-status.eu-central-1.internal",
        "eu-central-1.checkpoints.internal",
        "mm2-configs.eu-central-1xinternal",
        "mm2-configs.eu-west-1.internal",
    ):
        assert not pattern.fullmatch(kept), kept


def test_strimzi_v1_resource_exact_spec() -> None:
    got = mirrormaker.strimzi(helpers.example_region("eu-central-1"), "shop", _fleet())
    assert got["apiVersion"] == "kafka.strimzi.io/v1"
    assert got["kind"] == "KafkaMirrorMaker2"
    policy = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"
    assert got["spec"] == {
        "replicas": 1,
        "target": {
            "alias": "eu-central-1",
            "bootstrapServers": "${env:KAFKA_BOOTSTRAP_EU_CENTRAL_1}",
            "groupId": "checkout-mirrormaker2-eu-central-1",
            "configStorageTopic": "checkout-mirrormaker2-eu-central-1-configs",
            "offsetStorageTopic": "checkout-mirrormaker2-eu-central-1-offsets",
            "statusStorageTopic": "checkout-mirrormaker2-eu-central-1-status",
            "config": {
                "config.providers": "env",
                "config.providers.env.class": mirrormaker.ENV_PROVIDER_CLASS,
                "config.storage.replication.factor": 3,
                "offset.storage.replication.factor": 3,
                "status.storage.replication.factor": 3,
                "offset.flush.interval.ms": 10000,
            },
        },
        "mirrors": [
            {
                "source": {
                    "alias": "eu-west-1",
                    "bootstrapServers": "${env:KAFKA_BOOTSTRAP_EU_WEST_1}",
                },
                "sourceConnector": {
                    "tasksMax": 1,
                    "config": {
                        "replication.policy.class": policy,
                        "replication.factor": 3,
                        "offset-syncs.topic.replication.factor": 3,
                        "sync.topic.acls.enabled": "false",
                        "refresh.topics.interval.seconds": 60,
                    },
                },
                "checkpointConnector": {
                    "tasksMax": 1,
                    "config": {
                        "replication.policy.class": policy,
                        "checkpoints.topic.replication.factor": 3,
                        "emit.checkpoints.enabled": "true",
                        "sync.group.offsets.enabled": "true",
                        "refresh.groups.interval.seconds": 60,
                        "emit.checkpoints.interval.seconds": 60,
                        "sync.group.offsets.interval.seconds": 60,
                    },
                },
                "topicsPattern": "checkout\\..*",
                "topicsExcludePattern": ",".join(
                    [
                        r".*[\-\.]internal",
                        r".*\.replica",
                        r"__.*",
                        r"(?:.+\.)?checkout\.order-placed(?!\.(?:AT|DE|FR|IE|NL|PL)$).*",
                        r"(?:.+\.)?checkout\.payment-captured(?!\.(?:AT|DE|FR|IE|NL|PL)$).*",
                        r"(?:.+\.)?checkout\.fulfillment-requested(?!\.(?:AT|DE|FR|IE|NL|PL)$).*",
                        r"(?:.+\.)?checkout\.customers(?!\.(?:AT|DE|FR|IE|NL|PL)$).*",
                        r"(?:.+\.)?checkout\.dlq\.payment-capture-failed.*",
                        r"(?:.+\.)?checkout\.dlq\.reservation-expired.*",
                    ]
                ),
                "groupsPattern": "checkout-.*",
            }
        ],
        "template": {
            "connectContainer": {
                "env": [
                    {
                        "name": "KAFKA_BOOTSTRAP_EU_CENTRAL_1",
                        "valueFrom": {
                            "secretKeyRef": {"name": "eu-central-1-kafka", "key": "bootstrap"}
                        },
                    },
                    {
                        "name": "KAFKA_BOOTSTRAP_EU_WEST_1",
                        "valueFrom": {
                            "secretKeyRef": {"name": "eu-west-1-kafka-remote", "key": "bootstrap"}
                        },
                    },
                ]
            }
        },
    }
