"""The spec-hash annotation: sha256 of the object's canonical JSON, without the annotation."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from checkout_operator.render.labels import SPEC_HASH_ANNOTATION

KubeObject = dict[str, Any]


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: equal objects give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def spec_hash(obj: Mapping[str, Any]) -> str:
    """The hash of ``obj`` as it would be without its spec-hash annotation."""
    bare = copy.deepcopy(dict(obj))
    annotations = bare.get("metadata", {}).get("annotations", {})
    annotations.pop(SPEC_HASH_ANNOTATION, None)
    if "annotations" in bare.get("metadata", {}) and not annotations:
        del bare["metadata"]["annotations"]
    return digest(bare)


def with_spec_hash(obj: KubeObject) -> KubeObject:
    """Return ``obj`` with ``metadata.annotations[spec-hash]`` set (the input is not changed)."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = spec_hash(obj)
    return out
