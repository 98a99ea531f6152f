"""The spec-hash annotation: sha256 of the object's canonical JSON, without the annotation."""

from __future__ import annotations

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
    meta = dict(obj.get("metadata", {}))
    annotations = {
        k: v for k, v in meta.get("annotations", {}).items() if k != SPEC_HASH_ANNOTATION
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return digest({**obj, "metadata": meta})


def with_spec_hash(obj: KubeObject) -> KubeObject:
    """Return a copy of ``obj`` with ``metadata.annotations[spec-hash]`` set.

    The copy is shallow except for ``metadata`` and its annotations: builders pass freshly
    built objects, and nothing mutates an object after it is built.
    """
    meta = dict(obj.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), SPEC_HASH_ANNOTATION: spec_hash(obj)}
    return {**obj, "metadata": meta}
