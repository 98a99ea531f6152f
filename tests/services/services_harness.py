"""Test harness for the checkout services: real server processes (``checkout-services NAME``)
on loopback, with the region config and fleet routing files the operator would render."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from checkout_services.common import app as common_app
from checkout_services.common import metrics
from checkout_stack import servers
from checkout_stack.servers import BIN, free_port, wait_http

REGION = "eu-west-1"
PEER = "us-east-1"


def in_process_app(service: str) -> FastAPI:
    """An app from the services' own factory (the card-number filter, request ids, problem
    handlers, health) with nothing to start, for in-process tests: the caller adds routes."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    return common_app.create(
        service=service,
        description="test",
        lifespan=lifespan,
        service_metrics=metrics.ServiceMetrics(service),
    )


def region_config(endpoints: dict[str, str] | None = None, **topics: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "region": REGION,
        "fleet": "test",
        "jurisdiction": "EU",
        "homeMarkets": ["DE", "FR", "NL"],
        "endpoints": endpoints or {},
        "kafkaReplicationFactor": 1,  # one-broker test clusters
    }
    if topics:
        cfg["topics"] = topics
    return cfg


def fleet_routing(**states: str) -> dict[str, Any]:
    """DE, FR, NL written here; US written by the peer. ``states`` overrides a market's state."""
    markets = []
    for market, writer in (("DE", REGION), ("FR", REGION), ("NL", REGION), ("US", PEER)):
        markets.append(
            {
                "market": market,
                "writer": writer,
                "epoch": 3,
                "readRegions": [REGION, PEER],
                "state": states.get(market, "Serving"),
            }
        )
    return {
        "fleet": "test",
        "regions": [
            {"name": REGION, "jurisdiction": "EU", "gatewayUrl": "http://eu.example:8080"},
            {"name": PEER, "jurisdiction": "US", "gatewayUrl": "http://us.example:8080"},
        ],
        "markets": markets,
    }


@dataclass
class ServiceProc(servers.Server):
    name: str
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}-{self.port}.log"

    def start(self) -> ServiceProc:
        argv = [str(BIN), self.name, "--port", str(self.port)]
        # a service alone: no gateway in front to sign principals, unless ``env`` says so
        env = {**os.environ, "CHECKOUT_GATEWAY_AUTH": "off", **self.env}
        self.proc = servers.spawn(argv, self.log, env)
        wait_http(f"{self.url}/health/ready", self.proc, self.log, timeout=60.0)
        return self


def write_configs(workdir: Path, **routing_states: str) -> dict[str, str]:
    region_file = workdir / "region.json"
    routing_file = workdir / "routing.json"
    region_file.write_text(json.dumps(region_config()))
    routing_file.write_text(json.dumps(fleet_routing(**routing_states)))
    return {"REGION_CONFIG_FILE": str(region_file), "FLEET_ROUTING_FILE": str(routing_file)}


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["type"]
    assert body["title"]
    return body


def pricing_config(**flags: bool) -> dict[str, Any]:
    """A small catalog: EUR (DE, VAT 19 % inclusive), JPY (JP, 10 % inclusive), USD (US, 8.875 %
    sales tax on top)."""
    return {
        "catalog": {
            "tee": {"EUR": 1999, "USD": 2199, "JPY": 2980},
            "mug": {"EUR": 1250, "USD": 1400, "JPY": 1580},
        },
        "tax": {
            "DE": {"kind": "VAT", "rateBp": 1900, "inclusive": True},
            "FR": {"kind": "VAT", "rateBp": 2000, "inclusive": True},
            "NL": {"kind": "VAT", "rateBp": 2100, "inclusive": True},
            "JP": {"kind": "GST", "rateBp": 1000, "inclusive": True},
            "US": {"kind": "sales_tax", "rateBp": 888, "inclusive": False},
        },
        "shipping": {
            country: [
                {"id": "standard", "name": "Standard", "amounts": amounts, "days": 3},
                {"id": "express", "name": "Express", "amounts": express, "days": 1},
            ]
            for country, amounts, express in (
                ("DE", {"EUR": 499}, {"EUR": 1299}),
                ("FR", {"EUR": 599}, {"EUR": 1499}),
                ("NL", {"EUR": 499}, {"EUR": 1299}),
                ("JP", {"JPY": 500}, {"JPY": 1200}),
                ("US", {"USD": 799}, {"USD": 1999}),
            )
        },
        "promotions": [
            {"code": "WELCOME10", "flag": "promo.welcome10", "percentOffBp": 1000},
            {
                "code": "FIVEOFF",
                "flag": "promo.fiveoff",
                "amountOff": {"EUR": 500},
                "minSubtotal": {"EUR": 3000},
            },
        ],
        "flags": {"promo.welcome10": True, "promo.fiveoff": True, **flags},
        "snapshotTtlSeconds": 2,
    }


@dataclass
class RelayProc(servers.Server):
    """``checkout-services outbox-relay`` for one service database."""

    workdir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RelayProc:
        log = self.workdir / "outbox-relay.log"
        self.proc = servers.spawn([str(BIN), "outbox-relay"], log, {**os.environ, **self.env})
        return self
