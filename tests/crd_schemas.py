"""CRD schemas as the apiserver applies them, for offline validation of rendered objects."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml


def strict(schema: Any) -> Any:
    """The CRD schema as the apiserver applies it with strict field validation: an object
    with listed properties takes no other field."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schema(path: pathlib.Path, version: str) -> Any:
    """The strict ``openAPIV3Schema`` of ``version`` of the CRD in ``path`` (metadata: any)."""
    crd = yaml.safe_load(path.read_text())
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = strict(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    return schema
