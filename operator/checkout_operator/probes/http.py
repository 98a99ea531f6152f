"""One probe: GET a region's health URL and classify the answer.

* Success: a 2xx answer within the timeout.
* Failure, with the reason: any other status (``503``), connection refused (``refused``), a
  TLS error (``tls``), another transport error (its type).
* Unknown: no answer within the timeout (``timeout after 2.0 s``): the region may be slow or
  gone; it counts as failed and never resets the failure count.

One shared ``httpx.AsyncClient`` per prober; no retries (a retry would hide a failure).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Mapping

import httpx

from checkout_operator.failover.health import ProbeResult


def _connect_reason(exc: BaseException) -> str:
    """``refused``, ``tls``, ``dns`` or the innermost error's type, from the cause chain."""
    seen: BaseException | None = exc
    last: BaseException = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "refused"
        if isinstance(seen, ssl.SSLError):
            return "tls"
        if isinstance(seen, socket.gaierror):
            return "dns"
        last = seen
        seen = seen.__cause__ or seen.__context__
    return f"connect: {type(last).__name__}"


class Prober:
    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._own = client is None
        self.client = client or httpx.AsyncClient(
            trust_env=False, follow_redirects=False, http2=False
        )

    async def aclose(self) -> None:
        if self._own:
            await self.client.aclose()

    async def probe(self, url: str, limit: float) -> ProbeResult:
        started = time.perf_counter()

        def done(outcome: str, reason: str) -> ProbeResult:
            return ProbeResult(
                outcome,  # type: ignore[arg-type]
                reason,
                time.perf_counter() - started,
                time.time(),
            )

        try:
            # httpx's own timeout ends a slow probe cleanly (connection closed); the asyncio
            # one is only a backstop (a cancelled request may leave its connection behind).
            async with asyncio.timeout(limit + 0.5):
                response = await self.client.get(
                    url,
                    timeout=httpx.Timeout(limit),
                    headers={"User-Agent": "checkout-operator-probe"},
                )
        except (TimeoutError, httpx.TimeoutException):
            return done("Unknown", f"timeout after {limit:g} s")
        except httpx.ConnectError as exc:
            return done("Failure", _connect_reason(exc))
        except httpx.HTTPError as exc:
            return done("Failure", type(exc).__name__)
        if 200 <= response.status_code < 300:
            return done("Success", str(response.status_code))
        return done("Failure", str(response.status_code))

    async def probe_all(
        self, urls: Mapping[str, str], limits: Mapping[str, float]
    ) -> dict[str, ProbeResult]:
        """Probe every region concurrently (``limits``: seconds per region): region -> result."""
        names = sorted(urls)
        results = await asyncio.gather(*(self.probe(urls[n], limits[n]) for n in names))
        return dict(zip(names, results, strict=True))
