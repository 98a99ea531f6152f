"""Issue 18 item 3, pure: card numbers are found in the forms the application decodes them into
(each of these passed the filter on 56b6d7f), ids with dot segments are refused."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import TypeAdapter, ValidationError

from checkout_services.common import ids, pan, scrub
from checkout_services.common.outbox import enqueue
from checkout_services.orders import service as orders_service
from checkout_services.orders.schemas import CheckoutId, Sku

PAN = "4000056655665556"
FULL_WIDTH = PAN.translate({ord("0") + d: 0xFF10 + d for d in range(10)})
"""The PAN in full-width digits (U+FF10..U+FF19), which NFKC and ``int()`` read as ASCII."""


@pytest.mark.parametrize(
    "text",
    [
        "4000.0566.5566.5556",
        "4000  0566  5566  5556",
        "4000_0566_5566_5556",
        "4000/0566/5566/5556",
        "4000:0566:5566:5556",
        FULL_WIDTH,
        "card " + FULL_WIDTH[:8] + " " + FULL_WIDTH[8:],
        "1 4000 0566 5566 5556",
    ],
)
def test_grouped_and_unicode_digits_are_found(text: str) -> None:
    assert pan.find_pan(text) is not None
    masked = scrub.scrub_text(text)
    assert PAN not in masked, masked
    assert "5566" not in masked.replace("****5556", ""), masked


def test_parsed_json_escapes_numbers_and_keys() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in PAN)
    body = json.loads(f'{{"promo_code": "{escaped}"}}')
    assert scrub.pan_field(body) == "promo_code"
    assert scrub.pan_field(json.loads(f'{{"n": {PAN}}}')) == "n"
    assert scrub.pan_field(json.loads('{"n": 4.000056655665556e15}')) == "n"
    assert scrub.pan_field({PAN: 1}) == "<key>"
    assert scrub.pan_field({"a": [{"b": FULL_WIDTH}]}) == "a[0].b"
    assert scrub.scrub_value({"n": 4.000056655665556e15})["n"] == scrub.REDACTED
    assert scrub.pan_field({"ts": 1733580000000, "price": 19.99, "id": "co-2026-12-07"}) is None


def test_query_strings_are_decoded_like_the_app_does() -> None:
    for query in (
        "q=" + "+".join([PAN[:4], PAN[4:8], PAN[8:12], PAN[12:]]),
        "q=" + "".join(f"%{b:02X}" for b in PAN.encode()),
        "q=" + "".join(f"%{b:02X}" for b in FULL_WIDTH.encode()),
        "q=4000.0566.5566.5556",
    ):
        assert pan.query_pan_field(query) == "query.q", query
    assert pan.query_pan_field(PAN + "=1") == "query.<name>"
    assert pan.query_pan_field("limit=10&cursor=abc") is None


def test_deep_json_is_too_deep_not_a_recursion_error() -> None:
    deep: object = "x"
    for _ in range(pan.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(pan.TooDeep):
        pan.pan_field(deep)


def test_log_records_mask_float_and_unicode_card_numbers(caplog: pytest.LogCaptureFixture) -> None:
    scrub.install_logging()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("t").info("x %s %s %s", 4.000056655665556e15, FULL_WIDTH, "a.b")
    finally:
        scrub.uninstall_logging()
    assert "5566" not in caplog.text, caplog.text
    assert FULL_WIDTH[8:12] not in caplog.text, caplog.text


def test_ids_refuse_card_numbers_before_they_become_workflow_ids_or_keys() -> None:
    with pytest.raises(scrub.CardNumberRefused):
        orders_service.workflow_id("4000.0566.5566.5556")
    assert orders_service.workflow_id("co-1") == "checkout-co-1"


async def test_outbox_keys_are_checked_before_any_database_call() -> None:
    with pytest.raises(scrub.CardNumberRefused):
        await enqueue(None, topic="t", event_type="ORDER_PLACED", key=PAN, data={})  # type: ignore[arg-type]


@pytest.mark.parametrize("adapter", [TypeAdapter(Sku), TypeAdapter(CheckoutId)])
def test_identifiers_may_not_be_dot_segments(adapter: TypeAdapter[str]) -> None:
    for bad in (".", ".."):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    for good in ("a.b", ".x", "x..", "v1.2-3"):
        assert adapter.validate_python(good) == good
    assert ids.SKU != ids.ID


def test_headers_are_scanned_except_credentials_and_signatures() -> None:
    def field(name: bytes, value: bytes) -> str | None:
        return scrub._head_pan_field({"path": "/v1/x", "headers": [(name, value)]})

    assert field(b"idempotency-key", PAN.encode()) == "header.idempotency-key"
    assert field(b"x-client-ref", FULL_WIDTH.encode()) == "header.x-client-ref"  # UTF-8 bytes
    assert field(b"x-request-id", b"4000.0566.5566.5556") == "header.x-request-id"
    for name in (
        b"authorization",
        b"cookie",
        b"traceparent",
        b"sim-signature",
        b"stripe-signature",
    ):
        assert field(name, PAN.encode()) is None, name
