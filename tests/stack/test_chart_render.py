"""`helm lint` / `helm template` of charts/checkout-operator with the real helm binary.

Every rendered built-in object validates against the official Kubernetes JSON schemas in strict
mode (kubernetes-validate, offline), for the default values and with every option on; the
ServiceMonitor, PodMonitor and PrometheusRule against the Prometheus Operator's own CRDs
(tests/data/crds/prometheus-operator, openapi-schema-validator, unknown fields refused).
values.schema.json rejects bad values.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import openapi_schema_validator
import pytest
import yaml

import crd_schemas
from checkout_operator.cli import main as cli_main
from checkout_operator.reconcile import runtime

from . import operator_support as sup

pytestmark = pytest.mark.stack

CHART = sup.ROOT / "charts" / "checkout-operator"
KUBE_VERSION = "1.34.0"
SERVICE_MONITOR_SCHEMA = json.loads(
    (sup.ROOT / "tests" / "data" / "schemas" / "servicemonitor-v1.json").read_text()
)
PROMETHEUS_OPERATOR = sup.ROOT / "tests" / "data" / "crds" / "prometheus-operator"
MONITORING = {
    kind: openapi_schema_validator.OAS30Validator(
        crd_schemas.crd_schema(PROMETHEUS_OPERATOR / f"{plural}.monitoring.coreos.com.yaml", "v1")
    )
    for kind, plural in [
        ("ServiceMonitor", "servicemonitors"),
        ("PodMonitor", "podmonitors"),
        ("PrometheusRule", "prometheusrules"),
    ]
}
ALL_ON = (
    "--set", "serviceMonitor.enabled=true", "--set", "grafanaDashboard.enabled=true",
    "--set", "verbose=true", "--set", "image.digest=sha256:" + "a" * 64,
    "--set", "maxConcurrentReconciles=3", "--set", "failover.enabled=false",
    "--set", "monitoring.podMonitor.enabled=true",
    "--set", "monitoring.prometheusRule.enabled=true",
    "--set", "monitoring.podMonitor.labels.release=kube-prometheus-stack",
    "--set", "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    "--set", "monitoring.podMonitor.metricRelabelings[0].action=drop",
    "--set", "monitoring.podMonitor.metricRelabelings[0].sourceLabels[0]=__name__",
    "--set", "monitoring.podMonitor.metricRelabelings[0].regex=python_gc_.*",
    "--set", "extraArgs={--failover-tick=1}",
    "--set", "extraEnv[0].name=HTTPS_PROXY", "--set", "extraEnv[0].value=http://proxy:3128",
    "--set", "leaderElection.leaseName=checkout-leader",
    "--set", "topologySpreadConstraints[0].maxSkew=1",
    "--set", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
    "--set", "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    "--set", "priorityClassName=system-cluster-critical",
)  # fmt: skip
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
ONE_NAMESPACE = ("--set", "watch.allNamespaces=false", "--set", "watch.namespaces={shop,shop-eu}")


def run_helm(helm_bin: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin), *args], capture_output=True, text=True, check=False, timeout=60
    )


def template(helm_bin: pathlib.Path, *values: str) -> list[dict[str, Any]]:
    done = run_helm(
        helm_bin, "template", "co", str(CHART), "--namespace", "ops", "--include-crds", *values
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("values", [(), ALL_ON, ONE_NAMESPACE], ids=["default", "all-on", "ns"])
def test_lint_is_clean(helm_bin: pathlib.Path, values: tuple[str, ...]) -> None:
    done = run_helm(helm_bin, "lint", "--strict", str(CHART), *values)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout, done.stdout
    assert "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("values", [(), ALL_ON, ONE_NAMESPACE], ids=["default", "all-on", "ns"])
def test_rendered_objects_are_valid_kubernetes(
    helm_bin: pathlib.Path, values: tuple[str, ...]
) -> None:
    docs = template(helm_bin, *values)
    checked = 0
    for doc in docs:
        if doc["kind"] in MONITORING:
            MONITORING[doc["kind"]].validate(doc)
            if doc["kind"] == "ServiceMonitor":
                jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        checked += 1
    kinds = {d["kind"] for d in docs}
    assert {
        "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment",
        "PodDisruptionBudget", "Role", "RoleBinding",
    } <= kinds  # fmt: skip
    assert (kinds >= MONITORING_KINDS) == (values == ALL_ON)
    assert not (MONITORING_KINDS & kinds) or values == ALL_ON
    assert checked == len(docs)


def test_service_monitor_schema_would_catch_a_typo() -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


def test_crds_in_the_chart_are_the_top_level_crds(helm_bin: pathlib.Path) -> None:
    rendered = sorted(
        (d for d in template(helm_bin) if d["kind"] == "CustomResourceDefinition"),
        key=lambda d: d["metadata"]["name"],
    )
    top = sorted((sup.ROOT / "crds").glob("*.yaml"))
    assert len(rendered) == len(top) == 2
    for path, crd in zip(top, rendered, strict=True):
        meta = crd["metadata"]
        # kept on uninstall (deleting a CRD deletes every object of it), labelled as the chart's
        assert meta.pop("annotations") == {"helm.sh/resource-policy": "keep"}
        labels = meta.pop("labels")
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        top_crd = yaml.safe_load(path.read_text())
        assert top_crd["metadata"].pop("labels").items() <= labels.items()
        assert top_crd == crd, path.name
        # byte-identical copies (regenerate both with `make crds`)
        assert (CHART / "files" / "crds" / path.name).read_bytes() == path.read_bytes()
    # helm's own crds/ folder would be installed once and never upgraded: not used
    assert not (CHART / "crds").exists()
    off = template(helm_bin, "--set", "crds.create=false")
    assert not by_kind(off, "CustomResourceDefinition")


def test_deployment_is_hardened_and_runs_the_operator(helm_bin: pathlib.Path) -> None:
    (dep,) = by_kind(template(helm_bin), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsUser"] == 10001
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9090, "health": 8081}
    assert container["args"] == [
        "run", "--all-namespaces", "--metrics-port=9090", "--health-port=8081",
        "--drift-interval=60", "--max-concurrent-reconciles=8",
        "--leader-elect", "--leader-election-id=co-checkout-operator",
        "--leader-election-namespace=ops", "--lease-duration=15", "--lease-retry=2",
    ]  # fmt: skip
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        for e in container["env"]
    }
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    # the operator's own parser accepts them, and they are its defaults
    parsed = cli_main.build_parser().parse_args(container["args"])
    assert parsed.max_concurrent_reconciles == runtime.DEFAULT_MAX_CONCURRENT
    assert parsed.no_failover is False
    assert parsed.leader_elect is True
    assert (parsed.lease_duration, parsed.lease_retry) == (15, 2)
    assert container["image"] == "ghcr.io/checkout-operator/checkout-operator:0.1.0"
    # HA: two replicas, one leads; surge first so a rollout always keeps a standby
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }  # fmt: skip
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = dep["spec"]["selector"]["matchLabels"]
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels


def test_ha_objects_and_options_follow_the_values(helm_bin: pathlib.Path) -> None:
    docs = template(helm_bin, *ALL_ON)
    (dep,) = by_kind(docs, "Deployment")
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": dep["spec"]["selector"]}
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][-1] == "--failover-tick=1"
    assert "--leader-election-id=checkout-leader" in container["args"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    parsed = cli_main.build_parser().parse_args(container["args"])
    assert parsed.failover_tick == 1
    (role,) = [
        r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")
    ]
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "resourceNames": ["checkout-leader"], "verbs": ["get", "patch"],
        },
    ]  # fmt: skip
    (monitor,) = by_kind(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    ports = {p["name"] for p in container["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    # user-set affinity and security contexts replace the defaults
    custom = template(
        helm_bin, "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].key=pool",
        "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
        "--set", "podSecurityContext.runAsUser=20002",
        "--set", "containerSecurityContext.runAsUser=20002",
        "--set", "replicaCount=3", "--set", "podDisruptionBudget.enabled=false",
    )  # fmt: skip
    (dep,) = by_kind(custom, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert set(pod["affinity"]) == {"nodeAffinity"}
    assert pod["securityContext"]["runAsUser"] == 20002
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 20002
    assert dep["spec"]["replicas"] == 3
    assert not by_kind(custom, "PodDisruptionBudget")
    for doc in custom:
        if doc["kind"] == "Deployment":
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    # one replica without election: no Lease flags, no Role
    single = template(helm_bin, "--set", "replicaCount=1", "--set", "leaderElection.enabled=false")
    (dep,) = by_kind(single, "Deployment")
    assert not [a for a in dep["spec"]["template"]["spec"]["containers"][0]["args"] if "lease" in a]
    assert not by_kind(single, "Role")


def test_aggregated_roles_let_view_read_and_edit_change_the_two_kinds(
    helm_bin: pathlib.Path,
) -> None:
    roles = {r["metadata"]["name"]: r for r in by_kind(template(helm_bin), "ClusterRole")}
    view, edit = roles["co-checkout-operator-view"], roles["co-checkout-operator-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    (rule,) = edit["rules"]
    assert set(rule["resources"]) == {"checkoutregions", "psproutes"}  # not status
    assert {"patch", "update"} <= set(rule["verbs"])
    (rule,) = view["rules"]
    assert set(rule["verbs"]) == {"get", "list", "watch"}
    off = template(helm_bin, "--set", "rbac.aggregateClusterRoles=false")
    assert not [r for r in by_kind(off, "ClusterRole") if "aggregate" in str(r["metadata"])]


@pytest.mark.parametrize("values_file", [False, True], ids=["set", "values-file"])
def test_concurrency_and_failover_values_reach_the_operators_args(
    helm_bin: pathlib.Path, tmp_path: pathlib.Path, values_file: bool
) -> None:
    overrides: tuple[str, ...] = (
        "--set", "maxConcurrentReconciles=1000000", "--set", "failover.enabled=false",
    )  # fmt: skip
    if values_file:  # numbers from a YAML file arrive as floats: still rendered as an integer
        path = tmp_path / "values.yaml"
        path.write_text("maxConcurrentReconciles: 1000000\nfailover:\n  enabled: false\n")
        overrides = ("--values", str(path))
    (dep,) = by_kind(template(helm_bin, *overrides), "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--max-concurrent-reconciles=1000000" in args
    assert "--no-failover" in args
    parsed = cli_main.build_parser().parse_args(args)
    assert parsed.max_concurrent_reconciles == 1000000
    assert parsed.no_failover is True
    # failover on (the default) renders no flag
    (dep,) = by_kind(template(helm_bin, "--set", "failover.enabled=true"), "Deployment")
    assert "--no-failover" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_watched_namespaces_get_role_bindings_not_a_cluster_binding(
    helm_bin: pathlib.Path,
) -> None:
    docs = template(helm_bin, *ONE_NAMESPACE)
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["run", "--namespace=shop", "--namespace=shop-eu"]
    bindings = [b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["shop", "shop-eu"]
    assert {b["roleRef"]["name"] for b in bindings} == {"co-checkout-operator"}
    (cluster_binding,) = by_kind(docs, "ClusterRoleBinding")  # only kopf's framework needs
    assert cluster_binding["roleRef"]["name"] == "co-checkout-operator-framework"
    framework = next(
        r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-framework")
    )
    assert {res for rule in framework["rules"] for res in rule["resources"]} == {
        "customresourcedefinitions",
        "namespaces",
    }


def _roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(docs, "ClusterRole") + by_kind(docs, "Role")


def _secret_rules(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (r, rule) for r in _roles(docs) for rule in r["rules"] if "secrets" in rule["resources"]
    ]


SECRETS_CLUSTER = ("--set", "rbac.remoteClusterSecrets.scope=cluster")


def test_rbac_grants_no_wildcards_and_no_secret_listing(helm_bin: pathlib.Path) -> None:
    for values in ((), ONE_NAMESPACE, SECRETS_CLUSTER):
        for role in _roles(template(helm_bin, *values)):
            if role["metadata"]["name"].endswith(("-view", "-edit")):
                continue  # aggregated into users' roles (test_aggregated_roles_...)
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], rule
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"], rule
                assert not {"escalate", "bind", "impersonate", "update"} & set(rule["verbs"])
                # the operator may change only its own lease Roles and RoleBindings
                if {"roles", "rolebindings"} & set(rule["resources"]):
                    if {"patch", "delete"} & set(rule["verbs"]):
                        assert rule["resourceNames"] == ["checkout-leases", "checkout-leases-read"]
                    else:
                        assert set(rule["verbs"]) == {"list", "create"}, rule


def test_secret_access_is_per_watched_namespace_unless_asked_for(helm_bin: pathlib.Path) -> None:
    """Issue 18 #1: the defaults let the operator get every Secret of the cluster."""
    # all namespaces watched, nothing asked for: no Secret access anywhere
    assert _secret_rules(template(helm_bin)) == []
    # watched namespaces: one Role + RoleBinding each, nothing cluster-wide
    docs = template(helm_bin, *ONE_NAMESPACE)
    rules = _secret_rules(docs)
    assert sorted(r["metadata"]["namespace"] for r, _ in rules) == ["shop", "shop-eu"]
    assert {r["kind"] for r, _ in rules} == {"Role"}
    bindings = [
        b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["name"].endswith("-kubeconfigs")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["shop", "shop-eu"]
    assert all(b["roleRef"]["kind"] == "Role" for b in bindings)
    assert all(b["subjects"][0]["name"] == "co-checkout-operator" for b in bindings)
    # all namespaces + named extra namespaces and Secret names
    docs = template(
        helm_bin,
        "--set", "rbac.remoteClusterSecrets.namespaces={fleet}",
        "--set", "rbac.remoteClusterSecrets.names={eu-kubeconfig,us-kubeconfig}",
    )  # fmt: skip
    ((role, rule),) = _secret_rules(docs)
    assert (role["kind"], role["metadata"]["namespace"]) == ("Role", "fleet")
    assert rule["resourceNames"] == ["eu-kubeconfig", "us-kubeconfig"]
    # cluster-wide only when asked for
    docs = template(helm_bin, *SECRETS_CLUSTER)
    ((role, _),) = _secret_rules(docs)
    assert role["kind"] == "ClusterRole"
    assert any(b["roleRef"]["name"] == role["metadata"]["name"]
               for b in by_kind(docs, "ClusterRoleBinding"))  # fmt: skip


def test_optional_rbac_rules_follow_the_values(helm_bin: pathlib.Path) -> None:
    docs = template(
        helm_bin,
        *ONE_NAMESPACE,
        "--set", "rbac.strimzi=false", "--set", "rbac.remoteClusterSecrets.scope=none",
    )  # fmt: skip
    role = next(
        r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "co-checkout-operator"
    )
    resources = {res for rule in role["rules"] for res in rule["resources"]}
    assert _secret_rules(docs) == []
    assert "kafkamirrormaker2s" not in resources
    assert "deployments" in resources


def test_dashboard_config_map_holds_the_dashboard(helm_bin: pathlib.Path) -> None:
    docs = template(helm_bin, *ALL_ON)
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["checkout-operator.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "checkout-operator.json").read_text())
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (service,) = by_kind(docs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (("--set", "image.pullPolicy=Sometimes"), "/image/pullPolicy"),
        (("--set", "metrics.port=70000"), "/metrics/port"),
        (("--set", "watch.allNamespaces=false"), "/watch/namespaces"),
        (("--set", "watch.namespaces={Not_A_Namespace}"), "/watch/namespaces"),
        (("--set", "driftInterval=0"), "/driftInterval"),
        (("--set", "maxConcurrentReconciles=0"), "/maxConcurrentReconciles"),
        (("--set", "maxConcurrentReconciles=2.5"), "/maxConcurrentReconciles"),
        (("--set", "failover.enabled=maybe"), "/failover/enabled"),
        (("--set", "failover.enable=false"), "enable"),
        (("--set", "serviceMonitor.interval=soon"), "/serviceMonitor/interval"),
        (("--set", "resources.requests.memory=lots"), "/resources/requests/memory"),
        (("--set", "image.digest=latest"), "/image/digest"),
        (("--set", "replicas=2"), "replicas"),
        (("--set", "leaderElection.enabled=false"), "/replicaCount"),
        (("--set", "leaderElection.leaseDuration=1"), "/leaderElection/leaseDuration"),
        (("--set", "crds.create=maybe"), "/crds/create"),
        (("--set", "extraArgs={run}"), "/extraArgs/0"),
        (("--set", "monitoring.podMonitor.interval=often"), "/monitoring/podMonitor/interval"),
        (("--set", "monitoring.prometheusRule.probeFailureRatio=2"), "probeFailureRatio"),
        (("--set", "readinessProbe.periodSecond=5"), "periodSecond"),
        (("--set", "rbac.remoteClusterSecrets.scope=everywhere"), "scope"),
        (("--set", "rbac.remoteClusterSecrets=true"), "remoteClusterSecrets"),
    ],
)
def test_schema_rejects_bad_values(
    helm_bin: pathlib.Path, values: tuple[str, ...], complaint: str
) -> None:
    for command in ("lint", "template"):
        args = ["lint", str(CHART)] if command == "lint" else ["template", "co", str(CHART)]
        done = run_helm(helm_bin, *args, *values)
        assert done.returncode != 0, (command, values, done.stdout)
        assert complaint in done.stdout + done.stderr, (command, done.stdout + done.stderr)
