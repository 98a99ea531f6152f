"""Fixtures of the gateway tests: the payments and services harnesses are reused (PSP
simulator, payments and the domain services as real processes)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for sub in ("payments", "services", "gateway"):
    if str(_TESTS / sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / sub))

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import gateway_harness as gh  # noqa: E402
import payments_harness as ph  # noqa: E402
import pytest  # noqa: E402
import services_harness as h  # noqa: E402

from checkout_stack.components.postgres import Postgres  # noqa: E402
from checkout_stack.components.redis import Redis  # noqa: E402
from checkout_stack.components.temporal import Temporal  # noqa: E402


@pytest.fixture(scope="session")
def fleet(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[gh.Fleet]:
    workdir: Path = tmp_path_factory.mktemp("gateway-fleet")
    sim = ph.start_sim(workdir)
    sim.reset()
    creds = ph.make_credentials(workdir / "creds")
    ph.register_accounts(sim, creds, {})
    keys = gh.make_keys(workdir)
    us_namespace = f"us-{uuid.uuid4().hex[:6]}"
    gh.create_namespace(temporal, us_namespace)
    ports = {gh.EU: h.free_port(), gh.US: h.free_port()}
    gateways = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    routing = workdir / "routing.json"
    gh.write_atomically(routing, gh.routing_doc(gateways, {}, {}, 1))
    regions: dict[str, gh.RegionProcs] = {}
    try:
        for name, namespace, db in ((gh.EU, temporal.namespace, 10), (gh.US, us_namespace, 11)):
            regions[name] = gh.start_region(
                name,
                workdir / name,
                sim=sim,
                creds=creds,
                postgres=postgres,
                redis=redis,
                redis_db=db,
                temporal=temporal,
                temporal_namespace=namespace,
                keys=keys,
                routing_file=routing,
                gateway_port=ports[name],
                gateway_extra={"GATEWAY_CLIENT_RATE": "500", "GATEWAY_CLIENT_BURST": "500"},
            )
        yield gh.Fleet(sim, keys, routing, gateways, regions, creds)
    finally:
        for region in regions.values():
            region.stop()
        sim.stop()
