"""Run the argocd/ customizations in Argo CD's Lua sandbox (hack/tools/argocd-lua, built into
the cache by `hack/stack build`; built here on first use when the cache lacks it)."""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

from checkout_stack import argocd_lua

ROOT = pathlib.Path(__file__).resolve().parents[2] / "argocd"
REGION_DIR = ROOT / "checkout-operator.io" / "CheckoutRegion"
ACTIONS_DIR = REGION_DIR / "actions"
NOW = "2026-12-07T14:00:00Z"
"""The clock of os.time/os.date in the upstream-format suites (action ids carry the time)."""
NOW_UNIX = 1796652000


def harness() -> pathlib.Path:
    """The harness binary; a missing Go toolchain raises MissingTool naming the fix."""
    argocd_lua.build()
    return argocd_lua.binary()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(harness()), *args], capture_output=True, text=True, timeout=60, check=False
    )


def health(kind_dir: pathlib.Path, obj_path: pathlib.Path) -> dict[str, str]:
    done = run("health", str(kind_dir / "health.lua"), str(obj_path))
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def action(name: str, obj_path: pathlib.Path, **params: str) -> dict[str, Any]:
    """The object an Argo CD resource action returns (what Argo CD patches onto the live one)."""
    args = [f"{k}={v}" for k, v in params.items()]
    done = run("action", str(ACTIONS_DIR / name / "action.lua"), str(obj_path), *args)
    if done.returncode != 0:
        raise ActionRefused(done.stderr.strip())
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class ActionRefused(Exception):
    """The action's Lua raised an error (Argo CD shows it to the user)."""
