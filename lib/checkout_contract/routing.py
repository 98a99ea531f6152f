"""The fleet routing file: which region writes for each market, at which fencing epoch.

Rendered by the operator into the ConfigMap ``checkout-fleet-routing`` (key ``routing.json``)
of every region; the gateway and the services' write guard read it. The effective writer lives
here and in the CheckoutRegion status, never in spec (design section 3, GitOps).
"""

from __future__ import annotations

from typing import Final, Literal

from checkout_contract.model import ConfigModel

CONFIGMAP_NAME: Final = "checkout-fleet-routing"
CONFIG_KEY: Final = "routing.json"
DEFAULT_MOUNT_DIR: Final = "/etc/checkout/routing"

MarketState = Literal["Serving", "Fencing", "Down"]
"""Serving: ``writer`` accepts writes. Fencing: a move is in progress, writes get 503 +
Retry-After. Down: no healthy legal writer exists (residency), writes are refused."""


class RegionEntry(ConfigModel):
    name: str
    jurisdiction: str
    gateway_url: str
    """Where the region's gateway is reachable from its peers (for forwarded writes)."""


class MarketRoute(ConfigModel):
    market: str
    writer: str
    epoch: int
    """Monotonic fencing epoch: bumped on every change of writer (starts at 1)."""
    read_regions: tuple[str, ...]
    state: MarketState = "Serving"


class FleetRouting(ConfigModel):
    fleet: str
    regions: tuple[RegionEntry, ...]
    """Sorted by name."""
    markets: tuple[MarketRoute, ...]
    """Sorted by market."""

    def route_for(self, market: str) -> MarketRoute | None:
        for route in self.markets:
            if route.market == market:
                return route
        return None
