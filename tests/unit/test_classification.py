"""One classification covers every topic, event type and table the services use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checkout_contract import classification
from checkout_contract.config import KafkaTopics

SERVICES = Path(__file__).resolve().parents[2] / "services" / "checkout_services"


def test_every_topic_of_the_region_config_is_classified() -> None:
    bases = {f.base for f in classification.TOPICS}
    assert set(KafkaTopics().model_dump().values()) == bases


def test_every_event_type_the_services_emit_is_classified() -> None:
    emitted = set()
    for path in SERVICES.rglob("*.py"):
        emitted |= set(re.findall(r'event_type="([A-Z_]+)"', path.read_text()))
    assert emitted, "no event_type= found: did the outbox call sites change?"
    assert emitted <= set(classification.EVENTS)


def test_every_table_of_every_migration_is_classified() -> None:
    tables = {"schema_migrations"}
    for path in SERVICES.rglob("migrations/*.sql"):
        tables |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", path.read_text()))
    assert tables == set(classification.TABLES)


def test_market_topics_carry_the_market() -> None:
    assert classification.topic_for("checkout.order-placed", "NL") == "checkout.order-placed.NL"
    assert classification.topic_for("checkout.stock-deltas") == "checkout.stock-deltas"
    with pytest.raises(classification.ClassificationError, match="per market"):
        classification.topic_for("checkout.order-placed")
    with pytest.raises(classification.ClassificationError, match="not a market"):
        classification.market_topic("checkout.order-placed", "nl")
    with pytest.raises(classification.ClassificationError, match="unclassified"):
        classification.of_event("SOMETHING_ELSE")


def test_classify_a_concrete_topic_and_its_replicated_copy() -> None:
    info = classification.classify_topic("eu-west-1.checkout.payment-captured.NL")
    assert info is not None
    assert (info.family.data_class, info.market) == ("payment", "NL")
    agg = classification.classify_topic("checkout.stock-deltas")
    assert agg is not None
    assert agg.family.data_class == "aggregate"
    assert not agg.family.restricted
    assert classification.classify_topic("checkout.orders-abc") is None


def test_personal_field_names() -> None:
    for name in ("email", "E-Mail", "shippingAddress", "postal_code", "firstName"):
        assert classification.is_personal_field(name), name
    for name in ("amount", "currency", "sku", "market"):
        assert not classification.is_personal_field(name), name
