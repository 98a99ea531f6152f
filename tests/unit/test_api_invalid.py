"""A table of invalid CRs: each is rejected, naming the field, by the pydantic models (what the
CLI and the operator use) AND by the generated CRD schema plus its CEL rules (what the
apiserver uses at admission)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import crdcheck
import example_data as helpers
import pytest

from checkout_operator.api import crd, load

Doc = dict[str, Any]
CRDS = crd.all_crds()


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """Mutation that sets a dotted path (``a.b[0].c``) to ``value`` (``...`` deletes it)."""

    def mutate(doc: Doc) -> None:
        parts: list[str | int] = []
        for token in path.replace("]", "").replace("[", ".").split("."):
            parts.append(int(token) if token.isdigit() else token)
        node: Any = doc
        for part in parts[:-1]:
            node = node[part]
        if value is ...:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return mutate


REGION = "eu-west-1"
ROUTE = "us-cards"

# Every URL field of the API (credentials, card data or spans go there): https, or http to a
# loopback host only, never user information (checkout_contract.urls).
URL_FIELDS: list[tuple[str, str]] = [
    (ROUTE, "spec.providers[0].endpoint"),
    (REGION, "spec.gatewayUrl"),
    (REGION, "spec.tracing.otlpEndpoint"),
    (REGION, "spec.edge.gateway.jwksUrl"),
]
BAD_URLS: list[tuple[str, str]] = [
    ("http", "http://psp.example.com/v1"),
    ("http-loopback-lookalike", "http://127.0.0.1.example.com"),
    ("http-localhost-lookalike", "http://localhost.example.com:8080"),
    ("http-private-ip", "http://10.0.0.7:8080"),
    ("userinfo", "https://user:secret@psp.example.com"),
    ("userinfo-no-password", "https://token@psp.example.com"),
    ("http-loopback-userinfo", "http://user:pw@127.0.0.1:9"),
    ("no-host", "https:///v1"),
    ("space", "https://psp.example.com/a b"),
]
URL_CASES: list[tuple[str, str, Callable[[Doc], None], str]] = [
    (f"{field.rsplit('.', 1)[-1]}-{name}", base, _set(field, url), field)
    for base, field in URL_FIELDS
    for name, url in BAD_URLS
]

# (case id, base example, mutation, expected path prefix)
CASES: list[tuple[str, str, Callable[[Doc], None], str]] = [
    ("unknown-spec-field", REGION, _set("spec.colour", "blue"), "spec.colour"),
    ("region-missing", REGION, _set("spec.region", ...), "spec.region"),
    ("region-bad-name", REGION, _set("spec.region", "EU_West"), "spec.region"),
    ("jurisdiction-lowercase", REGION, _set("spec.jurisdiction", "eu"), "spec.jurisdiction"),
    (
        "market-not-iso",
        REGION,
        _set("spec.homeMarkets[0].country", "NLD"),
        "spec.homeMarkets[0].country",
    ),
    ("market-twice", REGION, _set("spec.homeMarkets[1]", {"country": "NL"}), "spec.homeMarkets"),
    (
        "allowed-jurisdiction-lowercase",
        REGION,
        _set("spec.homeMarkets[0].allowedJurisdictions", ["eu"]),
        "spec.homeMarkets[0].allowedJurisdictions[0]",
    ),
    (
        "failover-to-itself",
        REGION,
        _set("spec.failover.targets", ["eu-central-1", "eu-west-1"]),
        "spec.failover.targets",
    ),
    (
        "failover-target-twice",
        REGION,
        _set("spec.failover.targets", ["eu-central-1", "eu-central-1"]),
        "spec.failover.targets",
    ),
    (
        "failover-policy-unknown",
        REGION,
        _set("spec.failover.policy", "Sometimes"),
        "spec.failover.policy",
    ),
    ("failback-unknown", REGION, _set("spec.failover.failback", "Never"), "spec.failover.failback"),
    (
        "write-lease-zero",
        REGION,
        _set("spec.failover.writeLeaseSeconds", 0),
        "spec.failover.writeLeaseSeconds",
    ),
    (
        "failure-threshold-zero",
        REGION,
        _set("spec.healthProbe.failureThreshold", 0),
        "spec.healthProbe.failureThreshold",
    ),
    (
        "success-threshold-zero",
        REGION,
        _set("spec.healthProbe.successThreshold", 0),
        "spec.healthProbe.successThreshold",
    ),
    (
        "probe-timeout-over-period",
        REGION,
        _set("spec.healthProbe.timeoutSeconds", 30),
        "spec.healthProbe.timeoutSeconds",
    ),
    (
        "probe-path-relative",
        REGION,
        _set("spec.healthProbe.path", "health"),
        "spec.healthProbe.path",
    ),
    (
        "autoscaling-max-below-min",
        REGION,
        _set("spec.services.payments.autoscaling.maxReplicas", 2),
        "spec.services.payments.autoscaling.maxReplicas",
    ),
    (
        "replicas-not-a-number",
        REGION,
        _set("spec.services.cart", {"replicas": "three"}),
        "spec.services.cart.replicas",
    ),
    (
        "cpu-not-a-quantity",
        REGION,
        _set("spec.services.cart", {"resources": {"requests": {"cpu": "lots"}}}),
        "spec.services.cart.resources.requests.cpu",
    ),
    (
        "unknown-service",
        REGION,
        _set("spec.services.search", {"replicas": 2}),
        "spec.services.search",
    ),
    ("image-missing", REGION, _set("spec.services.image", ...), "spec.services.image"),
    (
        "peer-is-itself",
        REGION,
        _set("spec.replication.peers[0].region", "eu-west-1"),
        "spec.replication.peers",
    ),
    (
        "peer-twice",
        REGION,
        lambda d: d["spec"]["replication"]["peers"].append(
            copy.deepcopy(d["spec"]["replication"]["peers"][0])
        ),
        "spec.replication.peers",
    ),
    (
        "replication-policy-unknown",
        REGION,
        _set("spec.replication.policy", "Mirror"),
        "spec.replication.policy",
    ),
    (
        "replication-mode-unknown",
        REGION,
        _set("spec.replication.mode", "Docker"),
        "spec.replication.mode",
    ),
    (
        "no-topic-pattern",
        REGION,
        _set("spec.replication.topicPatterns", []),
        "spec.replication.topicPatterns",
    ),
    ("redis-missing", REGION, _set("spec.dependencies.redis", ...), "spec.dependencies.redis"),
    (
        "secret-key-missing",
        REGION,
        _set("spec.dependencies.postgres", {"name": "pg"}),
        "spec.dependencies.postgres.key",
    ),
    (
        "secret-value-inline",
        REGION,
        _set("spec.dependencies.postgres.value", "postgres://u:p@h/db"),
        "spec.dependencies.postgres.value",
    ),
    ("gateway-url-not-http", REGION, _set("spec.gatewayUrl", "ftp://gw"), "spec.gatewayUrl"),
    # required: the gateway Service speaks plain http, so no default could carry a bearer token
    ("gateway-url-missing", REGION, _set("spec.gatewayUrl", ...), "spec.gatewayUrl"),
    (
        "remote-namespace-invalid",
        REGION,
        _set("spec.remoteCluster.namespace", "Check_Out"),
        "spec.remoteCluster.namespace",
    ),
    (
        "tracing-endpoint-not-http",
        REGION,
        _set("spec.tracing.otlpEndpoint", "otel-collector:4317"),
        "spec.tracing.otlpEndpoint",
    ),
    (
        "tracing-sample-over-100",
        REGION,
        _set("spec.tracing.samplePercent", 101),
        "spec.tracing.samplePercent",
    ),
    (
        "pricing-sku-twice",
        REGION,
        _set("spec.pricing.catalog[1].sku", "tee"),
        "spec.pricing.catalog",
    ),
    (
        "pricing-currency-twice",
        REGION,
        lambda d: d["spec"]["pricing"]["catalog"][0]["prices"].append(
            {"currency": "EUR", "amount": 1}
        ),
        "spec.pricing.catalog[0].prices",
    ),
    (
        "pricing-amount-negative",
        REGION,
        _set("spec.pricing.catalog[0].prices[0].amount", -1),
        "spec.pricing.catalog[0].prices[0].amount",
    ),
    (
        "pricing-tax-country-twice",
        REGION,
        _set("spec.pricing.tax[1].country", "NL"),
        "spec.pricing.tax",
    ),
    (
        "pricing-tax-kind-unknown",
        REGION,
        _set("spec.pricing.tax[0].kind", "excise"),
        "spec.pricing.tax[0].kind",
    ),
    (
        "pricing-promotion-flag-unknown",
        REGION,
        _set("spec.pricing.promotions[0].flag", "promo.nope"),
        "spec.pricing.promotions",
    ),
    (
        "pricing-shipping-option-twice",
        REGION,
        _set("spec.pricing.shipping[0].options[1].id", "standard"),
        "spec.pricing.shipping[0].options",
    ),
    ("no-providers", ROUTE, _set("spec.providers", []), "spec.providers"),
    (
        "provider-type-unknown",
        ROUTE,
        _set("spec.providers[0].type", "paypal"),
        "spec.providers[0].type",
    ),
    ("provider-names-twice", ROUTE, _set("spec.providers[1].name", "stripe-us"), "spec.providers"),
    (
        "weighted-all-zero",
        ROUTE,
        lambda d: (
            d["spec"].update(strategy="weighted"),
            [p.update(weight=0) for p in d["spec"]["providers"]],
        ),
        "spec.providers",
    ),
    (
        "hard-decline-retried",
        ROUTE,
        _set("spec.retry[1].action", "next_provider"),
        "spec.retry[1].action",
    ),
    ("fraud-retried", ROUTE, _set("spec.retry[2].action", "retry_same"), "spec.retry[2].action"),
    ("retry-class-twice", ROUTE, _set("spec.retry[4].failure", "timeout"), "spec.retry"),
    (
        "retry-class-unknown",
        ROUTE,
        _set("spec.retry[0].failure", "declined"),
        "spec.retry[0].failure",
    ),
    ("currency-not-iso", ROUTE, _set("spec.match.currencies", ["usd"]), "spec.match.currencies[0]"),
    ("timeout-zero", ROUTE, _set("spec.providers[0].timeoutMs", 0), "spec.providers[0].timeoutMs"),
    # api names the API carrying a payment-method type (upi, ideal, pix), never a provider API's
    ("api-on-stripe", ROUTE, _set("spec.providers[0].api", "adyen"), "spec.providers[0].api"),
    (
        "endpoint-no-scheme",
        ROUTE,
        _set("spec.providers[0].endpoint", "api.stripe.com"),
        "spec.providers[0].endpoint",
    ),
    (
        "api-key-inline",
        ROUTE,
        _set("spec.providers[0].apiKey", "sk_live_x"),
        "spec.providers[0].apiKey",
    ),
    (
        "breaker-rate-over-100",
        ROUTE,
        _set("spec.circuitBreaker.failureRatePercent", 101),
        "spec.circuitBreaker.failureRatePercent",
    ),
    ("priority-negative", ROUTE, _set("spec.priority", -1), "spec.priority"),
    ("strategy-unknown", ROUTE, _set("spec.strategy", "random"), "spec.strategy"),
    ("region-name-invalid", ROUTE, _set("spec.regions", ["US East"]), "spec.regions[0]"),
    # every region runs the gateway, which does not start without an issuer and an audience
    ("issuer-missing", REGION, _set("spec.edge.gateway.issuer", ...), "spec.edge.gateway.issuer"),
    (
        "audience-missing",
        REGION,
        _set("spec.edge.gateway.audience", ...),
        "spec.edge.gateway.audience",
    ),
    ("edge-missing", REGION, _set("spec.edge", ...), "spec.edge.gateway.issuer"),
    ("gateway-missing", REGION, _set("spec.edge.gateway", ...), "spec.edge.gateway.issuer"),
    *URL_CASES,
]


def _broken(base: str, mutate: Callable[[Doc], None]) -> Doc:
    doc = copy.deepcopy(helpers.example_docs()[base])
    mutate(doc)
    return doc


def _crd_for(doc: Doc) -> dict[str, Any]:
    plural = "checkoutregions" if doc["kind"] == "CheckoutRegion" else "psproutes"
    return CRDS[f"{plural}.checkout-operator.io.yaml"]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "base", "mutate", "path"), CASES, ids=[c[0] for c in CASES])
def test_models_reject_naming_the_field(
    case: str, base: str, mutate: Callable[[Doc], None], path: str
) -> None:
    with pytest.raises(load.InvalidObject) as exc:
        load.parse(_broken(base, mutate))
    paths = [e.path for e in exc.value.errors]
    assert any(p.startswith(path) for p in paths), (case, exc.value.errors)
    assert "sk_live" not in str(exc.value)
    assert "u:p@h" not in str(exc.value)


@pytest.mark.parametrize(("case", "base", "mutate", "path"), CASES, ids=[c[0] for c in CASES])
def test_crd_schema_and_cel_reject_naming_the_field(
    case: str, base: str, mutate: Callable[[Doc], None], path: str
) -> None:
    doc = _broken(base, mutate)
    found = crdcheck.problems(_crd_for(doc), doc)
    assert any(p.startswith(path) for p, _ in found), (case, found)


def test_region_name_is_immutable_by_a_transition_rule() -> None:
    old = helpers.example_docs()[REGION]
    new = _broken(REGION, _set("spec.region", "eu-west-2"))
    found = crdcheck.problems(_crd_for(new), new, old=old)
    assert [p for p, _ in found] == ["spec.region"]
    assert "immutable" in found[0][1]
    assert crdcheck.problems(_crd_for(old), old, old=old) == []


def test_every_example_passes_schema_and_cel() -> None:
    for name, doc in helpers.example_docs().items():
        assert crdcheck.problems(_crd_for(doc), doc) == [], name
        load.parse(doc)


GOOD_URLS = [
    "https://psp.example.com",
    "https://psp.example.com:8443/v1?x=1",
    "https://[2001:db8::1]:443/v1",
    "http://127.0.0.1:12111",
    "http://127.9.8.7/sim/eu",
    "http://[::1]:8080",
    "http://localhost:4318",
]


@pytest.mark.parametrize(("base", "field"), URL_FIELDS)
@pytest.mark.parametrize("url", GOOD_URLS)
def test_https_and_loopback_http_pass_both_checks(base: str, field: str, url: str) -> None:
    doc = _broken(base, _set(field, url))
    assert crdcheck.problems(_crd_for(doc), doc) == []
    load.parse(doc)


@pytest.mark.parametrize(("base", "field"), URL_FIELDS)
def test_url_errors_never_quote_the_url(base: str, field: str) -> None:
    doc = _broken(base, _set(field, "https://user:hunter2@psp.example.com"))
    with pytest.raises(load.InvalidObject) as exc:
        load.parse(doc)
    assert "hunter2" not in str(exc.value)
    assert "user information" in str(exc.value)
