"""The chart's Grafana dashboard queries only metrics the operator exports."""

from __future__ import annotations

import json
import re

import example_data as helpers

from checkout_operator import metrics
from checkout_operator.replication import metrics as replication_metrics

# the replication gauges live on the operator's registry once their module is imported; import
# it here so the registry is complete whichever tests ran before
assert replication_metrics.REGISTRY is metrics.REGISTRY

DASHBOARD = json.loads(
    (helpers.ROOT / "charts/checkout-operator/dashboards/checkout-operator.json").read_text()
)
METRIC = re.compile(r"\b(checkout_operator_[a-z0-9_]+)")


def exported() -> set[str]:
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    for family in metrics.REGISTRY.collect():
        if family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
    return names


def exprs() -> list[str]:
    out = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    out += [v["definition"] for v in DASHBOARD["templating"]["list"] if "definition" in v]
    return out


def test_every_query_names_an_exported_metric() -> None:
    known = exported()
    used = {m for e in exprs() for m in METRIC.findall(e)}
    assert used, "the dashboard queries no operator metric"
    assert used <= known, used - known


def test_every_metric_family_has_a_panel() -> None:
    used = {m for e in exprs() for m in METRIC.findall(e)}
    families = {f.name for f in metrics.REGISTRY.collect()}
    for family in families:
        assert any(u.startswith(family) for u in used), f"no panel for {family}"


def test_panels_are_well_formed() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert DASHBOARD["uid"] == "checkout-operator"
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert 'job=~"$job"' in target["expr"], target["expr"]
