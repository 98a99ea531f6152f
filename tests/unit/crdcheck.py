"""Validate objects against a generated CRD the way the apiserver does, offline.

1. defaulting from the schema's ``default`` values,
2. the structural schema (openapi-schema-validator, OpenAPI 3.0) with unknown fields rejected
   (``kubectl --validate=strict``) and ``x-kubernetes-list-type: set`` duplicates (and
   ``map`` entries with the same ``x-kubernetes-list-map-keys``) rejected,
3. every ``x-kubernetes-validations`` CEL rule (cel-python), with ``self`` bound to the node
   and ``oldSelf`` to the old object's node for transition rules.

Each problem comes back as ``(path, message)`` with the path as in our own error messages
(``spec.failover.targets[1]``), extended by the rule's ``fieldPath`` for CEL rules.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import celpy
from openapi_schema_validator import OAS30Validator

Problem = tuple[str, str]


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of the schema that rejects unknown fields, without the x- extensions."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        out["additionalProperties"] = False
    if "items" in out:
        out["items"] = _strict(out["items"])
    return out


def structural_problems(schema: dict[str, Any], value: Any) -> list[Problem]:
    problems: list[Problem] = []
    for error in OAS30Validator(_strict(schema)).iter_errors(value):
        path = ""
        for part in error.absolute_path:
            path = _join(path, part)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - allowed):
                problems.append((_join(path, extra), "unknown field"))
        elif error.validator == "required":
            for name in error.validator_value:
                if name not in error.instance:
                    problems.append((_join(path, name), "required"))
        else:
            problems.append((path, error.message))
    problems += list(_set_problems(schema, value, ""))
    return problems


def _set_problems(schema: dict[str, Any], value: Any, path: str) -> Iterator[Problem]:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _set_problems(sub, value[name], _join(path, name))
    elif isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "set" and len(set(map(repr, value))) != len(
            value
        ):
            yield (path, "duplicate items in a set")
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen: set[str] = set()
            for index, item in enumerate(value):
                key = repr([item.get(k) for k in keys]) if isinstance(item, dict) else repr(item)
                if key in seen:
                    yield (_join(path, index), "duplicate entry in a map list")
                seen.add(key)
        for index, item in enumerate(value):
            yield from _set_problems(schema.get("items", {}), item, _join(path, index))


_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def _program(rule: str) -> Any:
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule))
    return _PROGRAMS[rule]


def cel_problems(
    schema: dict[str, Any], value: Any, old: Any = None, path: str = ""
) -> list[Problem]:
    problems: list[Problem] = []
    for rule in schema.get("x-kubernetes-validations", []):
        expression = rule["rule"]
        if "oldSelf" in expression and old is None:
            continue  # a transition rule: only checked on update
        activation = {"self": celpy.json_to_cel(value)}
        if old is not None:
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = _program(expression).evaluate(activation)
        if isinstance(result, celpy.celtypes.BoolType) and bool(result):
            continue
        where = path + rule.get("fieldPath", "")
        problems.append((where, f"{rule['message']} ({expression}) -> {result!r}"))
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                old_sub = old.get(name) if isinstance(old, dict) else None
                problems += cel_problems(sub, value[name], old_sub, _join(path, name))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += cel_problems(schema["items"], item, None, _join(path, index))
    return problems


def problems(crd: dict[str, Any], obj: dict[str, Any], old: Any = None) -> list[Problem]:
    """Everything the apiserver would reject ``obj`` for (``old``: the object being updated)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    value = apply_defaults(schema, copy.deepcopy(obj))
    found = structural_problems(schema, value)
    if found:
        return found  # the apiserver runs CEL only on a structurally valid object
    if old is not None:
        old = apply_defaults(schema, copy.deepcopy(old))
    return cel_problems(schema, value, old)
