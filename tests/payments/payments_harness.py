"""Test harness for the payments service: the PSP simulator and payments instances as real
server processes on loopback (``checkout-services psp-sim`` / ``checkout-services payments``)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from checkout_contract import payments as config
from checkout_stack import servers
from checkout_stack.servers import BIN, free_port, wait_http

__all__ = ["BIN", "free_port", "wait_http"]  # the other harnesses import them from here

# Test credentials: generated per run, written to files the service reads; never in config.
PROVIDERS: dict[str, dict[str, str]] = {
    # name -> type, endpoint name, account
    "stripe-eu": {"type": "stripe", "ep": "eu", "account": "acct_stripe_eu"},
    "adyen-eu": {"type": "adyen", "ep": "eu", "account": "CheckoutShopEU"},
    "adyen-us": {"type": "adyen", "ep": "us", "account": "CheckoutShopEU"},
    "stripe-us": {"type": "stripe", "ep": "us", "account": "acct_stripe_us"},
    "upi-in": {"type": "upi", "ep": "in", "account": "merchant_upi"},
    "ideal-nl": {"type": "ideal", "ep": "eu", "account": "merchant_ideal"},
    "pix-br": {"type": "pix", "ep": "br", "account": "merchant_pix"},
}


RETURN_URL = "https://shop.example/checkout/return"
TOKEN: dict[str, Any] = {
    # What the providers' client libraries hand the shop's page: Stripe's documented test
    # PaymentMethod; Adyen's encrypted card fields (CSE blobs only Adyen can open; a plain
    # test card number would be refused by the service's card-number guard, as it should).
    "stripe": "pm_card_visa",
    "adyen": {
        "type": "scheme",
        "encryptedCardNumber": "adyenjs_0_1_25$eyJhbGciOiJSU0EtT0FFUCJ9.cardnumber",
        "encryptedExpiryMonth": "adyenjs_0_1_25$eyJhbGciOiJSU0EtT0FFUCJ9.month",
        "encryptedExpiryYear": "adyenjs_0_1_25$eyJhbGciOiJSU0EtT0FFUCJ9.year",
        "encryptedSecurityCode": "adyenjs_0_1_25$eyJhbGciOiJSU0EtT0FFUCJ9.cvc",
    },
    "return_url": RETURN_URL,
}
"""The card token a shopper's browser sends with the checkout."""


def apm_token(method: str) -> dict[str, Any]:
    """An APM's token: Adyen's type for it, the return URL (Stripe needs no PaymentMethod)."""
    types = {"upi": "upi_collect", "ideal": "ideal", "pix": "pix"}
    adyen: dict[str, Any] = {"type": types[method]}
    if method == "upi":
        adyen["virtualPaymentAddress"] = "shopper@upi"
    return {"adyen": adyen, "return_url": RETURN_URL}


def token_for(method: str) -> dict[str, Any] | None:
    if method == "card":
        return TOKEN
    return apm_token(method) if method in ("upi", "ideal", "pix") else None


@dataclass
class Sim(servers.Server):
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, f"{self.url}/_sim/{path}", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def reset(self) -> None:
        self.admin("POST", "reset")
        self.admin("POST", "settings", {"autoCompleteMs": 5})

    def faults(self, *rules: dict[str, Any], replace: bool = True) -> None:
        self.admin("POST", "faults", {"rules": list(rules), "replace": replace})

    def ledger(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "ledger")
        return result

    def payments(self, reference: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.admin("GET", f"payments?reference={reference}")[
            "payments"
        ]
        return result


def start_sim(workdir: Path, seed: int = 7) -> Sim:
    port = free_port()
    log = workdir / f"psp-sim-{port}.log"
    proc = servers.spawn([str(BIN), "psp-sim", "--port", str(port), "--seed", str(seed)], log)
    sim = Sim(port, proc, log)
    wait_http(f"{sim.url}/_sim/health", proc, log)
    return sim


@dataclass
class Credentials:
    root: Path
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def dir(self, provider: str) -> Path:
        return self.root / provider

    def all_secret_values(self) -> list[str]:
        return [v for per in self.values.values() for v in per.values()]


def make_credentials(root: Path) -> Credentials:
    creds = Credentials(root)
    per_account: dict[tuple[str, str], tuple[str, str]] = {}
    for name, p in PROVIDERS.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        # one merchant account served at several regional endpoints has one set of keys
        api_key, secret = per_account.setdefault(
            (p["type"], p["account"]),
            (
                f"sk_test_{name.replace('-', '_')}_{os.urandom(12).hex()}",
                # Adyen's HMAC key is hex; Stripe's endpoint secrets are whsec_...
                os.urandom(32).hex() if p["type"] == "adyen" else f"whsec_{os.urandom(16).hex()}",
            ),
        )
        (d / "api-key").write_text(api_key + "\n")
        (d / "webhook-secret").write_text(secret + "\n")
        creds.values[name] = {"api-key": api_key, "webhook-secret": secret}
    return creds


def register_accounts(sim: Sim, creds: Credentials, webhook_urls: dict[str, str]) -> None:
    """Tell the simulator each account's key and secret (the providers' side of the setup)."""
    accounts = []
    for name, p in PROVIDERS.items():
        accounts.append(
            {
                "provider": p["type"],
                "account": p["account"],
                "apiKey": creds.values[name]["api-key"],
                "webhookSecret": creds.values[name]["webhook-secret"],
                "webhookUrl": webhook_urls.get(name),
            }
        )
    sim.admin("POST", "accounts", {"accounts": accounts})


def provider(
    name: str, sim: Sim, creds: Credentials, *, timeout_ms: int = 1000, weight: int = 1
) -> dict[str, Any]:
    p = PROVIDERS[name]
    return {
        "name": name,
        "type": p["type"],
        "endpoint": f"{sim.url}/{p['ep']}/{p['type']}",
        "account": p["account"],
        "credentialsDir": str(creds.dir(name)),
        "weight": weight,
        "timeoutMs": timeout_ms,
    }


def routing_config(
    sim: Sim,
    creds: Credentials,
    *,
    region: str = "eu",
    timeout_ms: int = 1000,
    card_eu_providers: tuple[str, ...] = ("stripe-eu", "adyen-eu"),
    retry: list[dict[str, Any]] | None = None,
    breaker: dict[str, Any] | None = None,
    apms_at: str | None = None,
) -> dict[str, Any]:
    """``apms_at``: the provider (e.g. ``stripe-eu``) that takes UPI, iDEAL and Pix, as its
    own payment methods; by default the simulator's local dialect (``upi-in`` ...)."""
    cb = breaker or {
        "failureRatePercent": 50,
        "minimumRequests": 20,
        "windowSeconds": 30,
        "openSeconds": 2,
        "halfOpenRequests": 2,
    }

    def route(
        name: str, match: dict[str, Any], providers: list[str], strategy: str = "priority"
    ) -> dict[str, Any]:
        return {
            "name": f"shop/{name}",
            "match": match,
            "strategy": strategy,
            "providers": [provider(p, sim, creds, timeout_ms=timeout_ms) for p in providers],
            "retry": retry or [],
            "circuitBreaker": cb,
            "successRateOrdering": False,
        }

    return {
        "region": region,
        "routes": [
            route(
                "card-eu",
                {
                    "countries": ["DE", "FR", "NL"],
                    "currencies": ["EUR"],
                    "paymentMethods": ["card"],
                },
                list(card_eu_providers),
            ),
            route(
                "card-us",
                {"countries": ["US"], "currencies": ["USD"], "paymentMethods": ["card"]},
                ["adyen-us", "stripe-us"],
                "weighted",
            ),
            route(
                "upi",
                {"countries": ["IN"], "currencies": ["INR"], "paymentMethods": ["upi"]},
                [apms_at or "upi-in"],
            ),
            route(
                "ideal",
                {"countries": ["NL"], "currencies": ["EUR"], "paymentMethods": ["ideal"]},
                [apms_at or "ideal-nl"],
            ),
            route(
                "pix",
                {"countries": ["BR"], "currencies": ["BRL"], "paymentMethods": ["pix"]},
                [apms_at or "pix-br"],
            ),
        ],
    }


@dataclass
class PaymentsProc(servers.Server):
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_path: str = "/health/ready") -> PaymentsProc:
        self.proc = servers.spawn(
            [str(BIN), "payments", "--port", str(self.port)], self.log, self.env
        )
        wait_http(f"{self.url}{wait_path}", self.proc, self.log)
        return self


def payments_proc(
    workdir: Path,
    *,
    name: str,
    database_url: str,
    redis_url: str,
    routing: dict[str, Any],
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> PaymentsProc:
    port = port or free_port()
    routing_file = workdir / f"routing-{name}.json"
    routing_file.write_text(json.dumps(routing))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PSP_")},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PSP_ROUTING_FILE": str(routing_file),
        "PAYMENTS_INSTANCE": name,
        "PAYMENTS_IN_FLIGHT_SECONDS": "5",
        # payments alone: no saga in front to sign its calls, unless ``extra_env`` says so
        "CHECKOUT_GATEWAY_AUTH": "off",
        **(extra_env or {}),
    }
    return PaymentsProc(port, env, workdir / f"payments-{name}.log")


def carried_routing(
    name: str, method: str, api: str, endpoint: str, account: str
) -> config.PaymentRoutingConfig:
    """One route of one provider ``type: <method>`` carried by ``api`` (Stripe or Adyen)."""
    provider = {
        "name": name,
        "type": method,
        "api": api,
        "endpoint": endpoint,
        "account": account,
        "credentialsDir": "/unused",
    }
    route = {
        "name": f"shop/{method}",
        "match": {"paymentMethods": [method]},
        "strategy": "priority",
        "providers": [provider],
    }
    return config.PaymentRoutingConfig.model_validate({"region": "eu", "routes": [route]})
