"""Provider selection from :class:`config.PaymentRoutingConfig`: pure, seeded, table-tested."""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from checkout_contract import payments as config

DEFAULT_ACTIONS: dict[config.FailureClass, config.RetryAction] = {
    "soft_decline": "next_provider",
    "hard_decline": "stop",
    "fraud": "stop",
    "timeout": "next_provider",  # only after a lookup showed nothing was charged
    "server_error": "next_provider",  # likewise
    "network_error": "next_provider",  # the request never left: nothing can be charged
}
NEVER_RETRIED: frozenset[config.FailureClass] = frozenset({"hard_decline", "fraud"})
EXPLORATION_EPSILON = 0.1


def match_route(
    routing: config.PaymentRoutingConfig, *, country: str, currency: str, method: str
) -> config.Route | None:
    """The first route (in evaluation order) whose match accepts the payment."""
    for route in routing.routes:
        m = route.match
        if m.countries and country not in m.countries:
            continue
        if m.currencies and currency not in m.currencies:
            continue
        if m.payment_methods and method not in m.payment_methods:
            continue
        return route
    return None


def retry_action(
    route: config.Route, failure: config.FailureClass
) -> tuple[config.RetryAction, int]:
    """What to do after ``failure``: (action, max attempts at the same provider).

    A hard decline or a fraud decline always stops, whatever the rules say.
    """
    if failure in NEVER_RETRIED:
        return "stop", 1
    for rule in route.retry:
        if rule.on == failure:
            return rule.action, rule.max_attempts
    return DEFAULT_ACTIONS[failure], 1


@dataclass
class SuccessRates:
    """Recent authorization outcomes per provider (a sliding window of the last N)."""

    window: int = 200

    def __post_init__(self) -> None:
        self.outcomes: dict[str, deque[bool]] = {}

    def record(self, provider: str, approved: bool) -> None:
        self.outcomes.setdefault(provider, deque(maxlen=self.window)).append(approved)

    def rate(self, provider: str) -> float:
        """Laplace-smoothed approval rate: an unseen provider starts at 0.5."""
        seen = self.outcomes.get(provider, ())
        return (sum(seen) + 1) / (len(seen) + 2)


def checkout_rng(checkout_id: str, route: str, seed: int = 0) -> random.Random:
    """The random draws of one checkout's routing, the same in every process and region.

    A retry, a restarted process or another region draws the same weighted order (and the same
    exploration decision), so it tries the same providers in the same order and its derived
    PSP keys meet the first attempt's at the PSP instead of starting a charge elsewhere.
    """
    digest = hashlib.sha256(f"{seed}:{route}:{checkout_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def order_providers(
    route: config.Route,
    *,
    rng: random.Random,
    rates: SuccessRates | None = None,
    epsilon: float = EXPLORATION_EPSILON,
) -> list[config.Provider]:
    """The order in which to try the route's providers.

    ``priority``: as listed. ``weighted``: a weighted draw without replacement (weight 0 comes
    last, as a pure fallback). With ``success_rate_ordering``: by recent approval rate, except
    that with probability ``epsilon`` the strategy's own order is kept (exploration), so a
    provider that had a bad minute gets traffic again and can recover its rate.
    """
    providers: Sequence[config.Provider] = route.providers
    order = weighted_order(providers, rng) if route.strategy == "weighted" else list(providers)
    if route.success_rate_ordering and rates is not None and rng.random() >= epsilon:
        # sorted() is stable: ties keep the strategy's order.
        order = sorted(order, key=lambda p: -rates.rate(p.name))
    return order


def weighted_order(
    providers: Sequence[config.Provider], rng: random.Random
) -> list[config.Provider]:
    pool = [p for p in providers if p.weight > 0]
    zero = [p for p in providers if p.weight == 0]
    out: list[config.Provider] = []
    while pool:
        total = sum(p.weight for p in pool)
        pick = rng.uniform(0, total)
        acc = 0.0
        chosen = pool[-1]
        for p in pool:
            acc += p.weight
            if pick < acc:
                chosen = p
                break
        out.append(chosen)
        pool.remove(chosen)
    return out + zero


def by_wire(
    routing: config.PaymentRoutingConfig,
) -> tuple[config.PaymentRoutingConfig, dict[str, str]]:
    """Providers of a payment-method type carried by a provider API (``type: upi``, ``api:
    adyen``) become providers of that API (Adyen's Checkout API with its ``upi_*`` types, a
    Stripe PaymentIntent with ``payment_method_types[]=upi``, ...): the wire format, webhook
    scheme and everything after are that API's. Returns the config and, for those providers,
    the one method each takes."""
    only: dict[str, str] = {}
    routes = []
    for route in routing.routes:
        providers = []
        for p in route.providers:
            if p.api is not None:
                only[p.name] = p.type
                p = p.model_copy(update={"type": p.api, "api": None})
            providers.append(p)
        routes.append(route.model_copy(update={"providers": tuple(providers)}))
    return routing.model_copy(update={"routes": tuple(routes)}), only


def simulator_dialect(routing: config.PaymentRoutingConfig) -> list[str]:
    """Providers of a payment-method type without ``api``: they speak the PSP simulator's
    own dialect, which no real provider has."""
    return sorted(
        {p.name for r in routing.routes for p in r.providers if p.type in ("upi", "ideal", "pix")}
    )
