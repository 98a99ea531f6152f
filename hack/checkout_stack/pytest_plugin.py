"""pytest fixtures for the real local stack (register with `pytest_plugins`).

Every fixture is session-scoped and lazy: a component starts the first time a test asks for it
and stops at the end of the session (process groups killed, also on Ctrl-C). A component that
cannot start FAILS the test with the component's log and the fix; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from checkout_stack import paths
from checkout_stack.components.kafka import KafkaCluster, MirrorMaker
from checkout_stack.components.kube import ControlPlane
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.stripe_mock import StripeMock
from checkout_stack.components.temporal import Temporal
from checkout_stack.errors import StackError
from checkout_stack.stack import MANAGEMENT, Stack


def _fail(exc: StackError) -> None:
    pytest.fail(exc.render(), pytrace=False)


class KafkaClusters:
    """Per-region single-node KRaft clusters, started on first `get(region)`."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def get(self, region: str, *, auto_create_topics: bool = True) -> KafkaCluster:
        """``auto_create_topics=False``: a cluster with ``auto.create.topics.enable=false``
        (give it a region name of its own: the setting is fixed at start)."""
        try:
            return self._stack.kafka(region, auto_create_topics=auto_create_topics)
        except StackError as exc:
            _fail(exc)
            raise

    __getitem__ = get

    def start_many(self, *regions: str) -> dict[str, KafkaCluster]:
        """Start several regions' clusters in parallel."""
        try:
            self._stack.start_parallel(
                {f"kafka/{r}": (lambda r=r: self._stack.kafka(r)) for r in regions}  # type: ignore[misc]
            )
        except StackError as exc:
            _fail(exc)
        return {r: self._stack.kafka(r) for r in regions}

    def stop(self, region: str) -> None:
        """Stop a region's broker (data and ports kept), e.g. for "Kafka down 30 s" tests."""
        self.get(region).stop()

    def start(self, region: str) -> KafkaCluster:
        """Start a stopped region's broker again on the same port with the same data."""
        cluster = self.get(region)
        if not cluster.alive():
            try:
                cluster.start()
            except StackError as exc:
                _fail(exc)
        return cluster

    @contextlib.contextmanager
    def stopped(self, region: str) -> Iterator[KafkaCluster]:
        """`with kafka_clusters.stopped("us-east-1"):` the broker is down inside the block and
        started again (same port and data) on the way out, also when the test fails."""
        cluster = self.get(region)
        cluster.stop()
        try:
            yield cluster
        finally:
            self.start(region)

    def run_mirrormaker(
        self,
        properties_path: Path | str,
        env: Mapping[str, str] | None = None,
        clusters: list[str] | None = None,
    ) -> MirrorMaker:
        """MirrorMaker 2 (dedicated mode) on a properties file; `.stop()` the handle when done.

        `clusters` is `--clusters`: only the flows into these clusters run (a region's MM2)."""
        try:
            return self._stack.run_mirrormaker(Path(properties_path), env, clusters)
        except StackError as exc:
            _fail(exc)
            raise


class KubeFactory:
    """Independent control planes (own etcd, certs, ports), e.g. one per remote region."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def __call__(self, name: str, *, lean: bool = False) -> ControlPlane:
        """``lean``: kube-controller-manager runs only the controllers Deployments need (for
        tests that start many control planes)."""
        try:
            return self._stack.control_plane(name, lean=lean)
        except StackError as exc:
            _fail(exc)
            raise


_session_stack: Stack | None = None
_session_lock = threading.Lock()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The session's stack; components start when first used."""
    global _session_stack
    with _session_lock:
        _session_stack = Stack()
    try:
        yield _session_stack
    finally:
        _session_stack.stop()
        if not os.environ.get("CHECKOUT_STACK_KEEP"):
            _session_stack.remove()
        _session_stack = None


def pytest_unconfigure(config: pytest.Config) -> None:
    # Ctrl-C / internal errors skip fixture teardown on some paths: never leak processes
    if _session_stack is not None:
        _session_stack.stop()


@pytest.fixture(scope="session")
def postgres(stack: Stack) -> Postgres:
    try:
        return stack.postgres()
    except StackError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def redis(stack: Stack) -> Redis:
    try:
        return stack.redis()
    except StackError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def stripe_mock(stack: Stack) -> StripeMock:
    """Stripe's official mock server (``hack/stack build`` builds it): validates each request
    against Stripe's OpenAPI description and answers with fixtures."""
    try:
        return stack.stripe_mock()
    except StackError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def kafka_clusters(stack: Stack) -> KafkaClusters:
    return KafkaClusters(stack)


@pytest.fixture(scope="session")
def temporal(stack: Stack) -> Temporal:
    try:
        return stack.temporal()
    except StackError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def kube_factory(stack: Stack) -> KubeFactory:
    return KubeFactory(stack)


@pytest.fixture(scope="session")
def kube(kube_factory: KubeFactory) -> ControlPlane:
    """The management control plane."""
    return kube_factory(MANAGEMENT)


@pytest.fixture(scope="session")
def kubectl_bin() -> Path:
    try:
        return paths.k8s_binary("kubectl")
    except StackError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    try:
        return paths.require("helm", paths.helm_bin())
    except StackError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def promtool_bin() -> Path:
    try:
        return paths.require("promtool", paths.promtool_bin())
    except StackError as exc:
        _fail(exc)
        raise
