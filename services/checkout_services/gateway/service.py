"""The gateway's work: admit a request (token, limits, velocity), decide where it goes (local
service, the writer region's gateway, or a refusal) and proxy it there.

Reads go to the local region's services. A write for market M goes to the region that may write
for M now (:mod:`leases`): locally when that is this region, else forwarded to that region's
gateway with the original ``Idempotency-Key`` (so a retry through any region hits the same
idempotency record and the PSP's own dedup). While M is being fenced, or no region holds its
lease yet, the answer is 503 + Retry-After naming the writer. A forwarded write is never
forwarded again: a peer whose table disagrees answers 503 until the tables converge.

The shopper's return from 3-D Secure (``payment-details``) is a write that continues a checkout
where it was created: when the market moved to another region while the shopper was at the
issuer, the new writer's orders service holds no such checkout (404). Its gateway then asks the
market's other read regions (the regions that may hold its data), each serving the request
only from its own orders service (never forwarding it on); the region whose saga waits for the
shopper answers. A region that does not answer makes it 503 (retry), never 404.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote

import httpx
from fastapi import Request
from fastapi.responses import Response

from checkout_services.common import principal, requestid
from checkout_services.gateway import auth, exceptions, leases, ratelimit, table, tracing
from checkout_services.gateway.metrics import GatewayMetrics

log = logging.getLogger("checkout_services.gateway.service")

FORWARDED_BY: Final = "x-checkout-forwarded-by"
ORIGIN_PROBE: Final = "x-checkout-origin-probe"
"""On a forwarded payment-details request: the market's writer holds no such checkout and asks
this region, one of the market's read regions, whether it does (:meth:`Gateway.details`)."""
SERVED_BY: Final = "x-checkout-served-by"
BOT_SUSPECT: Final = "x-checkout-bot-suspect"

# end-to-end request headers worth passing on (everything else is dropped)
PASS_REQUEST: Final = frozenset(
    {"content-type", "accept", "accept-language", "idempotency-key", "user-agent"}
)
PSP_SIGNATURES: Final = frozenset({"stripe-signature", "sim-signature"})
"""Provider webhook signature headers, passed to payments on the webhook route only (Adyen's
signature is inside the body, which is passed byte for byte)."""
PASS_RESPONSE: Final = frozenset(
    {
        "content-type",
        "retry-after",
        "idempotent-replayed",
        "location",
        "x-checkout-writer",
        SERVED_BY,
        "www-authenticate",
    }
)

MARKET: Final = re.compile(r"^[A-Z]{2}$")
SERVICE_TIMING: Final = re.compile(r"(?:^|,)\s*service;dur=([0-9.]+)")

Decision = Literal["local", "forwarded", "rejected"]


@dataclass(frozen=True)
class Admission:
    principal: auth.Principal
    bot_suspect: bool
    traceparent: str
    webhook: bool = False
    """A payment provider's webhook: its signature headers go through to payments."""


@dataclass
class Gateway:
    region: str
    table: table.RoutingTable
    leases: leases.LeaseView
    limiter: ratelimit.Limiter
    authenticator: auth.Authenticator
    http: httpx.AsyncClient
    endpoints: Mapping[str, str]
    """Service name -> base URL inside the region (from the RegionConfig)."""
    metrics: GatewayMetrics
    bot_threshold: int
    upstream_timeout_s: float = 10.0
    forward_timeout_s: float = 10.0
    auth_failures: ratelimit.AuthFailures | None = None
    internal_key: bytes | None = None
    """Signs the principal passed to the local services (:mod:`common.principal`)."""

    def reject(self, route: str, market: str, reason: str) -> None:
        self.metrics.decisions.labels(route, market, "rejected").inc()
        self.metrics.rejections.labels(reason).inc()

    def market_label(self, market: str | None) -> str:
        """Bounded label values: known markets, else ``unknown`` (or ``-`` for none)."""
        if not market:
            return "-"
        return market if self.table.route(market) is not None else "unknown"

    async def authenticate(self, request: Request, route: str) -> auth.Principal:
        """The token's principal; an address that failed too often gets 429 unverified."""
        address = request.client.host if request.client else "-"
        if self.auth_failures is not None:
            wait_s = await self.auth_failures.blocked(address)
            if wait_s:
                self.reject(route, "-", "rate-limited-auth")
                raise exceptions.RateLimited("authentication-failure", wait_s)
        try:
            return await self.authenticator.verify(request.headers.get("authorization"))
        except exceptions.Unauthorized:
            self.reject(route, "-", "unauthorized")
            if self.auth_failures is not None:
                wait_s = await self.auth_failures.failed(address)
                if wait_s:
                    raise exceptions.RateLimited("authentication-failure", wait_s) from None
            raise

    async def admit(
        self, request: Request, route: str, principal: auth.Principal, market: str | None
    ) -> Admission:
        """Take a token from the client's (and the market's) bucket; flag bot-like velocity."""
        verdict = await self.limiter.take(principal.client_id, market)
        suspect = verdict.velocity > self.bot_threshold
        if suspect:
            self.metrics.bot_flags.inc()
            if verdict.velocity == self.bot_threshold + 1:
                log.warning(
                    "bot-like velocity: client %s made %d requests in one window",
                    principal.client_id,
                    verdict.velocity,
                )
        if not verdict.allowed:
            self.reject(route, self.market_label(market), f"rate-limited-{verdict.scope}")
            raise exceptions.RateLimited(verdict.scope, verdict.retry_after_s)
        return Admission(principal, suspect, tracing.child(request.headers.get("traceparent")))

    def _headers(
        self, request: Request, admission: Admission, *, forward: bool, body: bytes = b""
    ) -> dict[str, str]:
        passed = PASS_REQUEST | PSP_SIGNATURES if admission.webhook else PASS_REQUEST
        headers = {k: v for k, v in request.headers.items() if k in passed}
        headers.update(requestid.outgoing_headers())
        headers["traceparent"] = admission.traceparent
        # No unsigned identity goes on (the token's client id used to, read by nobody): the
        # next hop refused it when an identity provider numbered its clients like cards. The
        # peer gateway reads the token itself; a local service gets the signed principal.
        if admission.bot_suspect:
            headers[BOT_SUSPECT] = "1"
        if forward:
            auth_header = request.headers.get("authorization")
            if auth_header:
                headers["authorization"] = auth_header
            headers[FORWARDED_BY] = self.region
        elif self.internal_key is not None:
            # the peer gateway authenticates the token itself; a local service trusts this
            who = principal.header_value(admission.principal.subject)
            headers.update(
                principal.signed_headers(
                    self.internal_key, request.method, self._target(request), who, body
                )
            )
        return headers

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, limit_s: float
    ) -> Response:
        start = time.perf_counter()
        upstream = await self.http.request(
            method, url, headers=headers, content=body or None, timeout=limit_s
        )
        upstream_ms = (time.perf_counter() - start) * 1000
        out = {k: v for k, v in upstream.headers.items() if k in PASS_RESPONSE}
        out.setdefault(SERVED_BY, self.region)
        # Server-Timing: ``upstream`` is this hop's round trip to the next one; ``service`` the
        # time in the service that did the work (the peer gateway's figure on a forwarded call)
        service_ms = upstream_ms
        peer = SERVICE_TIMING.search(upstream.headers.get("server-timing", ""))
        if peer and headers.get(FORWARDED_BY):
            service_ms = float(peer.group(1))
        out["server-timing"] = f"upstream;dur={upstream_ms:.3f}, service;dur={service_ms:.3f}"
        return Response(content=upstream.content, status_code=upstream.status_code, headers=out)

    @staticmethod
    def _target(request: Request) -> str:
        """The path and query sent on, as received; a ``.`` or ``..`` segment is refused (an
        HTTP client would resolve it: ``items/..`` would address the whole cart)."""
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1")
        if any(unquote(seg) in (".", "..") for seg in path.split("/")):
            raise exceptions.InvalidBody("a path segment may not be '.' or '..'", field="path")
        query = request.url.query
        return f"{path}?{query}" if query else path

    async def local(
        self,
        request: Request,
        admission: Admission,
        service: str,
        route: str,
        body: bytes = b"",
        market: str | None = None,
    ) -> Response:
        base = self.endpoints.get(service)
        if base is None:
            self.reject(route, self.market_label(market), "no-upstream")
            raise exceptions.UpstreamUnavailable(
                f"the region config names no endpoint for the {service} service", service=service
            )
        start = time.perf_counter()
        try:
            response = await self._send(
                request.method,
                base.rstrip("/") + self._target(request),
                self._headers(request, admission, forward=False, body=body),
                body,
                self.upstream_timeout_s,
            )
        except httpx.HTTPError as exc:
            self.reject(route, self.market_label(market), "upstream-unavailable")
            raise exceptions.UpstreamUnavailable(
                f"the {service} service did not answer ({type(exc).__name__}); retry",
                service=service,
            ) from None
        finally:
            self.metrics.upstream_seconds.labels(service).observe(time.perf_counter() - start)
        self.metrics.decisions.labels(route, self.market_label(market), "local").inc()
        return response

    async def write(
        self,
        request: Request,
        admission: Admission,
        service: str,
        route: str,
        market: str,
        body: bytes,
    ) -> Response:
        market_route = self.table.route(market)
        if market_route is None:
            self.reject(route, "unknown", "unknown-market")
            raise exceptions.UnknownMarket(
                f"market {market!r} is not in the fleet routing", field="market"
            )
        if market_route.state == "Down":
            self.reject(route, market, "market-down")
            raise exceptions.MarketDown(
                f"market {market} has no legal healthy writer", market=market
            )
        holder = await self.leases.holder(market_route)
        if market_route.state == "Fencing" or holder is None:
            self.reject(route, market, "market-fencing")
            raise exceptions.MarketFencing(
                f"market {market} is moving to {market_route.writer} "
                f"(epoch {market_route.epoch}); retry shortly",
                retry_after_s=2,
                market=market,
                writer=market_route.writer,
                epoch=market_route.epoch,
            )
        if holder == self.region:
            return await self.local(request, admission, service, route, body, market)
        if request.headers.get(FORWARDED_BY):
            # the sender thinks we write for the market, we think it is ``holder``: a move is
            # being rolled out; never bounce the request on (no loops), let the client retry
            self.reject(route, market, "routing-converging")
            raise exceptions.MarketFencing(
                f"regions disagree on the writer of market {market} while it moves "
                f"(here: {holder}, epoch {market_route.epoch}); retry shortly",
                retry_after_s=1,
                market=market,
                writer=holder,
                epoch=market_route.epoch,
            )
        return await self.forward(request, admission, route, market, holder, body)

    async def details(
        self, request: Request, admission: Admission, route: str, market: str, body: bytes
    ) -> Response:
        """The shopper's payment details: at the market's writer, else at the region that
        created the checkout (see the module's docstring)."""
        if request.headers.get(ORIGIN_PROBE) and request.headers.get(FORWARDED_BY):
            return await self.local(request, admission, "orders", route, body, market)
        response = await self.write(request, admission, "orders", route, market, body)
        if response.status_code != 404 or response.headers.get(SERVED_BY) != self.region:
            return response  # answered, or forwarded (the writer's gateway looked itself)
        market_route = self.table.route(market)
        peers = [r for r in market_route.read_regions if r != self.region] if market_route else []
        unanswered: list[str] = []
        for peer in peers:
            try:
                found = await self.forward(
                    request, admission, route, market, peer, body, probe=True
                )
            except exceptions.UpstreamUnavailable:
                unanswered.append(peer)
                continue
            if found.status_code != 404:
                self.metrics.origin_lookups.labels("found").inc()
                return found
        if unanswered:
            self.metrics.origin_lookups.labels("unanswered").inc()
            raise exceptions.UpstreamUnavailable(
                f"checkout not held by the writer of market {market}; region(s) "
                f"{', '.join(unanswered)} that may hold it did not answer: retry with the same "
                "Idempotency-Key",
                writer=unanswered[0],
            )
        self.metrics.origin_lookups.labels("nowhere").inc()
        return response

    async def forward(
        self,
        request: Request,
        admission: Admission,
        route: str,
        market: str,
        peer: str,
        body: bytes,
        *,
        probe: bool = False,
    ) -> Response:
        base = self.table.gateway_url(peer)
        if base is None:
            self.reject(route, market, "no-peer")
            raise exceptions.UpstreamUnavailable(
                f"the routing names no gateway URL for region {peer}", writer=peer
            )
        probe_header = {ORIGIN_PROBE: "1"} if probe else {}
        start = time.perf_counter()
        try:
            response = await self._send(
                request.method,
                base + self._target(request),
                {**self._headers(request, admission, forward=True), **probe_header},
                body,
                self.forward_timeout_s,
            )
        except httpx.HTTPError as exc:
            self.reject(route, market, "peer-unavailable")
            raise exceptions.UpstreamUnavailable(
                f"the gateway of {peer}, which writes for market {market}, did not answer "
                f"({type(exc).__name__}); retry with the same Idempotency-Key",
                writer=peer,
            ) from None
        finally:
            self.metrics.forward_seconds.labels(peer).observe(time.perf_counter() - start)
        self.metrics.decisions.labels(route, market, "forwarded").inc()
        return response


def reject_body(gw: Gateway, route: str, exc: exceptions.GatewayError) -> exceptions.GatewayError:
    gw.reject(route, "-", exc.slug)
    return exc


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object: 400 when it is not JSON, 422 when it is not an object."""
    try:
        value = json.loads(raw) if raw else None
    except RecursionError:
        raise exceptions.MalformedBody("the body nests too deeply", field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise exceptions.MalformedBody(f"the body is not valid JSON: {exc}", field="body") from None
    if not isinstance(value, dict):
        raise exceptions.InvalidBody("the body must be a JSON object", field="body")
    return value


def market_of(body: Mapping[str, Any]) -> str:
    market = body.get("market")
    if not isinstance(market, str) or not MARKET.fullmatch(market):
        raise exceptions.InvalidBody(
            "market: an ISO 3166-1 alpha-2 code such as 'DE' is required", field="market"
        )
    return market
