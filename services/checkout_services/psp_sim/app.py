"""The simulator's HTTP app: one server, several regional endpoints, five provider dialects.

URL layout (``{ep}`` is any regional endpoint name, e.g. ``eu`` or ``us``; each endpoint has
its own idempotency-key store where the provider scopes keys per endpoint, and all endpoints
share one ledger):

* Stripe-like, **form-encoded** requests, JSON responses, ``Authorization: Bearer <key>``::

    POST /{ep}/stripe/v1/payment_intents              (confirm=true, capture_method=manual)
    POST /{ep}/stripe/v1/payment_intents/{id}/capture
    POST /{ep}/stripe/v1/payment_intents/{id}/cancel
    GET  /{ep}/stripe/v1/payment_intents/{id}
    GET  /{ep}/stripe/v1/payment_intents/search?query=metadata['checkout_id']:'...'
    POST /{ep}/stripe/v1/refunds
    GET  /{ep}/stripe/v1/refunds/{id}

* Adyen-like, JSON, ``X-API-Key`` + ``merchantAccount``::

    POST /{ep}/adyen/v71/payments
    POST /{ep}/adyen/v71/payments/details            (the shopper's redirect / 3-D Secure result)
    POST /{ep}/adyen/v71/payments/{pspReference}/captures | /cancels | /refunds
    (no GET: Adyen's Checkout API has none)

* Local methods (``upi``, ``ideal``, ``pix``), JSON, ``Authorization: Bearer <key>``: the
  payment starts ``pending`` with a redirect / QR / collect action; the customer completing it
  (automatic after ``autoCompleteMs``, or ``POST /_sim/local/{id}/complete``) sends an
  HMAC-signed webhook (``Sim-Signature: t=<unix>,v1=<hex sha256>`` over ``"<t>.<body>"``)::

    POST /{ep}/{m}/v1/payments
    POST /{ep}/{m}/v1/payments/{id}/capture | /cancel | /refunds
    GET  /{ep}/{m}/v1/payments/{id}
    GET  /{ep}/{m}/v1/payments?reference=..

* Admin: ``/_sim/accounts``, ``/_sim/faults``, ``/_sim/ledger``, ``/_sim/payments``,
  ``/_sim/reset``, ``/_sim/clock``, ``/_sim/settings``, ``/_sim/local/{id}/complete``,
  ``/_sim/shopper/{id}/complete`` (a card shopper finishes 3-D Secure: Stripe's return query,
  Adyen's ``redirectResult``; with ``autoCompleteMs`` < 0 nobody else does).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim.admin import AdminRoutes
from checkout_services.psp_sim.adyen import AdyenRoutes
from checkout_services.psp_sim.core import (
    Sim,
)
from checkout_services.psp_sim.local import LocalRoutes
from checkout_services.psp_sim.stripe import StripeRoutes


def create_app(*, seed: int = 0) -> Starlette:
    sim = Sim(st.SimState(seed=seed))
    stripe, adyen, local, admin = (
        StripeRoutes(sim),
        AdyenRoutes(sim),
        LocalRoutes(sim),
        AdminRoutes(sim),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            sim.http = client
            yield
            for task in list(sim.tasks):
                task.cancel()

    routes = [
        Route("/_sim/health", admin.health, methods=["GET"]),
        Route("/_sim/accounts", admin.accounts, methods=["POST"]),
        Route("/_sim/faults", admin.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/ledger", admin.ledger, methods=["GET"]),
        Route("/_sim/payments", admin.payments, methods=["GET"]),
        Route("/_sim/reset", admin.reset, methods=["POST"]),
        Route("/_sim/clock", admin.clock, methods=["POST"]),
        Route("/_sim/settings", admin.settings, methods=["POST"]),
        Route("/_sim/local/{pid}/complete", admin.complete, methods=["POST"]),
        Route("/_sim/shopper/{pid}/complete", admin.shopper, methods=["POST"]),
        Route("/{ep}/stripe/v1/payment_intents", stripe.create, methods=["POST"]),
        Route("/{ep}/stripe/v1/payment_intents/search", stripe.search, methods=["GET"]),
        Route("/{ep}/stripe/v1/payment_intents/{oid}", stripe.retrieve, methods=["GET"]),
        Route("/{ep}/stripe/v1/payment_intents/{pid}/{action}", stripe.modify, methods=["POST"]),
        Route("/{ep}/stripe/v1/refunds", stripe.refund, methods=["POST"]),
        Route("/{ep}/stripe/v1/refunds/{oid}", stripe.retrieve_refund, methods=["GET"]),
        Route("/{ep}/adyen/v71/payments", adyen.authorize, methods=["POST"]),
        Route("/{ep}/adyen/v71/payments/details", adyen.details, methods=["POST"]),
        Route("/{ep}/adyen/v71/payments/{psp}/{kind}", adyen.modify, methods=["POST"]),
        Route("/{ep}/{method}/v1/payments", local.create, methods=["POST"]),
        Route("/{ep}/{method}/v1/payments", local.lookup, methods=["GET"]),
        Route("/{ep}/{method}/v1/payments/{pid}", local.retrieve, methods=["GET"]),
        Route("/{ep}/{method}/v1/payments/{pid}/{action}", local.modify, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return app
