"""The local methods' dialect (UPI, iDEAL, Pix): pending with an action, then a webhook."""

from __future__ import annotations

import json
import re

from starlette.requests import Request
from starlette.responses import Response

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim import webhooks
from checkout_services.psp_sim.core import (
    LOCAL_ACTIONS,
    LOCAL_METHODS,
    JsonDict,
    Sim,
    read_json,
)


def local_view(p: st.Payment) -> JsonDict:
    return {
        "id": p.id,
        "object": "payment",
        "method": p.provider,
        "account": p.account,
        "reference": p.reference,
        "amount": p.amount,
        "currency": p.currency,
        "status": p.status,
        "captured": p.captured,
        "refunded": p.refunded,
        "declineClass": p.decline_class,
    }


class LocalRoutes:
    """UPI (collect request), iDEAL (bank redirect), Pix (QR code): async, webhook-completed."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def scope(self, m: str, ep: str, acct: st.Account, request: Request) -> tuple[str, ...] | None:
        key = request.headers.get("idempotency-key")
        return (m, acct.account, ep, key) if key else None

    async def create(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        if m not in LOCAL_METHODS:
            return sim.json(404, {"error": "unknown method"})
        acct = sim.authenticate(m, request)
        if acct is None:
            return sim.unauthorized(m)
        body = await read_json(request)
        if body is None:
            return sim.json(400, {"error": "invalid JSON"})

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            amount, currency = body.get("amount"), body.get("currency")
            if not isinstance(amount, int) or amount <= 0:
                return 400, {"error": "invalid amount", "param": "amount"}
            if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
                return 400, {"error": "invalid currency", "param": "currency"}
            p = sim.new_payment(
                m,
                ep,
                acct.account,
                str(body.get("reference", "")),
                amount,
                currency,
                m,
                f"{m}_",
            )
            if faults.decline:
                p.decline_class = faults.decline
            outcome = "declined" if faults.decline else "authorized"
            if sim.auto_complete_ms >= 0:
                sim.schedule(webhooks.auto_complete(sim, p, outcome))
            view = local_view(p)
            view["action"] = {
                "type": LOCAL_ACTIONS[m],
                "url": f"/{ep}/{m}/checkout/{p.id}",
            }
            return 201, view

        return await sim.idempotent(
            provider=m,
            endpoint=ep,
            operation="authorize",
            scope=self.scope(m, ep, acct, request),
            fp=st.fingerprint("POST", "/v1/payments", json.dumps(body, sort_keys=True)),
            execute=execute,
        )

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        pid, action = request.path_params["pid"], request.path_params["action"]
        operation = {"capture": "capture", "cancel": "cancel", "refunds": "refund"}.get(action)
        if m not in LOCAL_METHODS or operation is None:
            return sim.json(404, {"error": "not found"})
        acct = sim.authenticate(m, request)
        if acct is None:
            return sim.unauthorized(m)
        body = await read_json(request)
        if body is None:
            return sim.json(400, {"error": "invalid JSON"})

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(pid)
            if p is None or p.provider != m or p.account != acct.account or p.endpoint != ep:
                return 404, {"error": "no such payment"}
            if operation == "capture":
                if p.status != "authorized":
                    return 409, {
                        "error": f"cannot capture a {p.status} payment",
                        "payment": local_view(p),
                    }
                p.status, p.captured = "captured", int(body.get("amount", p.amount))
                p.history.append("captured")
                event = "payment.captured"
            elif operation == "cancel":
                if p.status not in ("authorized", "pending"):
                    return 409, {
                        "error": f"cannot cancel a {p.status} payment",
                        "payment": local_view(p),
                    }
                was_authorized = p.status == "authorized"
                p.status = "voided"
                p.voided = was_authorized
                p.history.append("voided")
                event = "payment.voided"
            else:
                value = int(body.get("amount", p.captured - p.refunded))
                if (
                    p.status not in ("captured", "refunded")
                    or value <= 0
                    or value > p.captured - p.refunded
                ):
                    return 409, {"error": "refund amount exceeds the captured amount"}
                p.refunded += value
                if p.refunded == p.captured:
                    p.status = "refunded"
                p.history.append(f"refunded:{value}")
                event = "payment.refunded"
            webhooks.send(sim, p, event)
            return 200, local_view(p)

        return await sim.idempotent(
            provider=m,
            endpoint=ep,
            operation=operation,
            scope=self.scope(m, ep, acct, request),
            fp=st.fingerprint(
                "POST", f"/v1/payments/{pid}/{action}", json.dumps(body, sort_keys=True)
            ),
            execute=execute,
        )

    async def retrieve(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        acct = sim.authenticate(m, request) if m in LOCAL_METHODS else None
        if acct is None:
            return sim.unauthorized(m)
        pid = request.path_params["pid"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(pid)
            if p is None or p.provider != m or p.account != acct.account:
                return 404, {"error": "no such payment"}
            return 200, local_view(p)

        return await sim.read(m, ep, "retrieve", execute)

    async def lookup(self, request: Request) -> Response:
        sim = self.sim
        ep, m = request.path_params["ep"], request.path_params["method"]
        acct = sim.authenticate(m, request) if m in LOCAL_METHODS else None
        if acct is None:
            return sim.unauthorized(m)
        ref = request.query_params.get("reference", "")

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = [
                local_view(p)
                for p in sim.state.payments.values()
                if p.provider == m and p.account == acct.account and p.reference == ref
            ]
            return 200, {"data": found}

        return await sim.read(m, ep, "lookup", execute)
