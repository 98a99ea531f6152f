"""Stripe's dialect: PaymentIntents (form-encoded), Refunds, signed Events."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim import stripe_apm
from checkout_services.psp_sim.core import (
    DECLINES,
    JsonDict,
    Sim,
    read_form,
)
from checkout_services.psp_sim.stripe_objects import (
    payer_pays,
    refund_settles,
    send_event,
    shopper_authenticates,
    stripe_view,
)


def stripe_error(status: int, type_: str, message: str, **extra: Any) -> tuple[int, JsonDict]:
    return status, {"error": {"type": type_, "message": message, **extra}}


class StripeRoutes:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def scope(self, acct: st.Account, request: Request) -> tuple[str, ...] | None:
        key = request.headers.get("idempotency-key")
        # Stripe keys are per account, whatever the endpoint.
        return ("stripe", acct.account, key) if key else None

    async def create(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            try:
                amount = int(form.get("amount", ""))
            except ValueError:
                return stripe_error(
                    400, "invalid_request_error", "Invalid integer: amount", param="amount"
                )
            currency = form.get("currency", "")
            if amount <= 0:
                return stripe_error(
                    400, "invalid_request_error", "Amount must be positive", param="amount"
                )
            if not re.fullmatch(r"[a-z]{3}", currency):
                return stripe_error(
                    400, "invalid_request_error", "Invalid currency", param="currency"
                )
            method = form.get("payment_method_data[type]") or "card"
            if form.get("confirm") != "true" or (
                method == "card" and form.get("capture_method") != "manual"
            ):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "The simulator supports confirm=true (cards: capture_method=manual) only",
                    param="capture_method",
                )
            if method == "card" and not form.get("payment_method", "").startswith("pm_"):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "No such PaymentMethod",
                    param="payment_method",
                    code="resource_missing",
                )
            if method in stripe_apm.METHODS:
                wrong = stripe_apm.refusal(method, currency, form.get("return_url"))
                if wrong is not None:
                    return stripe_error(400, "invalid_request_error", wrong[1], param=wrong[0])
            reference = form.get("metadata[checkout_id]", "")
            p = sim.new_payment(
                "stripe", ep, acct.account, reference, amount, currency.upper(), method, "pi_"
            )
            if faults.decline:
                p.status = "declined"
                p.decline_class = faults.decline
                p.history.append("declined")
                code, msg = DECLINES[faults.decline]["stripe"]
                return stripe_error(
                    402,
                    "card_error",
                    msg,
                    code="card_declined",
                    decline_code=code,
                    payment_intent=stripe_view(p),
                )
            if method in stripe_apm.METHODS:  # the payer acts in their bank or app
                p.next_action = stripe_apm.next_action(p, form.get("return_url"), sim.state.now())
                p.history.append("requires_action")
                if sim.auto_complete_ms >= 0:
                    sim.schedule(payer_pays(sim, p))
                return 200, stripe_view(p)
            if faults.three_ds and method == "card":
                p.history.append("requires_action")
                if sim.auto_complete_ms >= 0:  # else the shopper acts through the admin API
                    sim.schedule(shopper_authenticates(sim, p))
                view = stripe_view(p)
                view["status"] = "requires_action"
                view["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": f"https://hooks.stripe.test/3d_secure_2/{p.id}",
                        "return_url": form.get("return_url"),
                    },
                }
                return 200, view
            p.status = "authorized"
            p.history.append("authorized")
            send_event(sim, p, "payment_intent.amount_capturable_updated")
            return 200, stripe_view(p)

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation="authorize",
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", "/v1/payment_intents", sorted(params)),
            execute=execute,
        )

    def owned(self, acct: st.Account, pid: str) -> st.Payment | None:
        p = self.sim.state.payments.get(pid)
        if p is None or p.provider != "stripe" or p.account != acct.account:
            return None
        return p

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        pid = request.path_params["pid"]
        action = request.path_params["action"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)
        operation = {"capture": "capture", "cancel": "cancel"}.get(action)
        if operation is None:
            return sim.json(
                404,
                {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}},
            )

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, pid)
            if p is None:
                return stripe_error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{pid}'",
                    code="resource_missing",
                )
            # a PaymentIntent still waiting for the shopper (requires_action) can be canceled
            cancellable = action == "cancel" and p.status == "pending"
            if p.status != "authorized" and not cancellable:
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"This PaymentIntent's {action} could not be performed because it has a "
                    f"status of {stripe_view(p)['status']}.",
                    code="payment_intent_unexpected_state",
                    payment_intent=stripe_view(p),
                )
            if action == "capture":
                amount = int(form.get("amount_to_capture", p.amount))
                if amount <= 0 or amount > p.amount:
                    return stripe_error(
                        400,
                        "invalid_request_error",
                        "Invalid amount_to_capture",
                        param="amount_to_capture",
                    )
                p.status = "captured"
                p.captured = amount
                p.history.append("captured")
            else:
                p.status = "voided"
                p.voided = True
                p.history.append("voided")
            return 200, stripe_view(p)

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation=operation,
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", f"/v1/payment_intents/{pid}/{action}", sorted(params)),
            execute=execute,
        )

    async def refund(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, form.get("payment_intent", ""))
            if p is None:
                return stripe_error(
                    404, "invalid_request_error", "No such payment_intent", code="resource_missing"
                )
            refundable = p.captured - p.refunded - p.refunding
            amount = int(form.get("amount", refundable))
            if p.status not in ("captured", "refunded") or amount <= 0 or amount > refundable:
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "Refund amount exceeds the captured amount",
                    code="amount_too_large",
                )
            refund: JsonDict = {
                "id": sim.state.new_id("re_"),
                "object": "refund",
                "amount": amount,
                "payment_intent": p.id,
                "status": "succeeded",
                "currency": p.currency.lower(),
                "metadata": {
                    k[len("metadata[") : -1]: v for k, v in params if k.startswith("metadata[")
                },
            }
            sim.state.refunds[refund["id"]] = refund  # the object GET /v1/refunds/{id} reads
            if faults.refund_pending or faults.refund_failure:
                # Stripe: a Refund may stay pending, then succeed or fail (refund.updated).
                p.refunding += amount
                refund["status"] = "pending"
                sim.schedule(refund_settles(sim, p, refund, not faults.refund_failure))
                return 200, dict(refund)
            p.refunded += amount
            if p.refunded == p.captured:
                p.status = "refunded"
            p.history.append(f"refunded:{amount}")
            return 200, refund

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation="refund",
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", "/v1/refunds", sorted(params)),
            execute=execute,
        )

    async def read_one(
        self, request: Request, kind: str, find: Callable[[st.Account, str], JsonDict | None]
    ) -> Response:
        """GET of one object by id (``{oid}``), 404 ``resource_missing`` when this account has
        no such ``kind``."""
        sim = self.sim
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        oid = request.path_params["oid"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = find(acct, oid)
            if found is None:
                missing = f"No such {kind}: '{oid}'"
                return stripe_error(404, "invalid_request_error", missing, code="resource_missing")
            return 200, found

        return await sim.read("stripe", request.path_params["ep"], "retrieve", execute)

    async def retrieve(self, request: Request) -> Response:
        def intent(acct: st.Account, pid: str) -> JsonDict | None:
            p = self.owned(acct, pid)
            return None if p is None else stripe_view(p)

        return await self.read_one(request, "payment_intent", intent)

    async def retrieve_refund(self, request: Request) -> Response:
        """GET /v1/refunds/{id}: the Refund as it is now (pending, succeeded, failed)."""

        def refund(acct: st.Account, rid: str) -> JsonDict | None:
            found = self.sim.state.refunds.get(rid)
            if found is None or self.owned(acct, str(found["payment_intent"])) is None:
                return None
            return dict(found)

        return await self.read_one(request, "refund", refund)

    async def search(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        query = request.query_params.get("query", "")
        m = re.fullmatch(r"\s*metadata\['checkout_id'\]\s*:\s*'([^']*)'\s*", query)
        if m is None:
            return sim.json(
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Unsupported search query",
                        "param": "query",
                    }
                },
            )
        ref = m.group(1)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = [
                stripe_view(p)
                for p in sim.state.payments.values()
                if p.provider == "stripe" and p.account == acct.account and p.reference == ref
            ]
            return 200, {"object": "search_result", "data": found, "has_more": False}

        return await sim.read("stripe", ep, "lookup", execute)
