"""The ``CheckoutRegion`` custom resource: one region of the checkout fleet.

A region runs the checkout services, holds the data of its home markets, pulls its peers'
events through MirrorMaker 2, probes its own health and names where its markets go when it fails.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, model_validator

from checkout_operator.api import edge as edge_api
from checkout_operator.api import meta
from checkout_operator.api.edge import EdgeSpec
from checkout_operator.api.meta import (
    DNS_LABEL,
    SET,
    ApiModel,
    Country,
    Jurisdiction,
    RegionName,
    RuleViolation,
    SecretKeyRef,
    SecureURL,
    cel_rules,
    rule,
)
from checkout_operator.api.networkpolicy import NetworkPolicySpec
from checkout_operator.api.pricing import PricingSpec
from checkout_operator.api.status import CheckoutRegionStatus

KIND: Final = "CheckoutRegion"
PLURAL: Final = "checkoutregions"

QUANTITY: Final = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class HomeMarket(ApiModel):
    """A market (country) whose write-primary this region is, and where its data may live."""

    country: Country
    """ISO 3166-1 alpha-2 code, e.g. ``NL``."""
    allowed_jurisdictions: tuple[Jurisdiction, ...] = Field(
        default=(), max_length=8, json_schema_extra=SET
    )
    """Jurisdictions besides this region's own that may hold the market's data (and so may
    take over its writes on failover or replicate it). Empty: only this region's jurisdiction."""

    @model_validator(mode="after")
    def _distinct(self) -> HomeMarket:
        meta.require_distinct(self.allowed_jurisdictions, ["allowedJurisdictions"], "jurisdiction")
        return self


class RemoteCluster(ApiModel):
    """Deploy the region's children into another cluster instead of the CR's own namespace."""

    kubeconfig_secret_ref: SecretKeyRef
    """Secret key holding a kubeconfig for the remote cluster."""
    namespace: str = Field(pattern=DNS_LABEL, max_length=63)
    """Namespace in the remote cluster that receives the children."""
    lease_kubeconfig_secret_ref: SecretKeyRef | None = None
    """Secret key (in the remote namespace) holding a kubeconfig for the management cluster,
    with which the region's orders, inventory, payments and gateway keep and follow the
    market write Leases in this CheckoutRegion's namespace (it needs list and watch on
    ``leases`` there, and get and patch on the fleet's market Leases). Unset: the
    region's services write by the fleet routing ConfigMap alone, without write leases."""


class ResourceList(ApiModel):
    """CPU and memory quantities, e.g. ``250m`` and ``256Mi``."""

    cpu: str | None = Field(default=None, pattern=QUANTITY, max_length=32)
    """CPU quantity (cores, or millicores with ``m``)."""
    memory: str | None = Field(default=None, pattern=QUANTITY, max_length=32)
    """Memory quantity (bytes, or with a suffix such as ``Mi``/``Gi``)."""


class Resources(ApiModel):
    """Container resource requests and limits."""

    requests: ResourceList = ResourceList(cpu="100m", memory="128Mi")
    """What the scheduler reserves for each pod."""
    limits: ResourceList = ResourceList(memory="512Mi")
    """The most each pod may use (no CPU limit by default: throttling hurts p95)."""


class Autoscaling(ApiModel):
    """Horizontal pod autoscaling on CPU. When enabled the HPA owns the replica count."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            rule(
                "self.maxReplicas >= self.minReplicas",
                "maxReplicas must be >= minReplicas",
                ".maxReplicas",
            )
        )
    }

    enabled: bool = True
    """Render a HorizontalPodAutoscaler (and leave Deployment replicas to it)."""
    min_replicas: int = Field(default=2, ge=1, le=1000)
    """Fewest pods the autoscaler keeps."""
    max_replicas: int = Field(default=6, ge=1, le=1000)
    """Most pods the autoscaler may run."""
    target_cpu_percent: int = Field(default=70, ge=1, le=100)
    """Average CPU utilization (percent of requests) the autoscaler aims for."""

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise RuleViolation(["maxReplicas"], "maxReplicas must be >= minReplicas")
        return self


class ServiceSpec(ApiModel):
    """How one checkout service runs."""

    replicas: int = Field(default=2, ge=1, le=1000)
    """Pod count when autoscaling is disabled."""
    resources: Resources = Resources()
    """Requests and limits of the service container."""
    autoscaling: Autoscaling = Autoscaling()
    """Autoscaling of the service."""


class ServicesSpec(ApiModel):
    """The checkout services of the region: one image, per-service sizing."""

    image: str = Field(min_length=1, max_length=512)
    """Container image of the checkout services (all services share it)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Kubernetes image pull policy."""
    cart: ServiceSpec = ServiceSpec()
    """The cart service."""
    pricing: ServiceSpec = ServiceSpec()
    """The pricing, tax and shipping quote service."""
    inventory: ServiceSpec = ServiceSpec()
    """The stock reservation service."""
    payments: ServiceSpec = ServiceSpec()
    """The payments service (PSP routing, authorize/capture)."""
    orders: ServiceSpec = ServiceSpec()
    """The order saga service."""
    gateway: ServiceSpec = ServiceSpec()
    """The API gateway: the region's only entry point from outside."""

    def for_service(self, name: str) -> ServiceSpec:
        spec = getattr(self, name)
        assert isinstance(spec, ServiceSpec)
        return spec


class Tracing(ApiModel):
    """OpenTelemetry tracing of the region's services (off unless ``otlpEndpoint`` is set)."""

    otlp_endpoint: SecureURL | None = None
    """OTLP/HTTP endpoint of the collector, e.g. ``https://otel-collector.observability:4318``
    (becomes ``OTEL_EXPORTER_OTLP_ENDPOINT``; spans go to ``<endpoint>/v1/traces``). Spans
    carry request attributes, so ``https://`` without user information; plain ``http://``
    only to a loopback host (127.0.0.0/8, ``::1``, ``localhost``: a node-local agent)."""
    sample_percent: int = Field(default=100, ge=0, le=100)
    """Share of new traces recorded; a request that arrives with a sampled trace context is
    always recorded (``parentbased_traceidratio``)."""


class Dependencies(ApiModel):
    """Where the region's backing services are; each address comes from a Secret key."""

    postgres: SecretKeyRef
    """PostgreSQL URL (becomes ``DATABASE_URL``)."""
    redis: SecretKeyRef
    """Redis URL (becomes ``REDIS_URL``)."""
    kafka: SecretKeyRef
    """Kafka bootstrap servers of the region's own cluster (becomes ``KAFKA_BOOTSTRAP_SERVERS``)."""
    temporal: SecretKeyRef
    """Temporal frontend ``host:port`` (becomes ``TEMPORAL_ADDRESS``)."""


class ReplicationPeer(ApiModel):
    """A peer region whose Kafka this region pulls events from."""

    region: RegionName
    """The peer's ``spec.region``."""
    bootstrap_secret_ref: SecretKeyRef
    """Secret key holding the peer Kafka's bootstrap servers."""


class Replication(ApiModel):
    """MirrorMaker 2 replication into this region's Kafka from its peers (each region pulls,
    so a pair of regions that list each other replicates both ways)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            rule(
                "self.peers.all(p, self.peers.exists_one(q, q.region == p.region))",
                "peer regions must be distinct",
                ".peers",
            )
        )
    }

    mode: Literal["Strimzi", "Standalone"] = "Standalone"
    """Strimzi: a ``KafkaMirrorMaker2`` (kafka.strimzi.io/v1). Standalone: an MM2 properties
    ConfigMap plus a Deployment running MirrorMaker 2 in dedicated mode."""
    policy: Literal["Default", "Identity"] = "Default"
    """Default: replicated topics are prefixed ``<source>.`` (safe both ways). Identity: names
    are kept, which only works in one direction."""
    peers: tuple[ReplicationPeer, ...] = Field(default=(), max_length=32)
    """Regions to pull from."""
    topic_patterns: tuple[str, ...] = Field(
        default=(r"checkout\..*",), min_length=1, max_length=16, json_schema_extra=SET
    )
    """Regular expressions of the topics to replicate."""
    group_patterns: tuple[str, ...] = Field(
        default=(r"checkout-.*",), max_length=16, json_schema_extra=SET
    )
    """Regular expressions of the consumer groups whose offsets are translated (checkpoints)."""
    max_lag_on_failover: int = Field(default=100, ge=0)
    """Most messages a failover target may lag behind and still be promoted."""
    replication_factor: int = Field(default=3, ge=1, le=7)
    """Replication factor of replicated and internal MM2 topics, and of the region's own
    topics that the outbox relay creates (1 on a one-broker test)."""
    refresh_interval_seconds: int = Field(default=60, ge=1, le=3600)
    """How often MM2 looks for new topics and groups."""
    checkpoint_interval_seconds: int = Field(default=60, ge=1, le=3600)
    """How often MM2 emits checkpoints and writes the translated offsets of the replicated
    consumer groups into this region (``emit.checkpoints.interval.seconds``,
    ``sync.group.offsets.interval.seconds``): a group moved here re-reads at most the events
    of one interval."""
    offset_flush_interval_ms: int = Field(default=10000, ge=100, le=600000)
    """How often MM2 records how far it has replicated (``offset.flush.interval.ms``); the
    replication lag the operator reports is only this fresh."""
    image: str = Field(default="apache/kafka:4.1.0", min_length=1, max_length=512)
    """Kafka image that runs MirrorMaker 2 in Standalone mode."""

    @model_validator(mode="after")
    def _distinct(self) -> Replication:
        meta.require_distinct([p.region for p in self.peers], ["peers"], "peer region")
        return self


class HealthProbe(ApiModel):
    """How the operator probes the region's health."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            rule(
                "self.timeoutSeconds <= self.periodSeconds",
                "timeoutSeconds must be <= periodSeconds",
                ".timeoutSeconds",
            )
        )
    }

    path: str = Field(default="/health/ready", pattern=r"^/", max_length=256)
    """HTTP path on the region's gateway."""
    period_seconds: int = Field(default=10, ge=1, le=3600)
    """Seconds between probes."""
    timeout_seconds: int = Field(default=2, ge=1, le=3600)
    """Seconds before a probe counts as failed (Unknown)."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive failures before the region counts as down."""
    success_threshold: int = Field(default=2, ge=1, le=100)
    """Consecutive successes before a down region counts as up again."""

    @model_validator(mode="after")
    def _timeout(self) -> HealthProbe:
        if self.timeout_seconds > self.period_seconds:
            raise RuleViolation(["timeoutSeconds"], "timeoutSeconds must be <= periodSeconds")
        return self


class Failover(ApiModel):
    """Where the region's markets go when it fails, and how carefully."""

    targets: tuple[RegionName, ...] = Field(default=(), max_length=16, json_schema_extra=SET)
    """Regions to move the markets to, in order; the first healthy, legal one wins."""
    policy: Literal["Automatic", "Manual"] = "Automatic"
    """Automatic: move after failed probes. Manual: only on a spec edit."""
    failback: Literal["Manual", "Automatic"] = "Manual"
    """Whether markets move back home by themselves after the soak time."""
    soak_seconds: int = Field(default=600, ge=0)
    """How long the home region must stay healthy before an automatic failback."""
    min_dwell_seconds: int = Field(default=300, ge=0)
    """Least time between two moves of the same market (no flapping)."""
    write_lease_seconds: int = Field(default=15, ge=1, le=3600)
    """Duration of a writer's lease; a fenced writer stops at expiry."""
    drain: bool = False
    """Move the markets away now (planned switchover): drain, wait for lag 0, then flip."""
    dry_run: bool = False
    """Compute and show the plan of a move, without doing it."""
    accept_data_loss: bool = False
    """Allow promoting a target whose lag exceeds ``maxLagOnFailover``."""
    return_home: bool = False
    """Manual failback: while true, this region's markets that failed over move back here as
    soon as it is healthy again (``successThreshold`` probes), lag budget permitting."""

    @model_validator(mode="after")
    def _distinct(self) -> Failover:
        meta.require_distinct(self.targets, ["targets"], "failover target")
        return self


_SPEC_RULES = cel_rules(
    rule(
        "!has(self.failover) || !self.failover.targets.exists(t, t == self.region)",
        "a region never lists itself as a failover target",
        ".failover.targets",
    ),
    rule(
        "!has(self.replication) || !self.replication.peers.exists(p, p.region == self.region)",
        "a region never lists itself as a replication peer",
        ".replication.peers",
    ),
    rule(
        "self.homeMarkets.all(m, self.homeMarkets.exists_one(n, n.country == m.country))",
        "home markets must be distinct",
        ".homeMarkets",
    ),
    *(
        rule(
            f"has(self.edge) && has(self.edge.gateway) && has(self.edge.gateway.{field})",
            edge_api.required_claim_message(field),
            f".edge.gateway.{field}",
        )
        for field in edge_api.REQUIRED_CLAIMS
    ),
)


class CheckoutRegionSpec(ApiModel):
    """Desired state of one checkout region."""

    model_config = ApiModel.model_config | {"json_schema_extra": _SPEC_RULES}

    region: RegionName = Field(
        json_schema_extra=cel_rules(rule("self == oldSelf", "region is immutable"))
    )
    """The region's name, e.g. ``eu-west-1`` (immutable: it names topics and routes)."""
    fleet: str = Field(pattern=DNS_LABEL, max_length=63)
    """The fleet (set of regions that fail over and replicate among each other)."""
    jurisdiction: Jurisdiction
    """Legal area the region's data lives in, e.g. ``EU``, ``US``, ``IN``, ``BR``."""
    gateway_url: SecureURL
    """URL peers use to reach this region's gateway (they forward writes with the client's
    bearer token) and the operator probes its health at: ``https://`` without user
    information (e.g. the region's TLS load balancer or ingress); plain ``http://`` only to a
    loopback host (127.0.0.0/8, ``::1``, ``localhost``: fleets on one host, tests). Required:
    the gateway Service itself speaks plain http, so no default URL could carry a token."""
    home_markets: tuple[HomeMarket, ...] = Field(default=(), max_length=64)
    """Markets this region is the home write-primary of."""
    remote_cluster: RemoteCluster | None = None
    """Deploy the children into another cluster (default: this namespace)."""
    services: ServicesSpec
    """The checkout services of the region."""
    dependencies: Dependencies
    """PostgreSQL, Redis, Kafka and Temporal addresses (from Secrets)."""
    tracing: Tracing = Tracing()
    """OpenTelemetry tracing of the services (off by default)."""
    pricing: PricingSpec = PricingSpec()
    """Catalog prices, taxes, shipping, promotions and flags of the pricing service (rendered
    into the ConfigMap ``checkout-pricing``)."""
    replication: Replication = Replication()
    """MirrorMaker 2 replication from peer regions."""
    health_probe: HealthProbe = HealthProbe()
    """How the operator probes the region."""
    failover: Failover = Failover()
    """Failover targets and policy."""
    edge: EdgeSpec = EdgeSpec()
    """How customers' traffic reaches the region: Gateway API route, DNS records."""
    network_policy: NetworkPolicySpec = NetworkPolicySpec()
    """Ingress and egress of the services' NetworkPolicies (egress restricted by default)."""

    @model_validator(mode="after")
    def _rules(self) -> CheckoutRegionSpec:
        for index, target in enumerate(self.failover.targets):
            if target == self.region:
                raise RuleViolation(
                    ["failover", "targets", index],
                    "a region never lists itself as a failover target",
                )
        for index, peer in enumerate(self.replication.peers):
            if peer.region == self.region:
                raise RuleViolation(
                    ["replication", "peers", index, "region"],
                    "a region never lists itself as a replication peer",
                )
        meta.require_distinct([m.country for m in self.home_markets], ["homeMarkets"], "market")
        for field in edge_api.REQUIRED_CLAIMS:
            if getattr(self.edge.gateway, field) is None:
                raise RuleViolation(
                    ["edge", "gateway", field], edge_api.required_claim_message(field)
                )
        return self

    def namespace_for(self, cr_namespace: str) -> str:
        """Where the children go."""
        return self.remote_cluster.namespace if self.remote_cluster else cr_namespace


class CheckoutRegion(ApiModel):
    """One region of a multi-region checkout: its services, data residency, replication and
    failover."""

    api_version: Literal["checkout-operator.io/v1alpha1"] = meta.API_VERSION
    """``checkout-operator.io/v1alpha1``."""
    kind: Literal["CheckoutRegion"] = KIND
    """``CheckoutRegion``."""
    metadata: meta.ObjectMeta
    """Standard object metadata."""
    spec: CheckoutRegionSpec
    """Desired state."""
    status: CheckoutRegionStatus | None = None
    """Observed state, written by the operator."""
