"""The demo plays the kubelet: it runs a region's Deployments as local processes.

For each Deployment the operator created in the region's namespace it does what a kubelet (with
kube-proxy and cluster DNS) would: writes the mounted ConfigMaps and Secrets to a folder, fills
the env from values and ``secretKeyRef``s, runs the container's command on loopback, and keeps
ConfigMap volumes in sync when the operator changes them (the services re-read the files).
Two stand-ins are explicit: Service DNS names in the configs (``http://checkout-orders:8080``)
become the local ports of those processes, and mount paths become local folders. No env is
renamed, and none is added but the host's ``host_env`` (the gateways' loopback switch), so a
pod runs with what the operator rendered.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkout_demo.cluster import Api
from checkout_demo.infra import BACKGROUND_NICE, SERVICES_BIN, kill_popen, stop_popen, wait_http
from checkout_stack.components.kafka import MirrorMaker, run_mirrormaker
from checkout_stack.errors import StackError
from checkout_stack.proc import free_port

SERVICE_PORT = 8080
MM2_SCRIPT = "connect-mirror-maker.sh"


@functools.cache
def supports(command: str) -> bool:
    """Whether ``checkout-services COMMAND`` exists in this build (e.g. the gateway)."""
    done = subprocess.run(
        [str(SERVICES_BIN), command, "--help"], capture_output=True, check=False, timeout=60
    )
    return done.returncode == 0


@dataclass
class Pod:
    region: str
    component: str
    dir: Path
    port: int
    argv: list[str]
    env: dict[str, str]
    configmaps: dict[str, tuple[str, Path]]  # volume -> (configmap name, local dir)
    proc: subprocess.Popen[bytes] | None = None
    mm2: MirrorMaker | None = None
    mm2_args: tuple[Path, list[str]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.dir / f"{self.component}.log"

    def start(self, wait: bool = True) -> None:
        if self.mm2_args is not None:
            props, clusters = self.mm2_args
            self.mm2 = run_mirrormaker(
                props, self.env, self.dir / "mm2", clusters, nice=BACKGROUND_NICE
            )
            return
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        if wait:
            wait_http(f"{self.url}/health/ready", self.proc, self.log, timeout=120)

    def alive(self) -> bool:
        if self.mm2 is not None:
            return self.mm2.alive()
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, MirrorMaker 2 too: a crash gives nothing a graceful stop (a graceful JVM stop
        took seconds, during which the region's later pods kept renewing their write Leases)."""
        if self.mm2 is not None:
            kill_popen(self.mm2.proc.popen)
        kill_popen(self.proc)

    def stop(self) -> None:
        if self.mm2 is not None:
            self.mm2.stop()
        stop_popen(self.proc)


@dataclass
class Kubelet:
    """Runs one region's pods (one replica per Deployment) from the apiserver's objects."""

    api: Api
    region: str
    namespace: str
    dir: Path
    host_env: dict[str, str] = field(default_factory=dict)
    """Settings of the demo's host, not of any rendered pod (only the gateways' loopback switch
    ``GATEWAY_INSECURE_LOOPBACK``): added to every pod, never over a rendered name."""
    pods: dict[str, Pod] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    file_mounts: dict[str, Path] = field(default_factory=dict)
    """Mount path -> local folder of every ConfigMap and Secret volume (for paths in configs)."""

    def dns(self, text: str) -> str:
        """Cluster DNS stand-in: ``http://checkout-<svc>:8080`` -> the local process; and a
        quoted path under a ConfigMap/Secret mount (e.g. a PSP credentials folder) -> the local
        folder of that mount."""
        for component, port in self.ports.items():
            for host in (f"checkout-{component}", f"checkout-{component}.{self.namespace}.svc"):
                text = text.replace(f"http://{host}:{SERVICE_PORT}", f"http://127.0.0.1:{port}")
        for mount_path, local in sorted(self.file_mounts.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f'"{mount_path}/', f'"{local}/').replace(
                f'"{mount_path}"', f'"{local}"'
            )
        return text

    def prepare(self, on_note: Callable[[str], None] = print) -> None:
        """Read the region's Deployments and lay out every pod (no process started yet)."""
        deployments = self.api.deployments(self.namespace)
        if not deployments:
            raise StackError(
                "demo",
                f"no Deployment in namespace {self.namespace}",
                fix="see the operator log: did it reconcile the region?",
            )
        for dep in deployments:
            labels = dep["metadata"].get("labels") or {}
            component = labels.get("app.kubernetes.io/component") or dep["metadata"]["name"]
            self.ports.setdefault(component, free_port())
        for dep in deployments:
            pod = self._pod(dep, on_note)
            if pod is not None:
                self.pods[pod.component] = pod

    def _pod(self, dep: dict[str, Any], on_note: Callable[[str], None]) -> Pod | None:
        labels = dep["metadata"].get("labels") or {}
        component = labels.get("app.kubernetes.io/component") or dep["metadata"]["name"]
        spec = dep["spec"]["template"]["spec"]
        container = spec["containers"][0]
        pod_dir = self.dir / component
        pod_dir.mkdir(parents=True, exist_ok=True)
        volumes = {v["name"]: v for v in spec.get("volumes") or ()}
        mounts: dict[str, Path] = {}
        configmaps: dict[str, tuple[str, Path]] = {}
        for mount in container.get("volumeMounts") or ():
            volume = volumes[mount["name"]]
            local = pod_dir / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                configmaps[mount["name"]] = (name, local)
            elif "secret" in volume:
                for key, value in self.api.secret(
                    self.namespace, volume["secret"]["secretName"]
                ).items():
                    path = local / key
                    path.write_text(value)
                    path.chmod(0o600)
            elif "emptyDir" not in volume:
                on_note(
                    f"{self.region}: {component}: volume {mount['name']} "
                    f"({', '.join(k for k in volume if k != 'name')}) is not filled by the demo"
                )
            mounts[mount["mountPath"]] = local
            if "emptyDir" not in volume:
                self.file_mounts[mount["mountPath"]] = local

        def local_paths(value: str) -> str:
            """A path under a mount -> the same path under the mount's local folder."""
            for mount_path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    return str(local) + value[len(mount_path.rstrip("/")) :]
            return value

        env: dict[str, str] = {}
        # envFrom first: an explicit env entry wins, as in Kubernetes
        for source in container.get("envFrom") or ():
            if "configMapRef" in source:
                data = self.api.configmap(self.namespace, source["configMapRef"]["name"]) or {}
            elif "secretRef" in source:
                data = self.api.secret(self.namespace, source["secretRef"]["name"])
            else:
                continue
            env.update({k: local_paths(str(v)) for k, v in data.items()})
        for item in container.get("env") or ():
            if "value" in item:
                env[item["name"]] = local_paths(str(item["value"]))
            elif "secretKeyRef" in (item.get("valueFrom") or {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.api.secret(self.namespace, ref["name"])[ref["key"]]
        command = [*container.get("command", ()), *container.get("args", ())]
        pod = Pod(self.region, component, pod_dir, self.ports[component], [], env, configmaps)
        pod.configmaps = configmaps
        self.sync_pod(pod)
        if command and command[0].endswith(MM2_SCRIPT):
            props = Path(local_paths(command[1]))
            pod.mm2_args = (props, command[3:] if command[2:3] == ["--clusters"] else [])
            return pod
        if not command or command[0] != "checkout-services":
            on_note(f"{self.region}: {component}: command {command!r} is not run by the demo")
            return None
        if not supports(command[1]):
            on_note(
                f"{self.region}: {component}: `checkout-services {command[1]}` does not exist "
                "in this build; not started"
            )
            return None
        # local processes share the host's network: loopback only, a port of their own (the
        # last --host/--port wins over the Deployment's `--host 0.0.0.0`)
        pod.argv = [str(SERVICES_BIN), *command[1:], "--host", "127.0.0.1", "--port", str(pod.port)]
        for key, value in self.host_env.items():
            env.setdefault(key, value)
        return pod

    def sync_pod(self, pod: Pod, cache: dict[str, dict[str, str] | None] | None = None) -> bool:
        """Write the pod's ConfigMap volumes (atomically, like the kubelet); True if changed."""
        changed = False
        cache = {} if cache is None else cache
        for name, local in pod.configmaps.values():
            if name not in cache:
                cache[name] = self.api.configmap(self.namespace, name)
            data = cache[name]
            if data is None:
                continue
            for key, value in data.items():
                text = self.dns(value)
                path = local / key
                with contextlib.suppress(FileNotFoundError):
                    if path.read_text() == text:
                        continue
                tmp = local / f".{key}.tmp"
                tmp.write_text(text)
                tmp.replace(path)
                changed = True
        return changed

    def sync(self) -> None:
        cache: dict[str, dict[str, str] | None] = dict(self.api.configmaps(self.namespace))
        with self._lock:
            for pod in self.pods.values():
                self.sync_pod(pod, cache)

    def start(self) -> None:
        """Inventory first (it creates the shared database's migration table and outbox), then
        every other pod at once (each waits for its own readiness)."""
        first = self.pods.get("inventory")
        if first is not None and not first.alive():
            first.start()
        rest = [p for p in self.pods.values() if not p.alive()]
        if rest:
            with ThreadPoolExecutor(max_workers=len(rest)) as pool:
                for future in [pool.submit(p.start) for p in rest]:
                    future.result()

    def entry(self) -> Pod:
        """Where a region's traffic enters: the gateway if it runs, else orders."""
        return self.pods.get("gateway") or self.pods["orders"]

    def kill(self) -> None:
        """The services first (they hold the write Leases), MirrorMaker 2 last."""
        for pod in sorted(self.pods.values(), key=lambda p: p.mm2_args is not None):
            pod.kill()

    def stop(self) -> None:
        for pod in self.pods.values():
            with contextlib.suppress(Exception):
                pod.stop()
