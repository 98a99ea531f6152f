"""Names, labels and the spec-hash annotation."""

from __future__ import annotations

import hashlib

from checkout_operator.render import hashing, labels


def test_labels_are_the_recommended_set_plus_the_region() -> None:
    assert labels.labels("eu-west-1", "cart") == {
        "app.kubernetes.io/name": "checkout-cart",
        "app.kubernetes.io/instance": "checkout-cart-eu-west-1",
        "app.kubernetes.io/component": "cart",
        "app.kubernetes.io/part-of": "checkout",
        "app.kubernetes.io/managed-by": "checkout-operator",
        "checkout-operator.io/region": "eu-west-1",
    }
    assert labels.selector("eu-west-1", "cart") == {
        "app.kubernetes.io/name": "checkout-cart",
        "app.kubernetes.io/instance": "checkout-cart-eu-west-1",
    }
    assert labels.child_name("payments") == "checkout-payments"


def test_spec_hash_is_sha256_of_canonical_json_without_the_annotation() -> None:
    obj = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"b": "2", "a": "1"}}
    canonical = '{"data":{"a":"1","b":"2"},"kind":"ConfigMap","metadata":{"name":"x"}}'
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    hashed = hashing.with_spec_hash(obj)
    assert hashed["metadata"]["annotations"] == {"checkout-operator.io/spec-hash": expected}
    assert hashing.spec_hash(hashed) == expected  # the annotation itself is not hashed
    assert obj == {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"b": "2", "a": "1"}}


def test_spec_hash_keeps_other_annotations_and_changes_with_content() -> None:
    obj = {"kind": "X", "metadata": {"name": "x", "annotations": {"a": "1"}}, "spec": {"n": 1}}
    hashed = hashing.with_spec_hash(obj)
    assert hashed["metadata"]["annotations"]["a"] == "1"
    changed = hashing.with_spec_hash({**obj, "spec": {"n": 2}})
    assert (
        changed["metadata"]["annotations"][labels.SPEC_HASH_ANNOTATION]
        != hashed["metadata"]["annotations"][labels.SPEC_HASH_ANNOTATION]
    )
