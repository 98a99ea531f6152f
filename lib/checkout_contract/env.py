"""The environment variables of the service pods: the operator renders them, the services read
them. One constant per name; neither side spells a name as a string literal."""

from __future__ import annotations

from typing import Final

REGION: Final = "CHECKOUT_REGION"
SERVICE: Final = "CHECKOUT_SERVICE"
REGION_CONFIG_FILE: Final = "REGION_CONFIG_FILE"
"""Path of the region config (:mod:`checkout_contract.config`)."""
FLEET_ROUTING_FILE: Final = "FLEET_ROUTING_FILE"
"""Path of the fleet routing (:mod:`checkout_contract.routing`)."""
PSP_ROUTING_FILE: Final = "PSP_ROUTING_FILE"
"""Path of the PSP routing (:mod:`checkout_contract.payments`), payments pods only."""
PRICING_CONFIG_FILE: Final = "PRICING_CONFIG_FILE"
"""Path of the pricing config (:mod:`checkout_contract.pricing`), pricing pods only."""
DATABASE_URL: Final = "DATABASE_URL"
REDIS_URL: Final = "REDIS_URL"
KAFKA_BOOTSTRAP_SERVERS: Final = "KAFKA_BOOTSTRAP_SERVERS"
"""Kafka bootstrap servers of the region's own cluster (the operator once rendered
``KAFKA_BOOTSTRAP`` while the services read this name; one constant now)."""
TEMPORAL_ADDRESS: Final = "TEMPORAL_ADDRESS"
GATEWAY_KEY: Final = "CHECKOUT_GATEWAY_KEY"
"""The key the gateway signs the principal with (orders and cart verify it), from a Secret."""
LEASE_NAMESPACE: Final = "CHECKOUT_LEASE_NAMESPACE"
"""Namespace of the market write Leases on the management cluster (unset: no lease check)."""
LEASE_KUBECONFIG: Final = "CHECKOUT_LEASE_KUBECONFIG"
"""A kubeconfig for the management cluster (unset: the pod's service account)."""
OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
TRACES_SAMPLER: Final = "OTEL_TRACES_SAMPLER"
TRACES_SAMPLER_ARG: Final = "OTEL_TRACES_SAMPLER_ARG"
