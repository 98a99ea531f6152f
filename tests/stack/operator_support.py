"""Helpers of the operator's real-cluster tests: CRDs, namespaces, region bodies, polling."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import pathlib
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
T = TypeVar("T")


def example(name: str) -> dict[str, Any]:
    for path in sorted((ROOT / "examples" / "regions").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["metadata"]["name"] == name:
                return copy.deepcopy(doc)
    raise LookupError(name)


def local_region(namespace: str, name: str = "ap-south-1") -> dict[str, Any]:
    """An example region made local (children in the CR's namespace), with cart's replicas
    owned by the operator (autoscaling off) so a hand edit of them is drift."""
    body = example(name)
    body["metadata"]["namespace"] = namespace
    body["spec"].pop("remoteCluster", None)
    body["spec"]["services"]["cart"] = {"replicas": 2, "autoscaling": {"enabled": False}}
    return body


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def install_crds(kube: Any) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/checkoutregions.checkout-operator.io", "crd/psproutes.checkout-operator.io",
    )  # fmt: skip


def apply_yaml(kube: Any, obj: dict[str, Any]) -> None:
    kube.kubectl("apply", "-f", "-", input=json.dumps(obj))


def get(kube: Any, *args: str) -> dict[str, Any]:
    done = kube.kubectl("get", *args, "-o", "json")
    out: dict[str, Any] = json.loads(done.stdout)
    return out


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 90, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns a truthy value; fail with ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {within} s waiting for {what} (last: {last!r})")


def delete_namespace(kube: Any, namespace: str) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
