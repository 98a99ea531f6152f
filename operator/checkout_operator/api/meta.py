"""Shared API pieces: the base model, secret references, conditions, object metadata.

Every API model is camelCase on the wire, snake_case in Python, and refuses unknown fields.
Cross-field rules are declared twice from one place: as CEL ``x-kubernetes-validations`` in the
JSON schema (so the apiserver rejects them at admission) and as a pydantic validator (so the
CLI rejects them offline). :func:`rule` keeps both side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from checkout_contract import urls

GROUP: Final = "checkout-operator.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "checkout-operator.io/v1alpha1"

DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$"
COUNTRY_CODE: Final = r"^[A-Z]{2}$"
JURISDICTION: Final = r"^[A-Z]{2,8}$"

Jurisdiction = Annotated[str, Field(pattern=JURISDICTION, max_length=8)]
Country = Annotated[str, Field(pattern=COUNTRY_CODE, min_length=2, max_length=2)]
RegionName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=40)]


def _secure_url(value: str) -> str:
    wrong = urls.problem(value)
    if wrong is not None:
        raise ValueError(wrong)
    return value


SecureURL = Annotated[
    str,
    AfterValidator(_secure_url),
    Field(min_length=1, max_length=1024, json_schema_extra={"pattern": urls.PATTERN}),
]
"""A URL credentials, card data or spans are sent to (:mod:`checkout_contract.urls`):
``https://`` without user information; plain ``http://`` only to a loopback host (127.0.0.0/8,
``::1``, ``localhost``: the local stack's simulators). The apiserver checks the same rule as a
``pattern``; the CLI and the operator name the field and what is wrong, never the value."""


class RuleViolation(ValueError):
    """A broken cross-field rule, with the path (relative to the model) of the field it names."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


def rule(expression: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL rule for ``x-kubernetes-validations`` (``fieldPath`` names the offending field)."""
    out = {"rule": expression, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    """The ``json_schema_extra`` that attaches CEL rules to a model or a field."""
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """Base of every API model: strict camelCase, immutable, unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace. The operator only references it, never copies it."""

    name: str = Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key inside the Secret."""


class SecretRef(ApiModel):
    """A whole Secret in the same namespace, mounted as files (one file per key)."""

    name: str = Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)
    """Name of the Secret."""


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata the operator reads (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str = Field(pattern=DNS_LABEL, min_length=1, max_length=63)
    namespace: str = Field(default="default", pattern=DNS_LABEL, max_length=63)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the object's state (Kubernetes condition conventions)."""

    type: str = Field(max_length=316)
    """Kind of condition: Ready, Progressing, Degraded, FailoverInProgress, ..."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(default="", max_length=1024)
    """One CamelCase word saying why the condition last changed."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details (never contains a secret)."""
    last_transition_time: str = ""
    """When the status last changed (RFC 3339, UTC)."""
    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation this condition was computed from."""


class ChildSummary(ApiModel):
    """How many of the objects rendered for the resource exist and are ready."""

    desired: int = Field(default=0, ge=0)
    """Objects the last render produced."""
    applied: int = Field(default=0, ge=0)
    """Objects applied by the last reconcile."""
    ready: int = Field(default=0, ge=0)
    """Workloads (Deployments, MirrorMaker 2) that report ready."""
    not_ready: tuple[str, ...] = ()
    """``Kind/name`` of the workloads that are not ready yet."""


SET: Final[dict[str, Any]] = {"x-kubernetes-list-type": "set"}
"""``json_schema_extra`` of a list of distinct scalars (the apiserver rejects duplicates)."""


def require_distinct(values: Sequence[str], path: Sequence[str | int], what: str) -> None:
    """Raise :class:`RuleViolation` at the first value that repeats an earlier one."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise RuleViolation([*path, index], f"duplicate {what} {value!r}")
        seen.add(value)
