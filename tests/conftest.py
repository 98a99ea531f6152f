"""Shared pytest configuration."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig

# Real local stack fixtures (postgres, redis, kafka_clusters, temporal, kube, kube_factory,
# helm_bin, kubectl_bin): see hack/checkout_stack/pytest_plugin.py and README "Local stack".
pytest_plugins = ["checkout_stack.pytest_plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def kube_namespace(kube: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on the session's kube-apiserver (named after the test module), deleted
    without waiting afterwards."""
    stem = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    ns = f"{stem[:40]}-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    yield ns
    with contextlib.suppress(subprocess.TimeoutExpired):
        kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
async def kube_api(kube: Any) -> AsyncIterator[kclient.KubeClient]:
    """The operator's own Kubernetes client on the session's kube-apiserver."""
    c = kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig))
    yield c
    await c.aclose()
