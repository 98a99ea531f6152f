"""What the gateway's OpenAPI document says about the bodies it passes on.

The gateway validates only what it routes on (a write's ``market``) and passes the body on
byte for byte (so the service's idempotency fingerprint is the client's); the services behind it
validate the rest and their 4xx problem answers come back unchanged. These schemas document the
public API and steer schemathesis towards requests that reach the services.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from checkout_services.common import errors

ID: Final = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._:-]+$"}
SKU: Final = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$"}
LINE: Final = {
    "type": "object",
    "required": ["sku", "quantity"],
    "properties": {"sku": SKU, "quantity": {"type": "integer", "minimum": 1, "maximum": 999}},
}

CHECKOUT: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["checkout_id", "market", "currency", "lines"],
    "properties": {
        "checkout_id": ID,
        "market": {
            "type": "string",
            "pattern": "^[A-Z]{2}$",
            "description": "ISO 3166-1 alpha-2: the gateway sends the write to this market's "
            "write-primary region",
        },
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "lines": {"type": "array", "items": LINE, "minItems": 1, "maxItems": 50},
        "payment_method": {"type": "string", "enum": ["card", "upi", "ideal", "pix"]},
        "payment_method_token": {"type": "object", "maxProperties": 8},
        "promo_code": {"type": "string", "minLength": 1, "maxLength": 64},
        "shipping_option": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}
PAYMENT_DETAILS: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["market"],
    "properties": {
        "market": CHECKOUT["properties"]["market"],
        "details": {
            "type": "object",
            "maxProperties": 8,
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 20000},
            "description": "what the shopper's browser brought back (Adyen: e.g. "
            "redirectResult); empty for Stripe",
        },
    },
}
CART: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["market", "currency"],
    "properties": {
        "market": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
}
QUANTITY: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["quantity"],
    "properties": {"quantity": {"type": "integer", "minimum": 1, "maximum": 999}},
}
QUOTE: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["country", "currency", "lines"],
    "properties": {
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "lines": {"type": "array", "items": LINE, "minItems": 1, "maxItems": 50},
        "promo_code": {"type": "string", "minLength": 1, "maxLength": 64},
        "shipping_option": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of an operation whose JSON body the gateway reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": errors.Problem, "content": {errors.PROBLEM: {}}} for code in codes}


class Passthrough(BaseModel):
    """Whatever the service behind the gateway answers (see that service's API)."""
