"""The pure layers import without any network library installed.

``python -c "import checkout_operator.render.region"`` once failed without httpx (render ->
leaseaccess -> the services' lease module, which held a Kubernetes client). A fresh
interpreter runs with a meta-path finder that refuses httpx, kopf, aiohttp, the Kubernetes
client and the services: as if they were not installed (a throwaway venv, minus the install).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCKED = ("httpx", "httpcore", "kopf", "aiohttp", "checkout_kube", "checkout_services")

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)


def run(statement: str) -> subprocess.CompletedProcess[str]:
    code = (
        BLOCKER
        + statement
        + f"\nassert not {{m.split('.')[0] for m in sys.modules}} & {set(BLOCKED)!r}\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "module",
    [
        "checkout_operator.render.region",
        "checkout_operator.render.deployment",
        "checkout_operator.render.leaseaccess",
        "checkout_operator.failover.decide",
        "checkout_operator.api.checkoutregion",
        "checkout_contract.lease",
        "checkout_contract.env",
    ],
)
def test_pure_module_imports_without_network_libraries(module: str) -> None:
    done = run(f"import {module}")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("module", "missing"),
    [("httpx", "httpx"), ("checkout_operator.kube.remote", "checkout_kube")],
)
def test_the_blocker_blocks(module: str, missing: str) -> None:
    """The control: what needs the client must fail to import here."""
    done = run(f"import {module}")
    assert done.returncode != 0
    assert f"No module named '{missing}' (blocked)" in done.stderr
