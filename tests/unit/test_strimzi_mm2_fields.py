"""Every field of the rendered KafkaMirrorMaker2 (and of our schema of it) is in Strimzi's v1 API.

The table below is Strimzi's API as its Java model declares it (the CRD is generated from these
classes; ``@JsonPropertyOrder`` lists every property, ``@RequiredInVersions("v1+")`` /
``@PresentInVersions`` say which API versions have it). Read from strimzi/strimzi-kafka-operator,
``api/src/main/java/io/strimzi/api/kafka/model/``, Strimzi 1.x (the ``v1`` API, where
``spec.clusters``, ``spec.connectCluster``, ``mirrors[].sourceCluster/targetCluster`` and
``mirrors[].heartbeatConnector`` are gone):

* ``mirrormaker2/KafkaMirrorMaker2Spec.java`` (extends ``connect/AbstractKafkaConnectSpec``)
* ``mirrormaker2/KafkaMirrorMaker2TargetClusterSpec.java``
  (extends ``KafkaMirrorMaker2ClusterSpec``)
* ``mirrormaker2/KafkaMirrorMaker2MirrorSpec.java``
* ``mirrormaker2/KafkaMirrorMaker2ConnectorSpec.java`` (extends ``connector/AbstractConnectorSpec``)
* the container template of ``KafkaConnectTemplate`` (``template.connectContainer``, which
  Strimzi's own tests read as ``getSpec().getTemplate().getConnectContainer()`` for MM2) with
  ``ContainerEnvVar`` (``name``, ``value``, ``valueFrom.secretKeyRef|configMapKeyRef``)
* forbidden ``config`` prefixes of a cluster spec: the CRD's description of ``config``
  (``packaging/install/cluster-operator/048-Crd-kafkamirrormaker2.yaml``).
"""

from __future__ import annotations

import json
from typing import Any

import example_data as helpers
import pytest

from checkout_operator.render import mirrormaker

CLUSTER = {"alias", "bootstrapServers", "tls", "authentication", "config"}
CONNECTOR = {"tasksMax", "config", "state", "autoRestart"}
CONTAINER = {"env", "securityContext", "volumeMounts"}
STRIMZI_V1: dict[str, set[str]] = {
    "": {"apiVersion", "kind", "metadata", "spec", "status"},
    ".metadata": {"name", "namespace", "labels", "annotations"},
    ".spec": {
        "version",
        "replicas",
        "image",
        "target",
        "mirrors",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "jvmOptions",
        "jmxOptions",
        "logging",
        "clientRackInitImage",
        "rack",
        "metricsConfig",
        "tracing",
        "template",
    },
    ".spec.target": CLUSTER
    | {"groupId", "configStorageTopic", "statusStorageTopic", "offsetStorageTopic"},
    ".spec.mirrors[]": {
        "source",
        "sourceConnector",
        "checkpointConnector",
        "topicsPattern",
        "topicsExcludePattern",
        "groupsPattern",
        "groupsExcludePattern",
    },
    ".spec.mirrors[].source": CLUSTER,
    ".spec.mirrors[].sourceConnector": CONNECTOR,
    ".spec.mirrors[].checkpointConnector": CONNECTOR,
    ".spec.template": {
        "podSet",
        "pod",
        "apiService",
        "headlessService",
        "connectContainer",
        "initContainer",
        "podDisruptionBudget",
        "serviceAccount",
        "clusterRoleBinding",
        "jmxSecret",
    },
    ".spec.template.connectContainer": CONTAINER,
    ".spec.template.connectContainer.env[]": {"name", "value", "valueFrom"},
    ".spec.template.connectContainer.env[].valueFrom": {"secretKeyRef", "configMapKeyRef"},
    ".spec.template.connectContainer.env[].valueFrom.secretKeyRef": {"name", "key", "optional"},
}
# free-form maps: their keys are Kafka/Connect settings, not Strimzi fields
FREE_FORM = {
    ".metadata.labels",
    ".metadata.annotations",
    ".spec.target.config",
    ".spec.mirrors[].source.config",
    ".spec.mirrors[].sourceConnector.config",
    ".spec.mirrors[].checkpointConnector.config",
}
FORBIDDEN_CLUSTER_CONFIG = (
    "ssl.",
    "sasl.",
    "security.",
    "listeners",
    "plugin.path",
    "rest.",
    "bootstrap.servers",
    "consumer.interceptor.classes",
    "producer.interceptor.classes",
)


def _paths(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(parent path, key) of every key in the object, lists marked with []."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if path in FREE_FORM:
            return out
        for key, value in node.items():
            out.append((path, key))
            out += _paths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            out += _paths(item, f"{path}[]")
    return out


def _schema_paths(node: dict[str, Any], path: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if path in FREE_FORM:
        return out
    for key, sub in node.get("properties", {}).items():
        out.append((path, key))
        out += _schema_paths(sub, f"{path}.{key}")
    if "items" in node:
        out += _schema_paths(node["items"], f"{path}[]")
    return out


def _rendered() -> dict[str, Any]:
    return mirrormaker.strimzi(helpers.example_region("eu-central-1"), "shop")


@pytest.mark.parametrize("where", ["rendered", "schema"])
def test_every_field_exists_in_strimzi_v1(where: str) -> None:
    if where == "rendered":
        paths = _paths(_rendered())
    else:
        schema = json.loads(
            (helpers.ROOT / "tests" / "data" / "schemas" / "kafkamirrormaker2-v1.json").read_text()
        )
        paths = _schema_paths(schema)
    assert paths
    unknown = [f"{parent}.{key}" for parent, key in paths if key not in STRIMZI_V1.get(parent, ())]
    assert unknown == []


def test_removed_v1beta2_fields_are_refused_by_the_table() -> None:
    for parent, key in [
        (".spec", "clusters"),
        (".spec", "connectCluster"),
        (".spec.mirrors[]", "sourceCluster"),
        (".spec.mirrors[]", "heartbeatConnector"),
    ]:
        assert key not in STRIMZI_V1[parent]


def test_cluster_config_avoids_keys_strimzi_manages() -> None:
    obj = _rendered()
    configs = [obj["spec"]["target"].get("config", {})]
    configs += [m["source"].get("config", {}) for m in obj["spec"]["mirrors"]]
    keys = [k for c in configs for k in c]
    assert [k for k in keys if k.startswith(FORBIDDEN_CLUSTER_CONFIG)] == []
