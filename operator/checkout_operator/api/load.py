"""From parsed YAML/JSON documents to API objects, with errors that name the field.

Errors never quote the value of an input field (it might be a secret pasted in the wrong
place); only cross-field rules name a repeated identifier such as a market code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pydantic

from checkout_operator.api import meta
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute

ApiObject = CheckoutRegion | PSPRoute
MODELS: Final[dict[str, type[CheckoutRegion] | type[PSPRoute]]] = {
    "CheckoutRegion": CheckoutRegion,
    "PSPRoute": PSPRoute,
}


@dataclass(frozen=True, slots=True, order=True)
class FieldError:
    """One problem: the dotted path of the field (``spec.failover.targets[1]``) and what's wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidObject(ValueError):
    """A document is not a valid API object."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = tuple(errors)


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_MESSAGES: Final = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def _field_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc: list[str | int] = list(error["loc"])
        message = _MESSAGES.get(error["type"], error["msg"])
        if error["type"] == "invalid_key":
            # The loc's last part is the key's position, not a name: name the mapping instead.
            loc = loc[:-1]
            message = (
                "a key is not a string (YAML reads a bare on/off/yes/no/true/false/null key, or "
                "a number, as such: quote it)"
            )
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, meta.RuleViolation):
            loc += list(cause.path)
            message = cause.message
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        errors.append(FieldError(format_path(loc), message))
    return sorted(set(errors))


def parse(document: Any) -> ApiObject:
    """Validate one document as a CheckoutRegion or PSPRoute."""
    if not isinstance(document, dict):
        raise InvalidObject([FieldError("", "a document must be a mapping (a Kubernetes object)")])
    kind = document.get("kind")
    if kind not in MODELS:
        known = " or ".join(MODELS)
        raise InvalidObject([FieldError("kind", f"unknown kind {kind!r} (expected {known})")])
    if document.get("apiVersion") != meta.API_VERSION:
        raise InvalidObject(
            [FieldError("apiVersion", f"{kind} must have apiVersion {meta.API_VERSION}")]
        )
    try:
        return MODELS[kind].model_validate(document)
    except pydantic.ValidationError as exc:
        raise InvalidObject(_field_errors(exc)) from None
