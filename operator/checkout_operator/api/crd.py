"""CustomResourceDefinitions generated from the API models (pure: models in, dicts out).

The pydantic JSON schema is turned into a Kubernetes structural schema: references inlined,
optional fields unwrapped, every field described (from the models' docstrings, so
``kubectl explain`` teaches the API), defaults kept, and the CEL rules declared next to the
model fields carried over as ``x-kubernetes-validations``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from checkout_operator.api import checkoutregion, meta, psproute

JsonObj = dict[str, Any]

_KEPT_KEYS: Final = (
    "type",
    "format",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)


class SchemaError(Exception):
    """A model cannot be expressed as a structural schema (a bug in the models)."""


@dataclass(frozen=True, slots=True)
class KindInfo:
    model: type[BaseModel]
    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[JsonObj, ...]


_READY = '.status.conditions[?(@.type=="Ready")].status'


def _described(model: type[BaseModel], json_path: str) -> str:
    """The docstring of the model field at ``json_path`` (camelCase aliases, ``[*]`` and
    filters skipped): printer columns carry the API's own descriptions."""
    current: Any = model
    description = ""
    for part in json_path.strip(".").split("."):
        name = part.split("[", 1)[0]
        fields = getattr(current, "model_fields", {})
        field = next((f for f in fields.values() if f.alias == name), None)
        if field is None:
            raise SchemaError(f"printer column path {json_path}: no field {name!r}")
        description = field.description or ""
        current = _model_of(field.annotation)
    return description


def _model_of(annotation: Any) -> Any:
    """The model in ``X``, ``X | None`` or ``tuple[X, ...]`` (None: a scalar)."""
    for arg in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _column(
    model: type[BaseModel],
    name: str,
    type_: str,
    json_path: str,
    *,
    priority: int = 0,
    description: str = "",
) -> JsonObj:
    col: JsonObj = {
        "name": name,
        "type": type_,
        "jsonPath": json_path,
        "description": description or _described(model, json_path),
    }
    if priority:
        col["priority"] = priority
    return col


def _age() -> JsonObj:
    return {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since the object was created.",
    }


_CR = checkoutregion.CheckoutRegion
_RT = psproute.PSPRoute
_READY_TEXT = "Ready condition: True when everything the spec asks for is applied and ready."

KINDS: Final = (
    KindInfo(
        checkoutregion.CheckoutRegion,
        checkoutregion.KIND,
        checkoutregion.PLURAL,
        ("creg",),
        (
            _column(_CR, "Region", "string", ".spec.region"),
            _column(_CR, "Fleet", "string", ".spec.fleet", priority=1),
            _column(_CR, "Jurisdiction", "string", ".spec.jurisdiction", priority=1),
            _column(_CR, "Writers", "string", ".status.writers"),
            _column(_CR, "Failover", "string", ".status.failoverState"),
            _column(_CR, "Max Lag", "integer", ".status.maxReplicationLagMessages"),
            _column(
                _CR,
                "Last Move",
                "date",
                ".status.lastFailover.time",
                description="When markets last moved (status.lastFailover.time).",
            ),
            _column(
                _CR, "Paused", "boolean", ".status.overrides.automaticFailoverPaused", priority=1
            ),
            _column(_CR, "Phase", "string", ".status.phase", priority=1),
            _column(_CR, "Ready", "string", _READY, description=_READY_TEXT),
            _column(
                _CR,
                "Health",
                "string",
                ".status.health.state",
                description="The operator's probes of the region: Healthy, Unhealthy or Unknown.",
            ),
            _age(),
        ),
    ),
    KindInfo(
        psproute.PSPRoute,
        psproute.KIND,
        psproute.PLURAL,
        ("pspr",),
        (
            _column(_RT, "Strategy", "string", ".spec.strategy"),
            _column(_RT, "Priority", "integer", ".spec.priority"),
            _column(_RT, "Phase", "string", ".status.phase"),
            _column(_RT, "Ready", "string", _READY, description=_READY_TEXT),
            _age(),
        ),
    ),
)


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[JsonObj, JsonObj]:
    """Split a node into (the schema it stands for, its own annotations)."""
    own = {k: v for k, v in node.items() if k not in ("$ref", "anyOf", "allOf")}
    if "$ref" in node:
        return dict(defs[node["$ref"].rsplit("/", 1)[-1]]), own
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise SchemaError(f"cannot express anyOf {node['anyOf']!r} structurally")
        inner, inner_own = _resolve(branches[0], defs)
        return {**inner, **inner_own}, own
    return dict(node), {}


def structural(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> JsonObj:
    """Convert one pydantic JSON-schema node into a structural OpenAPI v3 schema node."""
    target, own = _resolve(node, defs)
    merged = {**target, **own}
    if "const" in merged:
        merged["enum"] = [merged.pop("const")]
    out: JsonObj = {k: merged[k] for k in _KEPT_KEYS if k in merged}
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    description = own.get("description") or target.get("description")
    if not description:
        raise SchemaError(f"{path}: every field needs a description (docstring or Field)")
    out["description"] = " ".join(str(description).split())
    if "default" in merged and merged["default"] is not None:
        out["default"] = _strip_none(merged["default"])
    if out.get("type") == "object" or "properties" in merged:
        out["type"] = "object"
        props = merged.get("properties", {})
        if props:
            out["properties"] = {
                name: structural(sub, defs, f"{path}.{name}") for name, sub in props.items()
            }
        elif isinstance(merged.get("additionalProperties"), dict):
            out["additionalProperties"] = {"type": merged["additionalProperties"]["type"]}
        if merged.get("required"):
            out["required"] = list(merged["required"])
    if out.get("type") == "array":
        items, items_own = _resolve(merged["items"], defs)
        item_node = {**items, **items_own}
        item_node.setdefault("description", f"An item of {path.rsplit('.', 1)[-1]}.")
        out["items"] = structural(item_node, defs, f"{path}[]")
    if "type" not in out:
        raise SchemaError(f"{path}: no type in {merged!r}")
    return out


def openapi_schema(model: type[BaseModel]) -> JsonObj:
    """The structural ``openAPIV3Schema`` of a kind, from its pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    raw["properties"] = {k: v for k, v in raw["properties"].items() if k != "metadata"}
    schema = structural(raw, defs, model.__name__)
    props = schema["properties"]
    props["apiVersion"] = {
        "type": "string",
        "description": "APIVersion of the object: " + meta.API_VERSION + ".",
    }
    props["kind"] = {"type": "string", "description": "Kind of the object."}
    # The apiserver refuses anything but ``type`` (and name/generateName) on the root metadata:
    # "must not specify anything other than name and generateName" -- a description included.
    props["metadata"] = {"type": "object"}
    schema["required"] = ["spec"]
    return schema


def crd(info: KindInfo) -> JsonObj:
    """The CustomResourceDefinition of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{meta.GROUP}",
            "labels": {
                "app.kubernetes.io/name": "checkout-operator",
                "app.kubernetes.io/part-of": "checkout",
            },
        },
        "spec": {
            "group": meta.GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": list(info.short_names),
                "categories": ["checkout"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": meta.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in info.columns],
                    "schema": {"openAPIV3Schema": openapi_schema(info.model)},
                }
            ],
        },
    }


def all_crds() -> dict[str, JsonObj]:
    """File name -> CRD, for every kind."""
    return {f"{info.plural}.{meta.GROUP}.yaml": crd(info) for info in KINDS}
