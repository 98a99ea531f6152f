"""The Argo CD health checks (Lua), run with LuaJIT 2.1 (closest to Argo CD's gopher-lua)
against their upstream-layout fixtures (``health_test.yaml`` + ``testdata/``)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from checkout_operator.api.status import CheckoutRegionStatus, PSPRouteStatus

try:
    from lupa import lua51, luajit21
except ImportError as exc:  # pragma: no cover - the failure message is the point
    raise ImportError(
        "the Argo CD health tests need lupa with its LuaJIT runtime: run `make setup` "
        "(pyproject's dev extra installs lupa>=2.0)"
    ) from exc

ROOT = pathlib.Path(__file__).resolve().parents[2] / "argocd" / "checkout-operator.io"
KINDS = {"CheckoutRegion": CheckoutRegionStatus, "PSPRoute": PSPRouteStatus}


def cases() -> list[Any]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((ROOT / kind / "health_test.yaml").read_text())
        for test in spec["tests"]:
            out.append(
                pytest.param(kind, test, id=f"{kind}-{pathlib.Path(test['inputPath']).stem}")
            )
    return out


def run_health(runtime_module: Any, kind: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = runtime_module.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    script = (ROOT / kind / "health.lua").read_text()
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize(("kind", "test"), cases())
@pytest.mark.parametrize("runtime", [luajit21, lua51], ids=["luajit21", "lua51"])
def test_health(runtime: Any, kind: str, test: dict[str, Any]) -> None:
    obj = yaml.safe_load((ROOT / kind / test["inputPath"]).read_text())
    assert run_health(runtime, kind, obj) == test["healthStatus"]


@pytest.mark.parametrize(("kind", "test"), cases())
def test_fixture_status_is_what_the_crd_accepts(kind: str, test: dict[str, Any]) -> None:
    obj = yaml.safe_load((ROOT / kind / test["inputPath"]).read_text())
    if "status" in obj:
        KINDS[kind].model_validate(obj["status"])


def test_every_fixture_is_tested_and_every_status_is_covered() -> None:
    for kind in KINDS:
        spec = yaml.safe_load((ROOT / kind / "health_test.yaml").read_text())
        used = {t["inputPath"] for t in spec["tests"]}
        files = {f"testdata/{p.name}" for p in (ROOT / kind / "testdata").glob("*.yaml")}
        assert used == files
        assert {t["healthStatus"]["status"] for t in spec["tests"]} == {
            "Healthy",
            "Progressing",
            "Degraded",
        }
