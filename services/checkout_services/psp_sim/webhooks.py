"""The simulator's webhooks: signed (HMAC-SHA256 of ``t.body``, as Stripe signs) and delivered
to an account's URL with retries, late or twice when a fault says so; the local methods'
completion by the shopper, which ends in one."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import httpx

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim.core import Sim

WEBHOOK_ATTEMPTS = 10
"""Deliveries of one webhook before it is given up (about 10 s; the providers retry for days,
which a test run cannot wait for)."""


def send(sim: Sim, payment: st.Payment, event_type: str) -> None:
    """The local methods' event for ``payment`` (``Sim-Signature``), to its account's URL."""
    acct = sim.state.accounts.get((payment.provider, payment.account))
    if acct is None or not acct.webhook_url:
        return
    faults = sim.state.faults_for(payment.provider, payment.endpoint, "webhook")
    event = {
        "id": sim.state.new_id("evt_"),
        "type": event_type,
        "created": int(sim.state.now()),
        "data": {
            "id": payment.id,
            "provider": payment.provider,
            "account": payment.account,
            "reference": payment.reference,
            "status": payment.status,
            "amount": payment.amount,
            "currency": payment.currency,
        },
    }
    body = json.dumps(event).encode()
    copies = 2 if faults.webhook_duplicate else 1
    for i in range(copies):
        delay = faults.webhook_delay_ms if i == 0 else faults.webhook_delay_ms + 5
        sim.schedule(deliver(sim, acct, body, delay / 1000))


def deliver_later(
    sim: Sim, payment: st.Payment, acct: st.Account, body: bytes, header: str | None
) -> None:
    """After ``autoCompleteMs`` plus any webhook_delay fault; twice on webhook_duplicate."""
    faults = sim.state.faults_for(payment.provider, payment.endpoint, "webhook")
    delay = (max(sim.auto_complete_ms, 0) + faults.webhook_delay_ms) / 1000
    for i in range(2 if faults.webhook_duplicate else 1):
        sim.schedule(deliver(sim, acct, body, delay + i * 0.005, header=header))


async def deliver(
    sim: Sim, acct: st.Account, body: bytes, delay: float, *, header: str | None = "Sim-Signature"
) -> None:
    """POST ``body`` signed under the account's webhook secret, retried with backoff."""
    if delay:
        await asyncio.sleep(delay)
    assert sim.http is not None
    assert acct.webhook_url is not None
    for attempt in range(WEBHOOK_ATTEMPTS):
        ts = int(time.time())
        sig = hmac.new(
            acct.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
        ).hexdigest()
        headers = {"content-type": "application/json"}
        if header is not None:
            headers[header] = f"t={ts},v1={sig}"
        try:
            resp = await sim.http.post(acct.webhook_url, content=body, headers=headers)
            if resp.status_code < 300:
                sim.state.webhooks_sent += 1
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
    sim.state.webhooks_failed += 1


def complete_local(sim: Sim, payment: st.Payment, outcome: str) -> None:
    """A local method's shopper acted: authorized or declined, and its webhook."""
    if payment.status != "pending":
        return
    if outcome == "authorized":
        payment.status = "authorized"
        payment.history.append("authorized")
        send(sim, payment, "payment.authorized")
    else:
        payment.status = "declined"
        payment.decline_class = payment.decline_class or "soft"
        payment.history.append("declined")
        send(sim, payment, "payment.declined")


async def auto_complete(sim: Sim, payment: st.Payment, outcome: str) -> None:
    await asyncio.sleep(sim.auto_complete_ms / 1000)
    complete_local(sim, payment, outcome)
