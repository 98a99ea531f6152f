"""PSP idempotency keys are a pure function of (checkout, operation, scope)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from checkout_services.payments import keys

checkout_ids = st.text(min_size=1, max_size=128)
operations = st.sampled_from(["authorize", "capture", "void", "refund"])
scopes = st.text(max_size=64)


@given(checkout_ids, operations, scopes)
def test_deterministic_and_within_adyen_limit(
    checkout_id: str, op: keys.Operation, scope: str
) -> None:
    a = keys.psp_idempotency_key(checkout_id, op, scope)
    b = keys.psp_idempotency_key(checkout_id, op, scope)
    assert a == b
    assert len(a) <= keys.MAX_KEY_LENGTH == 64
    assert all(c in "0123456789abcdef" for c in a)


@given(st.tuples(checkout_ids, operations, scopes), st.tuples(checkout_ids, operations, scopes))
def test_distinct_inputs_give_distinct_keys(
    x: tuple[str, keys.Operation, str], y: tuple[str, keys.Operation, str]
) -> None:
    if x != y:
        assert keys.psp_idempotency_key(*x) != keys.psp_idempotency_key(*y)


@given(checkout_ids, checkout_ids, operations)
def test_separator_ambiguity_does_not_collide(a: str, b: str, op: keys.Operation) -> None:
    # checkout "a:b" with no scope and checkout "a" with scope "b" must not share a key
    assert keys.psp_idempotency_key(a + ":" + b, op, "") != keys.psp_idempotency_key(a, op, b)


def test_known_value_is_stable_across_releases() -> None:
    # Changing the derivation would make every in-flight retry miss the PSP's dedup.
    assert keys.psp_idempotency_key("co_1", "authorize", "stripe-eu") == (
        "dbaeaa97398f7329a26c77e51fcd489cc822fc008973248ac35b57e06db74767"
    )
