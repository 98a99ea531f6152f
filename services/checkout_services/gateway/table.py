"""The routing table: the operator's FleetRouting file, followed live (no restart).

The file is the ConfigMap ``checkout-fleet-routing`` mounted as a volume; the kubelet swaps it
atomically (symlink) when the operator changes it. Every request looks at the file's identity
(inode, mtime, size: one ``stat``) and re-reads it when it changed; a poller does the same in the
background so that readiness knows how fresh the table is even without traffic. A file that
turns unreadable or invalid keeps the last good table; readiness fails once no good read
happened for ``max_age`` seconds.

A peer gateway URL that is not ``https`` (see :mod:`urls`) is left out of the table, with a
warning: a write forwarded there carries the client's bearer token, so it answers 503
("no gateway URL") instead of sending the token in clear text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from checkout_contract import routing
from checkout_services.common import settings
from checkout_services.gateway import urls

log = logging.getLogger("checkout_services.gateway.table")

Identity = tuple[int, int, int]


class StaleRouting(Exception):
    """The routing table could not be refreshed for too long."""


class RoutingTable:
    def __init__(self, path: str | Path, max_age_s: float = 30.0) -> None:
        self.path = Path(path)
        self.max_age_s = max_age_s
        self._identity: Identity | None = None
        self._routing: routing.FleetRouting | None = None
        self._by_market: dict[str, routing.MarketRoute] = {}
        self._urls: dict[str, str] = {}
        self.last_ok = 0.0
        """Monotonic time of the last successful check (file unchanged or re-read and valid)."""
        self.last_error = ""
        self.reloads = 0

    def _stat(self) -> Identity | None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self.last_error = f"cannot stat {self.path}: {exc.strerror}"
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self) -> routing.FleetRouting | None:
        """Re-read the file if it changed; return the current table (None before a good read)."""
        identity = self._stat()
        if identity is None:
            return self._routing
        if identity != self._identity or self._routing is None:
            try:
                loaded = settings.load_fleet_routing(self.path)
            except settings.SettingsError as exc:
                if self.last_error != str(exc):
                    log.warning("keeping the last good routing table: %s", exc)
                self.last_error = str(exc)
                return self._routing
            self._install(loaded)
            self._identity = identity
        self.last_ok = time.monotonic()
        self.last_error = ""
        return self._routing

    def _install(self, loaded: routing.FleetRouting) -> None:
        self._routing = loaded
        self._by_market = {m.market: m for m in loaded.markets}
        self._urls = {}
        for r in loaded.regions:
            try:
                self._urls[r.name] = urls.check(r.gateway_url, f"gatewayUrl of {r.name}").rstrip(
                    "/"
                )
            except urls.InsecureURL as exc:
                log.warning("no writes are forwarded to region %s: %s", r.name, exc)
        self.reloads += 1
        log.info(
            "routing table loaded: %s",
            ", ".join(f"{m.market}->{m.writer}@{m.epoch}/{m.state}" for m in loaded.markets),
        )

    def route(self, market: str) -> routing.MarketRoute | None:
        self.refresh()
        return self._by_market.get(market)

    def gateway_url(self, region: str) -> str | None:
        return self._urls.get(region)

    def regions(self) -> tuple[str, ...]:
        """Every region of the fleet (with or without a usable gateway URL)."""
        loaded = self.refresh()
        return tuple(r.name for r in loaded.regions) if loaded is not None else ()

    def markets(self) -> tuple[str, ...]:
        return tuple(self._by_market)

    def age_s(self) -> float:
        return time.monotonic() - self.last_ok if self.last_ok else float("inf")

    async def check_fresh(self) -> None:
        """Readiness check: raises :class:`StaleRouting` when the table is too old."""
        self.refresh()
        if self._routing is None or self.age_s() > self.max_age_s:
            raise StaleRouting(self.last_error or "no routing table")

    async def poll(self, every_s: float) -> None:
        """Background refresh, so freshness is known without traffic."""
        while True:
            self.refresh()
            await asyncio.sleep(every_s)
