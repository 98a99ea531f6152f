"""A stack of running components, started lazily and in parallel; shared by CLI and pytest."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from checkout_stack import paths
from checkout_stack.components.kafka import KafkaCluster, MirrorMaker, run_mirrormaker
from checkout_stack.components.kube import ControlPlane
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.stripe_mock import StripeMock
from checkout_stack.components.temporal import Temporal
from checkout_stack.errors import StackError
from checkout_stack.proc import Proc, group_rss_bytes

DEFAULT_REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
COMPONENTS = ("kube", "postgres", "redis", "kafka", "temporal")
MANAGEMENT = "management"


class _Component(Protocol):
    procs: list[Proc]

    def stop(self) -> None: ...


def region_env_name(region: str) -> str:
    return "KAFKA_BOOTSTRAP_" + region.upper().replace("-", "_")


def new_run_dir() -> Path:
    run_dir = Path(tempfile.mkdtemp(prefix="checkout-stack-"))
    run_dir.chmod(0o755)  # postgres runs as its own user when we are root
    return run_dir


@dataclass
class StartReport:
    seconds: dict[str, float]
    total: float


class Stack:
    """Components of one run, each started on first use, all stopped by `stop()`."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir or new_run_dir()
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._started: dict[str, Any] = {}
        self._failed: dict[str, StackError] = {}
        self._starting: dict[str, Any] = {}
        self._closed = threading.Event()
        self.mirrormakers: list[MirrorMaker] = []

    def _once(self, key: str, factory: Callable[[], Any]) -> Any:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._failed:
                # fail fast for every later test instead of waiting for the same timeout again
                raise self._failed[key]
            if key in self._started:
                return self._started[key]
            if self._closed.is_set():
                raise StackError(key, "the stack is stopping", fix="start a new stack")
            component = factory()
            with self._lock:
                self._starting[key] = component
            try:
                component.start()
            except StackError as exc:
                component.stop()
                self._failed[key] = exc
                raise
            except BaseException:
                component.stop()
                raise
            finally:
                with self._lock:
                    self._starting.pop(key, None)
            if self._closed.is_set():
                # stopped (Ctrl-C) while this one was starting: don't leave it behind
                component.stop()
                raise StackError(key, "the stack was stopped while starting", fix="start again")
            self._started[key] = component
            return self._started[key]

    # -- components -------------------------------------------------------------------------

    def postgres(self) -> Postgres:
        result: Postgres = self._once("postgres", lambda: Postgres(self.run_dir / "postgres"))
        return result

    def redis(self) -> Redis:
        result: Redis = self._once("redis", lambda: Redis(self.run_dir / "redis"))
        return result

    def kafka(self, region: str, *, auto_create_topics: bool = True) -> KafkaCluster:
        """The region's cluster; ``auto_create_topics=False`` starts it with
        ``auto.create.topics.enable=false`` (the setting is fixed when the cluster starts)."""
        result: KafkaCluster = self._once(
            f"kafka/{region}",
            lambda: KafkaCluster(
                region, self.run_dir / f"kafka-{region}", auto_create_topics=auto_create_topics
            ),
        )
        if result.auto_create_topics != auto_create_topics:
            raise StackError(
                f"kafka/{region}",
                f"already running with auto.create.topics.enable={result.auto_create_topics}",
                fix="use another region name for a cluster with the other setting",
            )
        return result

    def stripe_mock(self) -> StripeMock:
        result: StripeMock = self._once(
            "stripe-mock", lambda: StripeMock(self.run_dir / "stripe-mock")
        )
        return result

    def temporal(self) -> Temporal:
        result: Temporal = self._once("temporal", lambda: Temporal(self.run_dir / "temporal"))
        return result

    def control_plane(self, name: str = MANAGEMENT, *, lean: bool = False) -> ControlPlane:
        """Control plane ``name``; ``lean``: a kube-controller-manager with only the controllers
        Deployments need (fixed when it starts, see :class:`ControlPlane`)."""
        result: ControlPlane = self._once(
            f"kube/{name}", lambda: ControlPlane(name, self.run_dir / f"kube-{name}", lean=lean)
        )
        if result.lean != lean:
            raise StackError(
                f"kube/{name}",
                f"already running with lean={result.lean}",
                fix="use another name for a control plane with the other setting",
            )
        return result

    def run_mirrormaker(
        self,
        properties_path: Path,
        env: Mapping[str, str] | None = None,
        clusters: list[str] | None = None,
    ) -> MirrorMaker:
        n = len(self.mirrormakers)
        handle = run_mirrormaker(
            Path(properties_path), env, self.run_dir / f"mirrormaker-{n}", clusters
        )
        self.mirrormakers.append(handle)
        return handle

    # -- many at once -----------------------------------------------------------------------

    def start_parallel(self, starters: Mapping[str, Callable[[], object]]) -> StartReport:
        """Start components in threads. Keys name components as the Stack does
        (`postgres`, `kafka/<region>`, `kube/<name>`, ...): on any failure the ones of this call
        are stopped and the errors raised; on Ctrl-C the whole stack is stopped."""
        seconds: dict[str, float] = {}
        errors: list[BaseException] = []
        began = time.monotonic()

        def timed(name: str, fn: Callable[[], object]) -> None:
            t0 = time.monotonic()
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
            finally:
                seconds[name] = time.monotonic() - t0

        pool = ThreadPoolExecutor(max_workers=max(1, len(starters)))
        try:
            futures = [pool.submit(timed, name, fn) for name, fn in starters.items()]
            for future in futures:
                future.result()
        except BaseException:
            self.stop()  # kills what runs, so the starting threads end quickly
            pool.shutdown(wait=True)
            self.stop()
            raise
        pool.shutdown(wait=True)
        if errors:
            self.stop_keys(starters)
            stack_errors = [e for e in errors if isinstance(e, StackError)]
            rendered = list(dict.fromkeys(e.render() for e in stack_errors))
            if len(stack_errors) == len(errors) and len(rendered) > 1:
                raise StackError(
                    "stack",
                    "\n\n".join(rendered),
                    fix="see each component's fix above",
                )
            raise errors[0]
        return StartReport(seconds, time.monotonic() - began)

    def up(
        self,
        components: Iterable[str] = COMPONENTS,
        regions: Iterable[str] = DEFAULT_REGIONS,
        control_planes: Iterable[str] = (MANAGEMENT,),
    ) -> StartReport:
        wanted = set(components)
        unknown = wanted - set(COMPONENTS)
        if unknown:
            raise StackError(
                "stack",
                f"unknown component(s): {', '.join(sorted(unknown))}",
                fix=f"choose from {', '.join(COMPONENTS)}",
            )
        starters: dict[str, Callable[[], object]] = {}
        if "kube" in wanted:
            for name in control_planes:
                starters[f"kube/{name}"] = lambda n=name: self.control_plane(n)  # type: ignore[misc]
        if "postgres" in wanted:
            starters["postgres"] = self.postgres
        if "redis" in wanted:
            starters["redis"] = self.redis
        if "kafka" in wanted:
            for region in regions:
                starters[f"kafka/{region}"] = lambda r=region: self.kafka(r)  # type: ignore[misc]
        if "temporal" in wanted:
            starters["temporal"] = self.temporal
        return self.start_parallel(starters)

    # -- introspection ----------------------------------------------------------------------

    def components(self) -> dict[str, _Component]:
        return dict(self._started)

    def processes(self) -> list[Proc]:
        procs: list[Proc] = []
        for component in self._started.values():
            procs.extend(p for p in component.procs if p.alive())
        procs.extend(m.proc for m in self.mirrormakers if m.alive())
        return procs

    def rss_bytes(self) -> int:
        return sum(group_rss_bytes(p.pid) for p in self.processes())

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {"CHECKOUT_STACK_DIR": str(self.run_dir)}
        for key, component in self._started.items():
            if key == f"kube/{MANAGEMENT}":
                env["KUBECONFIG"] = str(component.kubeconfig)
                env["KUBECONFIG_RESTRICTED"] = str(component.restricted_kubeconfig)
                env["KUBE_SERVER"] = component.server
            elif key.startswith("kube/"):
                suffix = key.split("/", 1)[1].upper().replace("-", "_")
                env[f"KUBECONFIG_{suffix}"] = str(component.kubeconfig)
            elif key == "postgres":
                env["DATABASE_URL"] = component.dsn
            elif key == "redis":
                env["REDIS_URL"] = component.url
            elif key.startswith("kafka/"):
                env[region_env_name(component.region)] = component.bootstrap
            elif key == "stripe-mock":
                env["STRIPE_MOCK_URL"] = component.url
            elif key == "temporal":
                env["TEMPORAL_ADDRESS"] = component.address
                env["TEMPORAL_NAMESPACE"] = component.namespace
        if any(k.startswith("kube/") for k in self._started):
            env["KUBECTL"] = str(paths.k8s_binary("kubectl"))
            if paths.helm_bin().exists():
                env["HELM"] = str(paths.helm_bin())
        return env

    # -- teardown ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component (in parallel), mirror makers first; no start after this."""
        self._closed.set()
        for mm in self.mirrormakers:
            mm.stop()
        self.mirrormakers.clear()
        with self._lock:
            keys = [*self._started, *self._starting]
        self.stop_keys(keys)

    def stop_keys(self, keys: Iterable[str]) -> None:
        with self._lock:
            components = [self._started.pop(k, None) or self._starting.get(k) for k in keys]
        running = [c for c in components if c is not None]
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            list(pool.map(lambda c: c.stop(), running))

    def external_dirs(self) -> list[str]:
        """Folders outside the run folder that components made (removed by `down`)."""
        return [
            str(c.external)
            for c in self._started.values()
            if getattr(c, "external", None) is not None
        ]

    def remove(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- state file for `hack/stack up` / `down` ---------------------------------------------

    def write_state(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "run_dir": str(self.run_dir),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "processes": [
                {"component": p.component, "pgid": p.pid, "argv0": str(p.argv[0])}
                for p in self.processes()
            ],
            "env": self.env(),
            "external_dirs": self.external_dirs(),
        }
        path.write_text(json.dumps(state, indent=2))


def read_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
