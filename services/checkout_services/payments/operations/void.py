"""Void (cancel an authorization): at the provider, account and endpoint that authorized."""

from __future__ import annotations

from checkout_services.payments import db, exceptions
from checkout_services.payments import state_machine as sm
from checkout_services.payments.adapters import base
from checkout_services.payments.operations import modify
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S


async def void(svc: PaymentsService, checkout_id: str) -> db.Payment:
    payment = await svc.get(checkout_id)
    if payment.state in (S.VOIDED, S.VOID_PENDING):
        return payment
    if not sm.can(payment.state, S.VOIDED):
        raise exceptions.IllegalTransitionError(
            f"cannot void a {payment.state.value} payment", state=payment.state.value
        )
    async with svc.lease(checkout_id):
        payment = await svc.get(checkout_id)
        if payment.state in (S.VOIDED, S.VOID_PENDING):
            return payment
        if not sm.can(payment.state, S.VOIDED):
            raise exceptions.IllegalTransitionError(
                f"cannot void a {payment.state.value} payment", state=payment.state.value
            )

        async def call(adapter: base.PSPAdapter, ref: str, key: str) -> base.PSPResult:
            return await adapter.void(psp_reference=ref, checkout_id=checkout_id, key=key)

        return await modify.modify(
            svc,
            payment,
            operation="void",
            done=("voided",),
            goal=S.VOIDED,
            call=call,
            amount=None,
            goal_fields={},
            waiting=S.VOID_PENDING,
        )
