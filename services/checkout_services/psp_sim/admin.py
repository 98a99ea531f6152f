"""The simulator's admin API (``/_sim/...``): accounts, faults, ledger, clock, settings."""

from __future__ import annotations

from typing import get_args

from starlette.requests import Request
from starlette.responses import Response

from checkout_services.psp_sim import adyen, stripe_objects, webhooks
from checkout_services.psp_sim import state as st
from checkout_services.psp_sim.core import (
    LOCAL_METHODS,
    JsonDict,
    Sim,
    read_json,
)

# -- admin ---------------------------------------------------------------------------------

FAULT_FIELDS = {
    "kind": "kind",
    "provider": "provider",
    "endpoint": "endpoint",
    "operation": "operation",
    "probability": "probability",
    "count": "count",
    "latencyMs": "latency_ms",
    "declineClass": "decline_class",
    "afterCharge": "after_charge",
    "seed": "seed",
}
FAULT_KINDS: frozenset[str] = frozenset(get_args(st.FaultKind))  # nested Literals flatten


class AdminRoutes:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    async def accounts(self, request: Request) -> Response:
        body = await read_json(request)
        items = (body or {}).get("accounts")
        if not isinstance(items, list):
            return self.sim.json(422, {"error": 'body must be {"accounts": [...]}'})
        for item in items:
            try:
                provider = item["provider"]
                if provider not in st.PROVIDERS:
                    return self.sim.json(422, {"error": f"unknown provider {provider!r}"})
                acct = st.Account(
                    provider=provider,
                    account=str(item["account"]),
                    api_key=str(item["apiKey"]),
                    webhook_secret=str(item.get("webhookSecret", "")),
                    webhook_url=item.get("webhookUrl"),
                )
            except (KeyError, TypeError) as exc:
                return self.sim.json(422, {"error": f"missing field {exc}"})
            self.sim.state.accounts[(acct.provider, acct.account)] = acct
        return self.sim.json(200, {"accounts": len(self.sim.state.accounts)})

    async def faults(self, request: Request) -> Response:
        state = self.sim.state
        if request.method == "DELETE":
            state.faults.clear()
            return self.sim.json(200, {"faults": 0})
        if request.method == "GET":
            return self.sim.json(200, {"faults": [self.fault_view(r) for r in state.faults]})
        body = await read_json(request)
        items = (body or {}).get("rules")
        if not isinstance(items, list):
            return self.sim.json(422, {"error": 'body must be {"rules": [...]}'})
        rules: list[st.FaultRule] = []
        for item in items:
            unknown = set(item) - set(FAULT_FIELDS)
            if unknown or item.get("kind") not in FAULT_KINDS:
                return self.sim.json(422, {"error": f"bad rule {item!r}"})
            kwargs = {FAULT_FIELDS[k]: v for k, v in item.items()}
            if "seed" not in kwargs:
                kwargs["seed"] = state.seed + len(state.faults) + len(rules)
            rules.append(st.FaultRule(**kwargs))
        if body and body.get("replace"):
            state.faults.clear()
        state.faults.extend(rules)
        return self.sim.json(200, {"faults": len(state.faults)})

    @staticmethod
    def fault_view(r: st.FaultRule) -> JsonDict:
        return {k: getattr(r, v) for k, v in FAULT_FIELDS.items()} | {"hits": r.hits}

    async def ledger(self, request: Request) -> Response:
        view = self.sim.state.ledger()
        view["webhooks"] = {
            "sent": self.sim.state.webhooks_sent,
            "failed": self.sim.state.webhooks_failed,
        }
        view["requests"] = self.sim.state.requests
        return self.sim.json(200, view)

    async def payments(self, request: Request) -> Response:
        ref = request.query_params.get("reference")
        found = [
            p.view() for p in self.sim.state.payments.values() if ref is None or p.reference == ref
        ]
        return self.sim.json(200, {"payments": found})

    async def reset(self, request: Request) -> Response:
        state = self.sim.state
        state.keys.clear()
        state.payments.clear()
        state.redirect_results.clear()
        state.refunds.clear()
        state.faults.clear()
        state.clock_offset = 0.0
        state.webhooks_sent = state.webhooks_failed = state.requests = 0
        return self.sim.json(200, {"reset": True})

    async def clock(self, request: Request) -> Response:
        body = await read_json(request) or {}
        self.sim.state.clock_offset += float(body.get("advanceSeconds", 0))
        return self.sim.json(200, {"offsetSeconds": self.sim.state.clock_offset})

    async def settings(self, request: Request) -> Response:
        body = await read_json(request) or {}
        if "autoCompleteMs" in body:
            self.sim.auto_complete_ms = int(body["autoCompleteMs"])
        return self.sim.json(200, {"autoCompleteMs": self.sim.auto_complete_ms})

    async def complete(self, request: Request) -> Response:
        p = self.sim.state.payments.get(request.path_params["pid"])
        if p is None or p.provider not in LOCAL_METHODS:
            return self.sim.json(404, {"error": "no such local payment"})
        body = await read_json(request) or {}
        outcome = body.get("outcome", "authorized")
        if outcome not in ("authorized", "declined"):
            return self.sim.json(422, {"error": "outcome must be authorized or declined"})
        webhooks.complete_local(self.sim, p, outcome)
        return self.sim.json(200, p.view())

    async def shopper(self, request: Request) -> Response:
        """A card shopper completes (or fails) 3-D Secure: what the browser brings back."""
        p = self.sim.state.payments.get(request.path_params["pid"])
        if p is None or p.provider not in ("stripe", "adyen") or p.status != "pending":
            return self.sim.json(404, {"error": "no card payment waiting for its shopper"})
        body = await read_json(request) or {}
        passed = body.get("outcome", "authorized") == "authorized"
        done = (
            stripe_objects.shopper_completes if p.provider == "stripe" else adyen.shopper_completes
        )
        return self.sim.json(200, done(self.sim, p, passed=passed))

    async def health(self, request: Request) -> Response:
        return self.sim.json(200, {"status": "ok"})
