"""The payment state machine: every pair of states, legal exactly when it is in the table."""

from __future__ import annotations

import itertools

import pytest

from checkout_services.payments import state_machine as sm
from checkout_services.payments.state_machine import PaymentState as S

LEGAL = {
    (S.PENDING, S.REQUIRES_ACTION),
    (S.PENDING, S.AUTHORIZED),
    (S.PENDING, S.DECLINED),
    (S.PENDING, S.FAILED),
    (S.FAILED, S.PENDING),
    (S.REQUIRES_ACTION, S.AUTHORIZED),
    (S.REQUIRES_ACTION, S.DECLINED),
    (S.REQUIRES_ACTION, S.VOIDED),
    (S.AUTHORIZED, S.CAPTURED),
    (S.AUTHORIZED, S.VOIDED),
    # a provider that answers "received" (Adyen) and decides by webhook
    (S.AUTHORIZED, S.CAPTURE_PENDING),
    (S.CAPTURE_PENDING, S.CAPTURED),
    (S.CAPTURE_PENDING, S.CAPTURE_FAILED),
    (S.CAPTURE_FAILED, S.CAPTURE_PENDING),
    (S.CAPTURE_FAILED, S.CAPTURED),
    (S.CAPTURE_FAILED, S.VOID_PENDING),
    (S.CAPTURE_FAILED, S.VOIDED),
    (S.AUTHORIZED, S.VOID_PENDING),
    (S.REQUIRES_ACTION, S.VOID_PENDING),
    (S.VOID_PENDING, S.VOIDED),
    (S.VOID_PENDING, S.AUTHORIZED),
    (S.CAPTURED, S.PARTIALLY_REFUNDED),
    (S.CAPTURED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
    # a refund that fails after it succeeded gives the money back
    (S.REFUNDED, S.PARTIALLY_REFUNDED),
    (S.REFUNDED, S.CAPTURED),
    (S.PARTIALLY_REFUNDED, S.CAPTURED),
    # /payments/details answered with a further shopper action
    (S.REQUIRES_ACTION, S.REQUIRES_ACTION),
}
ALL_PAIRS = list(itertools.product(S, S))


def test_the_table_is_exactly_the_reviewed_one() -> None:
    assert set(sm.TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_legal_transition_is_allowed(current: S, target: S) -> None:
    assert sm.can(current, target)
    assert sm.check(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"), [p for p in ALL_PAIRS if p not in LEGAL], ids=lambda s: s.value
)
def test_every_illegal_transition_is_refused(current: S, target: S) -> None:
    assert not sm.can(current, target)
    with pytest.raises(sm.IllegalTransition) as exc:
        sm.check(current, target)
    assert exc.value.current is current
    assert exc.value.target is target
    assert current.value in str(exc.value)


@pytest.mark.parametrize("state", sorted(sm.TERMINAL))
def test_terminal_states_go_nowhere(state: S) -> None:
    assert all(not sm.can(state, t) for t in S)


def test_the_terminal_states_are_declined_and_voided() -> None:
    assert {S.DECLINED, S.VOIDED} == sm.TERMINAL


def test_no_way_back_from_captured_to_authorized_or_voided() -> None:
    # The two moves that would double-charge or lose money if allowed.
    assert not sm.can(S.CAPTURED, S.AUTHORIZED)
    assert not sm.can(S.CAPTURED, S.VOIDED)
    assert not sm.can(S.VOIDED, S.CAPTURED)
    assert not sm.can(S.DECLINED, S.AUTHORIZED)
