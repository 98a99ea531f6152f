"""The region config file, rendered by the operator into the ConfigMap ``checkout-region``.

Every checkout service of a region mounts it (key ``region.json``) at the path in
``REGION_CONFIG_FILE``. It holds no secret: credentials come from env vars filled from the
Secrets that the CheckoutRegion references (``DATABASE_URL``, ``REDIS_URL``, ...).
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from checkout_contract.model import ConfigModel

CONFIGMAP_NAME: Final = "checkout-region"
CONFIG_KEY: Final = "region.json"
DEFAULT_MOUNT_DIR: Final = "/etc/checkout/region"

SERVICE_NAMES: Final = ("cart", "pricing", "inventory", "payments", "orders", "gateway")
"""The services a region runs: one Deployment + Service ``checkout-<name>`` each."""

SERVICE_PORT: Final = 8080
"""The one port a service listens on: its API, ``/health/*`` and ``/metrics``."""


class KafkaTopics(ConfigModel):
    """Base names of the event topics. What each holds and how far it may be replicated (and
    whether the name carries the market, ``checkout.order-placed.NL``) is in
    :mod:`checkout_contract.classification`."""

    order_placed: str = "checkout.order-placed"
    payment_captured: str = "checkout.payment-captured"
    fulfillment_requested: str = "checkout.fulfillment-requested"
    payment_capture_failed_dlq: str = "checkout.dlq.payment-capture-failed"
    reservation_expired_dlq: str = "checkout.dlq.reservation-expired"
    customers: str = "checkout.customers"
    """Compacted, keyed by customer id: profiles; a tombstone erases (GDPR)."""
    stock_deltas: str = "checkout.stock-deltas"
    """Aggregate: every stock movement of the region (mirrored to every region)."""
    inventory_divergence: str = "checkout.inventory-divergence"
    """Aggregate: a region's global stock view disagrees with a peer's after quiescence."""


class RegionConfig(ConfigModel):
    region: str
    fleet: str
    jurisdiction: str
    home_markets: tuple[str, ...]
    """ISO 3166-1 alpha-2 markets this region is the configured home (write-primary) of."""
    endpoints: dict[str, str]
    """Service name -> base URL of that service inside the region (e.g. ``http://checkout-payments:8080``)."""
    topics: KafkaTopics = KafkaTopics()
    kafka_replication_factor: int = Field(default=3, ge=1, le=7)
    """Replication factor of the region's topics, which the outbox relay creates at start
    (layouts in ``common/topics.py``); 1 on a one-broker test cluster."""
    temporal_namespace: str = "default"
    temporal_task_queue: str = "checkout"
