"""``checkout-services psp-sim``: serve the simulator with uvicorn."""

from __future__ import annotations

import uvicorn

from checkout_services.psp_sim import app as sim_app


def run(*, host: str, port: int, seed: int) -> int:
    uvicorn.run(
        sim_app.create_app(seed=seed),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0
