"""Routing, retry rules and the circuit breaker: table tests, no network."""

from __future__ import annotations

import random
from typing import Any

import pytest

from checkout_contract import payments as config
from checkout_services.payments import breaker, routing


def prov(name: str, weight: int = 1, type_: config.ProviderType = "stripe") -> config.Provider:
    return config.Provider(
        name=name,
        type=type_,
        endpoint=f"https://psp.example/{name}",
        account=f"acct_{name}",
        credentials_dir=f"/creds/{name}",
        weight=weight,
    )


def route(
    name: str,
    strategy: config.Strategy = "priority",
    providers: tuple[config.Provider, ...] = (),
    **kw: Any,
) -> config.Route:
    return config.Route(
        name=name,
        match=config.Match(**kw.pop("match", {})),
        strategy=strategy,
        providers=providers or (prov("a"), prov("b"), prov("c")),
        **kw,
    )


CFG = config.PaymentRoutingConfig(
    region="eu",
    routes=(
        route("nl-ideal", match={"countries": ("NL",), "payment_methods": ("ideal",)}),
        route("eur-card", match={"currencies": ("EUR",), "payment_methods": ("card",)}),
        route("in-upi", match={"countries": ("IN",), "currencies": ("INR",)}),
        route("fallback"),
    ),
)


@pytest.mark.parametrize(
    ("country", "currency", "method", "expected"),
    [
        ("NL", "EUR", "ideal", "nl-ideal"),
        ("NL", "EUR", "card", "eur-card"),  # first match wins, in order
        ("DE", "EUR", "card", "eur-card"),
        ("IN", "INR", "upi", "in-upi"),
        ("IN", "USD", "card", "fallback"),
        ("BR", "BRL", "pix", "fallback"),
    ],
)
def test_first_matching_route_wins(country: str, currency: str, method: str, expected: str) -> None:
    r = routing.match_route(CFG, country=country, currency=currency, method=method)
    assert r is not None
    assert r.name == expected


def test_no_route_when_nothing_matches() -> None:
    cfg = CFG.model_copy(update={"routes": CFG.routes[:3]})
    assert routing.match_route(cfg, country="BR", currency="BRL", method="pix") is None


def test_priority_keeps_the_listed_order() -> None:
    r = route("p")
    for seed in range(20):
        assert [p.name for p in routing.order_providers(r, rng=random.Random(seed))] == [
            "a",
            "b",
            "c",
        ]


def test_weighted_order_follows_the_weights_and_weight_zero_is_last() -> None:
    r = route("w", "weighted", (prov("a", 3), prov("b", 1), prov("z", 0)))
    rng = random.Random(42)
    firsts = [routing.order_providers(r, rng=rng)[0].name for _ in range(4000)]
    share_a = firsts.count("a") / len(firsts)
    assert 0.70 < share_a < 0.80  # 3:1 -> 75 %
    assert "z" not in firsts
    assert all(routing.order_providers(r, rng=rng)[-1].name == "z" for _ in range(50))


def test_weighted_order_is_reproducible_with_a_seed() -> None:
    r = route("w", "weighted", (prov("a", 2), prov("b", 2), prov("c", 1)))
    one = [[p.name for p in routing.order_providers(r, rng=random.Random(7))] for _ in range(3)]
    assert one[0] == one[1] == one[2]


def test_success_rate_ordering_prefers_the_better_provider_but_explores() -> None:
    r = route("s", success_rate_ordering=True)
    rates = routing.SuccessRates()
    for _ in range(50):
        rates.record("a", False)
        rates.record("c", True)
    rng = random.Random(3)
    firsts = [routing.order_providers(r, rng=rng, rates=rates)[0].name for _ in range(2000)]
    # exploit: c first; explore (epsilon = 10 %): the strategy's own order (a first)
    assert 0.85 < firsts.count("c") / 2000 < 0.95
    assert 0.05 < firsts.count("a") / 2000 < 0.15


def test_without_success_rate_ordering_the_rates_are_ignored() -> None:
    r = route("s")
    rates = routing.SuccessRates()
    for _ in range(50):
        rates.record("a", False)
    assert routing.order_providers(r, rng=random.Random(1), rates=rates)[0].name == "a"


@pytest.mark.parametrize(
    ("failure", "rules", "expected"),
    [
        ("soft_decline", (), ("next_provider", 1)),
        ("hard_decline", (), ("stop", 1)),
        ("fraud", (), ("stop", 1)),
        ("timeout", (), ("next_provider", 1)),
        ("server_error", (), ("next_provider", 1)),
        ("network_error", (), ("next_provider", 1)),
        ("soft_decline", (("soft_decline", "stop", 1),), ("stop", 1)),
        ("network_error", (("network_error", "retry_same", 3),), ("retry_same", 3)),
        ("server_error", (("server_error", "stop", 1),), ("stop", 1)),
        # hard declines and fraud are never retried, whatever a rule says
        ("hard_decline", (("hard_decline", "next_provider", 2),), ("stop", 1)),
        ("fraud", (("fraud", "retry_same", 2),), ("stop", 1)),
    ],
)
def test_retry_action_by_failure_class(
    failure: config.FailureClass, rules: tuple[tuple[str, str, int], ...], expected: tuple[str, int]
) -> None:
    r = route(
        "r", retry=tuple(config.RetryRule(on=on, action=a, max_attempts=n) for on, a, n in rules)
    )  # type: ignore[arg-type]
    assert routing.retry_action(r, failure) == expected


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_at_the_failure_rate_then_half_opens_and_closes() -> None:
    clock = Clock()
    b = breaker.CircuitBreaker(
        config.CircuitBreaker(
            failure_rate_percent=50,
            minimum_requests=4,
            window_seconds=10,
            open_seconds=5,
            half_open_requests=2,
        ),
        clock=clock,
    )
    for ok in (True, False, True):
        b.record(ok)
    assert b.current() == "closed"  # below minimum_requests
    b.record(False)  # 2 of 4 failed = 50 %
    assert b.current() == "open"
    assert not b.allow()
    clock.t += 5
    assert b.current() == "half_open"
    assert b.allow()
    assert b.allow()
    assert not b.allow()  # only half_open_requests probes
    b.record(True)
    b.record(True)
    assert b.current() == "closed"


def test_breaker_reopens_on_a_failed_probe_and_forgets_old_failures() -> None:
    clock = Clock()
    b = breaker.CircuitBreaker(
        config.CircuitBreaker(
            failure_rate_percent=50,
            minimum_requests=2,
            window_seconds=10,
            open_seconds=5,
            half_open_requests=1,
        ),
        clock=clock,
    )
    b.record(False)
    clock.t += 11  # outside the window
    b.record(False)
    assert b.current() == "closed"
    b.record(False)
    assert b.current() == "open"
    clock.t += 5
    assert b.allow()
    b.record(False)
    assert b.current() == "open"


def test_breakers_are_per_provider_and_endpoint() -> None:
    reg = breaker.BreakerRegistry()
    s = config.CircuitBreaker()
    assert reg.get("adyen", "http://eu", s) is reg.get("adyen", "http://eu", s)
    assert reg.get("adyen", "http://eu", s) is not reg.get("adyen", "http://us", s)


def test_a_checkout_gets_the_same_weighted_order_everywhere() -> None:
    # Another region or a retry must try providers in the same order, so its derived PSP keys
    # meet the first attempt's instead of charging at another provider.
    r = route("w", "weighted", (prov("a", 1), prov("b", 1), prov("c", 1)))
    for n in range(50):
        orders = {
            tuple(
                p.name for p in routing.order_providers(r, rng=routing.checkout_rng(f"co_{n}", "w"))
            )
            for _ in range(5)
        }
        assert len(orders) == 1
    firsts = [
        routing.order_providers(r, rng=routing.checkout_rng(f"co_{n}", "w"))[0].name
        for n in range(3000)
    ]
    for name in "abc":
        assert 0.28 < firsts.count(name) / 3000 < 0.39  # still spread by weight over checkouts


def method_route(**provider: Any) -> config.PaymentRoutingConfig:
    p = {
        "name": "upi-in",
        "type": "upi",
        "endpoint": "https://checkout-live.adyen.test",
        "account": "ShopIN",
        "credentialsDir": "/etc/checkout/psp-credentials/upi",
        **provider,
    }
    return config.PaymentRoutingConfig.model_validate(
        {
            "region": "in",
            "routes": [{"name": "shop/upi", "match": {}, "strategy": "priority", "providers": [p]}],
        }
    )


def test_a_method_type_carried_by_a_provider_api_becomes_that_api_for_its_method_only() -> None:
    wired, only = routing.by_wire(method_route(api="adyen"))
    [p] = wired.routes[0].providers
    assert (p.type, p.api, only) == ("adyen", None, {"upi-in": "upi"})
    assert routing.simulator_dialect(wired) == []
    # without api: the simulator's dialect, named at start
    plain, none = routing.by_wire(method_route())
    assert (plain.routes[0].providers[0].type, none) == ("upi", {})
    assert routing.simulator_dialect(plain) == ["upi-in"]


def test_api_is_refused_on_a_provider_api_and_kept_out_of_the_file_when_unset() -> None:
    with pytest.raises(ValueError, match="only for the payment-method types"):
        method_route(type="stripe", api="adyen")
    assert '"api"' not in method_route().to_json()  # files without it keep their hash
    assert '"api": "adyen"' in method_route(api="adyen").to_json()
