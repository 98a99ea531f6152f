"""PSP credentials come only from credentials_dir files / env, and never leak: not in logs (even
at DEBUG), error messages, problem bodies, metrics or the OpenAPI document."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import payments_harness as harness
import pytest
from payments_env import Env, new_env

from checkout_contract import payments as config
from checkout_services.payments.adapters import base
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis


def provider(tmp: Path, name: str = "stripe-x") -> config.Provider:
    return config.Provider(
        name=name,
        type="stripe",
        endpoint="http://127.0.0.1:9/x",
        account="acct",
        credentials_dir=str(tmp),
    )


def test_secret_never_shows_its_value(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("sk_live_TOPSECRET\n")
    (tmp_path / "webhook-secret").write_text("whsec_TOPSECRET\n")
    creds = base.load_credentials(provider(tmp_path))
    assert creds.api_key.reveal() == "sk_live_TOPSECRET"
    for shown in (repr(creds), str(creds), f"{creds.api_key}", repr(creds.webhook_secret)):
        assert "TOPSECRET" not in shown


def test_missing_credentials_name_the_file_not_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "api-key").write_text("sk_live_TOPSECRET\n")
    with pytest.raises(base.CredentialsError) as exc:
        base.load_credentials(provider(tmp_path))
    assert str(tmp_path / "webhook-secret") in str(exc.value)
    assert "PSP_STRIPE_X_WEBHOOK_SECRET" in str(exc.value)
    assert "TOPSECRET" not in str(exc.value)
    monkeypatch.setenv("PSP_STRIPE_X_WEBHOOK_SECRET", "whsec_from_env")
    assert base.load_credentials(provider(tmp_path)).webhook_secret.reveal() == "whsec_from_env"


def test_cli_reports_bad_settings_without_a_traceback(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    env = {"PATH": str(bindir)}
    proc = subprocess.run(
        [str(bindir / "checkout-services"), "payments"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert "CHECKOUT_GATEWAY_KEY" in proc.stderr  # the region's key first: without it, nothing
    assert "Traceback" not in proc.stderr
    env["CHECKOUT_GATEWAY_KEY"] = secrets.token_hex(32)
    proc = subprocess.run(
        [str(bindir / "checkout-services"), "payments"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert "DATABASE_URL" in proc.stderr
    assert "Traceback" not in proc.stderr
    routing = tmp_path / "routing.json"
    routing.write_text('{"region": "eu", "routes": [{"name": "x"}]}')
    env |= {
        "DATABASE_URL": "postgresql://x",
        "REDIS_URL": "redis://x",
        "PSP_ROUTING_FILE": str(routing),
    }
    proc = subprocess.run(
        [str(bindir / "checkout-services"), "payments"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert "invalid PSP routing file" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [str(bindir / "checkout-services"), "psp-sim", "--port", "notaport"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "not a port number" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.stack
async def test_no_secret_in_logs_errors_metrics_or_openapi(
    sim: harness.Sim, postgres: Postgres, redis: Redis, tmp_path: Path
) -> None:
    env: Env = new_env(sim, postgres, redis, tmp_path, name="secrets", redis_db=3)
    env.payments.stop()
    env.payments.env["PAYMENTS_LOG_LEVEL"] = "DEBUG"
    env.payments.start()
    secrets = env.creds.all_secret_values()
    seen: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=env.url, timeout=30) as client:
            c = f"sec_{uuid.uuid4().hex[:12]}"
            body = {"checkout_id": c, "amount": 100, "currency": "EUR", "country": "DE"}
            seen.append((await client.post("/v1/payments/authorize", json=body)).text)
            seen.append((await client.post(f"/v1/payments/{c}/capture", json={})).text)
            # the provider refuses our credentials (rotated at the PSP): an error path
            sim.admin(
                "POST",
                "accounts",
                {
                    "accounts": [
                        {
                            "provider": "pix",
                            "account": "merchant_pix",
                            "apiKey": "rotated",
                            "webhookSecret": "x",
                        }
                    ]
                },
            )
            r = await client.post(
                "/v1/payments/authorize",
                json={
                    "checkout_id": f"sec_{uuid.uuid4().hex[:12]}",
                    "amount": 100,
                    "currency": "BRL",
                    "country": "BR",
                    "payment_method": "pix",
                },
            )
            assert r.status_code >= 400
            seen.append(r.text)
            # a PSP that cannot be reached, and a bad webhook
            sim.faults(
                {"kind": "error_5xx", "provider": "stripe"},
                {"kind": "error_5xx", "provider": "adyen"},
            )
            seen.append(
                (
                    await client.post(
                        "/v1/payments/authorize", json={**body, "checkout_id": c + "x"}
                    )
                ).text
            )
            seen.append(
                (
                    await client.post(
                        "/v1/webhooks/upi-in", content=b"{}", headers={"Sim-Signature": "t=1,v1=2"}
                    )
                ).text
            )
            seen.append((await client.get("/metrics")).text)
            seen.append((await client.get("/openapi.json")).text)
            seen.append((await client.get(f"/v1/payments/{c}")).text)
    finally:
        sim.admin("DELETE", "faults")
        harness.register_accounts(sim, env.creds, {})
        env.payments.stop()
    log = env.payments.log.read_text()
    assert "HTTP Request" in log or "DEBUG" in log  # the log really was verbose
    for secret in secrets:
        assert secret not in log
        for text in seen:
            assert secret not in text


@pytest.mark.stack
async def test_redis_down_is_a_503_problem_not_a_crash(
    sim: harness.Sim, postgres: Postgres, tmp_path: Path
) -> None:
    creds = harness.make_credentials(tmp_path / "creds")
    dead_redis = f"redis://127.0.0.1:{harness.free_port()}/0"  # nothing listens there
    proc = harness.payments_proc(
        tmp_path,
        name="noredis",
        routing=harness.routing_config(sim, creds),
        database_url=postgres.create_database(f"pay_noredis_{uuid.uuid4().hex[:8]}"),
        redis_url=dead_redis,
    )
    try:
        proc.start(wait_path="/health/live")  # not ready, by design
        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:
            r = await client.get("/health/ready")
            assert r.status_code == 503
            assert r.headers["content-type"].startswith("application/problem+json")
            body = r.json()
            assert body["checks"]["postgres"] == "ok"
            assert body["checks"]["redis"] != "ok"
            r = await client.post(
                "/v1/payments/authorize",
                json={
                    "checkout_id": "co_noredis",
                    "amount": 100,
                    "currency": "EUR",
                    "country": "DE",
                },
                headers={"Idempotency-Key": "k-noredis"},
            )
            assert r.status_code == 503, r.text
            assert r.json()["type"].endswith("dependency-unavailable")
            assert r.headers["retry-after"]
        assert "Traceback" not in proc.log.read_text()
    finally:
        proc.stop()
