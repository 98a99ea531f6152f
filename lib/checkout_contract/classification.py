"""What every event and table holds, in one place: personal data, payment data or aggregates.

Residency, replication and scrubbing all read this module (the operator imports it to render
MirrorMaker 2's topic filters; the services import it to name topics and to scrub):

* ``personal`` (PII): data about an identifiable person (customer id, e-mail, name, address, or
  a checkout that links to them). It may live only where the market's residency allows.
* ``payment``: payment data (amounts tied to a checkout, PSP references and tokens; never a card
  number, see :mod:`checkout_services.common.scrub`). Same residency as personal data.
* ``aggregate``: counters and stock without any person (stock deltas, divergence reports). May
  replicate to every region.

Topic naming carries the market so MirrorMaker 2 filters can select by name:

* ``market`` scope: ``<base>.<MARKET>``, e.g. ``checkout.order-placed.NL``. Replicated only into
  regions whose jurisdiction the market allows.
* ``fleet`` scope: ``<base>`` (one topic, no market): aggregates, replicated everywhere.
* ``local`` scope: ``<base>``, never replicated (the dead-letter topics: replayed where written).

A topic name that matches no entry is unclassified: the services never produce one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from checkout_contract.config import KafkaTopics

DataClass = Literal["personal", "payment", "aggregate"]
Scope = Literal["market", "fleet", "local"]

MARKET_RE: Final = re.compile(r"^[A-Z]{2}$")


class ClassificationError(ValueError):
    """An event type, topic or market the classification does not know."""


@dataclass(frozen=True, slots=True)
class TopicClass:
    """One topic family: its base name, what it holds, how far it may travel."""

    base: str
    data_class: DataClass
    scope: Scope
    events: tuple[str, ...]
    compacted: bool = False
    """Log-compacted, keyed by entity: a tombstone (null value) erases the key."""

    @property
    def restricted(self) -> bool:
        """Holds personal or payment data: may not leave the market's allowed jurisdictions."""
        return self.data_class != "aggregate"


_TOPICS = KafkaTopics()

TOPICS: Final[tuple[TopicClass, ...]] = (
    TopicClass(_TOPICS.order_placed, "personal", "market", ("ORDER_PLACED",)),
    TopicClass(_TOPICS.payment_captured, "payment", "market", ("PAYMENT_CAPTURED",)),
    TopicClass(_TOPICS.fulfillment_requested, "personal", "market", ("FULFILLMENT_REQUESTED",)),
    TopicClass(
        _TOPICS.customers,
        "personal",
        "market",
        ("CUSTOMER_UPSERTED", "CUSTOMER_ERASED"),  # CUSTOMER_ERASED: a tombstone (null value)
        compacted=True,
    ),
    TopicClass(_TOPICS.payment_capture_failed_dlq, "payment", "local", ("PAYMENT_CAPTURE_FAILED",)),
    TopicClass(_TOPICS.reservation_expired_dlq, "personal", "local", ("RESERVATION_EXPIRED",)),
    TopicClass(_TOPICS.stock_deltas, "aggregate", "fleet", ("STOCK_DELTA", "STOCK_CHECKPOINT")),
    TopicClass(_TOPICS.inventory_divergence, "aggregate", "fleet", ("INVENTORY_DIVERGENCE",)),
)
"""Every topic family the services produce to (a test checks each KafkaTopics field is here)."""

EVENTS: Final[dict[str, TopicClass]] = {e: t for t in TOPICS for e in t.events}
"""Event type -> its topic family."""

TABLES: Final[dict[str, DataClass]] = {
    # common
    "outbox": "personal",  # holds the events of every class until relayed: the strictest
    # orders
    "orders": "personal",
    "checkout_failures": "personal",
    "customers": "personal",
    "customer_replicas": "personal",
    "checkout_owners": "personal",  # a keyed hash of the principal: pseudonymous, still personal
    "erasures": "aggregate",  # a SHA-256 of the customer id and a time: no person
    # inventory
    "stock": "aggregate",
    "global_stock": "aggregate",
    "stock_applied": "aggregate",
    "stock_checkpoints": "aggregate",
    "reservations": "personal",
    # payments
    "payments": "payment",
    "psp_attempts": "payment",
    "webhook_events": "payment",
    # migrations bookkeeping
    "schema_migrations": "aggregate",
}
"""Every table of every service database (a test parses the migrations and checks each)."""

PERSONAL_FIELDS: Final = frozenset(
    {
        "email",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "phone",
        "address",
        "street",
        "line1",
        "line2",
        "postal_code",
        "zip",
        "city",
        "shipping_address",
        "billing_address",
        "ip",
        "ip_address",
        "date_of_birth",
        "birth_date",
    }
)
"""Field names (snake or camel case, compared lower case without ``_``) that hold PII."""

PERSONAL_FIELD_KEYS: Final = frozenset(f.replace("_", "") for f in PERSONAL_FIELDS)


def is_personal_field(name: str) -> bool:
    return name.replace("_", "").replace("-", "").lower() in PERSONAL_FIELD_KEYS


def of_event(event_type: str) -> TopicClass:
    try:
        return EVENTS[event_type]
    except KeyError:
        raise ClassificationError(f"unclassified event type {event_type!r}") from None


def of_base(base: str) -> TopicClass:
    for entry in TOPICS:
        if entry.base == base:
            return entry
    raise ClassificationError(f"unclassified topic {base!r}")


def market_topic(base: str, market: str) -> str:
    """``checkout.order-placed.NL``: the topic of a market-scoped family for ``market``."""
    if not MARKET_RE.match(market):
        raise ClassificationError(f"not a market (ISO 3166-1 alpha-2): {market!r}")
    return f"{base}.{market}"


def topic_for(base: str, market: str | None = None) -> str:
    """The topic an event of family ``base`` goes to (``market`` needed for market scope)."""
    entry = of_base(base)
    if entry.scope == "market":
        if market is None:
            raise ClassificationError(f"topic {base!r} is per market: give the market")
        return market_topic(base, market)
    return base


@dataclass(frozen=True, slots=True)
class TopicInfo:
    topic: str
    family: TopicClass
    market: str | None


def classify_topic(topic: str) -> TopicInfo | None:
    """The family (and market) of a concrete topic name; None if unclassified.

    A replicated copy (``<source>.<topic>`` under MM2's default policy) classifies like its
    original.
    """
    for entry in TOPICS:
        if entry.scope == "market":
            m = re.fullmatch(rf"(?:.+\.)?{re.escape(entry.base)}\.([A-Z]{{2}})", topic)
            if m:
                return TopicInfo(topic, entry, m.group(1))
        elif re.fullmatch(rf"(?:.+\.)?{re.escape(entry.base)}", topic):
            return TopicInfo(topic, entry, None)
    return None
