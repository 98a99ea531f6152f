"""A provider's webhook, delivered to the region whose payments service holds the payment.

A provider has one webhook URL per account, so its notifications reach one region's gateway,
while a checkout may have been paid in another one (resumed there after a market moved: an
Adyen capture made in region B is confirmed only by a notification that reaches region A).
The local payments service verifies the signature and applies what it holds; when the
delivery names a payment it does not hold, its answer (still 2xx) carries
:data:`service.WEBHOOK_UNHELD`. The gateway then passes the same body, byte for byte, and the
provider's signature headers to every other region's gateway with the origin-probe header;
such a peer serves it only from its own payments service and never passes it on.

The answer to the provider: a peer's answer when that peer held the whole delivery; 503 when a
peer did not answer (or answered with an error) so that the provider delivers it again later
(Stripe and Adyen both retry): every region applies a redelivery idempotently (event ids are
kept where the payment is; an unheld event is recorded nowhere else); else the local answer
(held nowhere: 2xx, as before). Signatures are verified only by payments.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request
from fastapi.responses import Response

from checkout_services.gateway import exceptions
from checkout_services.gateway import service as svc

NO_MARKET: Final = "-"


def _for_provider(response: Response) -> Response:
    """The answer without the internal header."""
    if svc.WEBHOOK_UNHELD in response.headers:
        del response.headers[svc.WEBHOOK_UNHELD]
    return response


async def deliver(
    gw: svc.Gateway, request: Request, admission: svc.Admission, route: str, body: bytes
) -> Response:
    response = await gw.local(request, admission, "payments", route, body)
    if request.headers.get(svc.ORIGIN_PROBE) and request.headers.get(svc.FORWARDED_BY):
        return response  # a peer asks: our payments only, the header tells it what we held
    if not 200 <= response.status_code < 300 or not response.headers.get(svc.WEBHOOK_UNHELD):
        return _for_provider(response)
    unanswered: list[str] = []
    for peer in (r for r in gw.table.regions() if r != gw.region):
        try:
            answer = await gw.forward(request, admission, route, NO_MARKET, peer, body, probe=True)
        except exceptions.UpstreamUnavailable:
            unanswered.append(peer)
            continue
        if not 200 <= answer.status_code < 300:
            unanswered.append(peer)  # e.g. its payments down: we cannot know what it holds
        elif not answer.headers.get(svc.WEBHOOK_UNHELD):
            gw.metrics.webhook_lookups.labels("held").inc()
            return _for_provider(answer)
    if unanswered:
        gw.metrics.webhook_lookups.labels("unanswered").inc()
        gw.reject(route, NO_MARKET, "webhook-peer-unavailable")
        raise exceptions.UpstreamUnavailable(
            f"the webhook names a payment this region does not hold, and region(s) "
            f"{', '.join(unanswered)} that may hold it did not answer: deliver it again later",
            writer=unanswered[0],
        )
    gw.metrics.webhook_lookups.labels("nowhere").inc()
    return _for_provider(response)
