"""Helpers of the operator's real-cluster tests: CRDs, namespaces, region bodies, polling."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import yaml

from checkout_stack.errors import StackError

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
    probe: Callable[[], Awaitable[T | None]],
    within: float = 90,
    what: str = "condition",
    every: float = 0.5,
) -> T:
    """Poll ``probe`` every ``every`` s until it returns a truthy value; fail with ``what``
    after ``within`` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within} s waiting for {what} (last: {last!r})")


def delete_namespace(kube: Any, namespace: str) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None], within: float, what: str, log: pathlib.Path | None = None
) -> T:
    """Poll a blocking ``probe`` until truthy (errors count as not yet); fail with the log tail."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (subprocess.CalledProcessError, OSError, KeyError, ValueError, StackError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(0.5)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {within} s waiting for {what} (last: {last!r})\n{tail}")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        body: bytes = resp.read()
        return body.decode()


class Operator:
    """A running `checkout-operator run` subprocess (its own process group)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], metrics: int, health: int, log: pathlib.Path
    ) -> None:
        self.proc = proc
        self.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        self.health_url = f"http://127.0.0.1:{health}/healthz"
        self.ready_url = f"http://127.0.0.1:{health}/readyz"
        self.log = log

    def wait_live(self, within: float = 60) -> None:
        wait_for(lambda: http_get(self.health_url) is not None, within, "liveness", self.log)

    def stop(self, within: float = 60) -> int:
        """SIGTERM, then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(within)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextlib.contextmanager
def running_operator(
    kubeconfig: pathlib.Path,
    namespace: str | None,
    log: pathlib.Path,
    drift_interval: float = 5,
    extra_args: tuple[str, ...] | list[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Operator]:
    metrics, health = free_port(), free_port()
    exe = pathlib.Path(sys.executable).parent / "checkout-operator"
    argv = [
        str(exe), "run", *(("--namespace", namespace) if namespace else ("--all-namespaces",)),
        "--kubeconfig", str(kubeconfig),
        "--metrics-port", str(metrics), "--health-port", str(health),
        "--drift-interval", str(drift_interval), *extra_args,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, **(env or {})},
        )
    op = Operator(proc, metrics, health, log)
    try:
        yield op
    finally:
        op.kill()
