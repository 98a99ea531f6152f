"""Run a pod template from the apiserver as a real container (podman), the way a kubelet would.

What a kubelet does with the pod spec is done for real, from the apiserver's objects: the
container's securityContext (user and group, read-only root, dropped capabilities, no privilege
escalation; podman's default seccomp profile is RuntimeDefault), ConfigMap and Secret volumes
(files written from the objects, mounted read-only, Secrets readable by the fsGroup only),
emptyDir volumes (tmpfs of the sizeLimit), the service-account token (TokenRequest API,
mounted where a projected token goes), env from values and ``secretKeyRef``/``configMapKeyRef``,
and the HTTP readiness probe. Anything in the spec it cannot honour raises: nothing is dropped
silently.

Networks: ``host`` (the operator: its ports are set by the chart's values) or ``private`` (the
services all listen on 8080: each pod gets its own network namespace by slirp4netns, held by a
sidecar container (loopback_forward.py) that forwards the stack's loopback ports into it, so the
Secrets hold the same ``127.0.0.1:<port>`` addresses as on the host and Kafka's advertised
listener works; the pod's ports are published on the host's loopback, where the probes go).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from checkout_stack import images
from checkout_stack.components.kube import ControlPlane
from checkout_stack.errors import StackError
from checkout_stack.pod import Pod
from checkout_stack.proc import free_port

COMPONENT: Final = "podrun"
SA_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
# slirp4netns maps the host's loopback to this address (allow_host_loopback=true)
HOST_FROM_PRIVATE: Final = "10.0.2.2"
FORWARDER: Final = Path(__file__).with_name("loopback_forward.py")

Network = Literal["host", "private"]


def _quantity_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


@dataclass
class PodRunner:
    """Builds `podman run` lines for pod templates of one namespace of a control plane."""

    kube: ControlPlane
    namespace: str
    dir: Path
    network: Network = "host"
    forward_ports: list[int] = field(default_factory=list)
    """Host loopback ports reachable at the same address inside ``private`` pods."""

    def _get(self, kind: str, name: str) -> dict[str, Any]:
        done = self.kube.kubectl("-n", self.namespace, "get", kind, name, "-o", "json")
        obj: dict[str, Any] = json.loads(done.stdout)
        return obj

    def _secret_data(self, name: str) -> dict[str, bytes]:
        data = self._get("secret", name).get("data") or {}
        return {k: base64.b64decode(v) for k, v in data.items()}

    def _configmap_data(self, name: str) -> dict[str, bytes]:
        data = self._get("configmap", name).get("data") or {}
        return {k: str(v).encode() for k, v in data.items()}

    def token(self, service_account: str, seconds: int = 3600) -> str:
        """A bound token of ``service_account`` from the TokenRequest API (as the kubelet gets
        for a projected service-account token)."""
        done = self.kube.kubectl(
            "-n", self.namespace, "create", "token", service_account, f"--duration={seconds}s"
        )
        return done.stdout.strip()

    def _write_files(
        self, folder: Path, files: Mapping[str, bytes], items: Iterable[dict[str, Any]] | None,
        mode: int, group: int | None,
    ) -> None:  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in files}
        for key, rel in chosen.items():
            if key not in files:
                raise StackError(COMPONENT, f"key {key} missing", fix="check the volume's items")
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[key])
            path.chmod(mode)
            if group is not None:
                os.chown(path, 0, group)
        folder.chmod(0o755)

    def pod(self, name: str, template: dict[str, Any], image: str | None = None) -> Pod:
        """The container of ``template`` (a pod template: ``{"spec": ...}``) as a `podman run`
        line; ``image`` replaces the container's (e.g. a registry name the store lacks)."""
        spec = template["spec"]
        containers = spec["containers"]
        if len(containers) != 1 or spec.get("initContainers"):
            raise StackError(COMPONENT, f"{name}: one container expected", fix="extend podrun")
        container = containers[0]
        pod_sc = spec.get("securityContext") or {}
        sc = {**pod_sc, **(container.get("securityContext") or {})}
        pod_dir = self.dir / name
        argv = images.podman("run", "--detach", "--name", name, *images.RUN_LIMITS[:4])
        argv += self._security(name, sc)
        mounts, mount_args = self._volumes(name, spec, container, pod_dir, pod_sc.get("fsGroup"))
        argv += mount_args
        env = self._env(container, name)
        ports = {p["containerPort"]: p["containerPort"] for p in container.get("ports") or ()}
        net_argv = None
        if self.network == "host":
            argv += ["--network", "host"]
        else:
            ports = {cport: free_port() for cport in ports}
            net_argv = self._net_sidecar(f"{name}-net", image or container["image"], ports,
                                         with_api=SA_DIR in mounts)  # fmt: skip
            argv += ["--network", f"container:{name}-net"]
        if SA_DIR in mounts:
            env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
            env["KUBERNETES_SERVICE_PORT"] = str(self.kube.port)
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        if container.get("command"):
            argv += ["--entrypoint", json.dumps(container["command"])]
        argv += [image or container["image"], *container.get("args", ())]
        return Pod(
            name=name,
            argv=argv,
            log=pod_dir / "container.log",
            probe_url=self._probe_url(container, ports),
            ports=ports,
            mount_points=sorted(mounts),
            net_argv=net_argv,
        )

    def _net_sidecar(
        self, name: str, image: str, ports: dict[int, int], with_api: bool
    ) -> list[str]:
        """The pod's network namespace: slirp4netns (host loopback at HOST_FROM_PRIVATE), the
        pod's ports published on the host's loopback, the stack's ports forwarded in."""
        forwarded = sorted({*self.forward_ports, *([self.kube.port] if with_api else [])})
        argv = images.podman("run", "--detach", "--name", name, *images.RUN_LIMITS[:4])
        argv += ["--read-only", "--read-only-tmpfs=false", "--user", "65534:65534"]
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        argv += ["--network", "slirp4netns:allow_host_loopback=true"]
        for cport, hport in ports.items():
            argv += ["--publish", f"127.0.0.1:{hport}:{cport}"]
        argv += ["--volume", f"{FORWARDER}:/forward.py:ro", "--entrypoint", '["python3"]']
        return [*argv, image, "/forward.py", HOST_FROM_PRIVATE, *map(str, forwarded)]

    def _security(self, name: str, sc: dict[str, Any]) -> list[str]:
        if sc.get("privileged"):
            raise StackError(COMPONENT, f"{name}: privileged pod", fix="not run here")
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        if sc.get("runAsNonRoot") and uid in (None, 0):
            raise StackError(COMPONENT, f"{name}: runAsNonRoot without a non-zero runAsUser",
                             fix="set runAsUser (the kubelet would refuse the pod)")  # fmt: skip
        args: list[str] = []
        if uid is not None:
            args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
        if sc.get("fsGroup") is not None:
            args += ["--group-add", str(sc["fsGroup"])]
        if sc.get("readOnlyRootFilesystem"):
            # only the pod's own volumes are writable: no /tmp, /run, /var/tmp tmpfs of podman
            args += ["--read-only", "--read-only-tmpfs=false"]
        caps = sc.get("capabilities") or {}
        args += [arg for cap in caps.get("drop") or () for arg in ("--cap-drop", cap)]
        args += [arg for cap in caps.get("add") or () for arg in ("--cap-add", cap)]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        seccomp = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if seccomp == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        elif seccomp != "RuntimeDefault":
            raise StackError(COMPONENT, f"{name}: seccomp {seccomp}", fix="extend podrun")
        return args

    def _volumes(
        self, name: str, spec: dict[str, Any], container: dict[str, Any], pod_dir: Path,
        fs_group: int | None,
    ) -> tuple[set[str], list[str]]:  # fmt: skip
        volumes = {v["name"]: v for v in spec.get("volumes") or ()}
        args: list[str] = []
        points: set[str] = set()
        for mount in container.get("volumeMounts") or ():
            volume = volumes[mount["name"]]
            path = mount["mountPath"]
            local = pod_dir / "volumes" / mount["name"]
            if "emptyDir" in volume:
                size = volume["emptyDir"].get("sizeLimit")
                opts = "rw,nosuid,nodev,mode=1777" + (
                    f",size={_quantity_bytes(size)}" if size else ""
                )
                args += ["--tmpfs", f"{path}:{opts}"]
            elif "configMap" in volume:
                ref = volume["configMap"]
                data = self._configmap_data(ref["name"])
                self._write_files(local, data, ref.get("items"), 0o644, None)
                args += ["--volume", f"{local}:{path}:ro"]
            elif "secret" in volume:
                ref = volume["secret"]
                data = self._secret_data(ref["secretName"])
                # readable by the pod's fsGroup only (the kubelet's defaultMode + fsGroup)
                group_mode = 0o640 if fs_group is not None else 0o644
                self._write_files(local, data, ref.get("items"), group_mode, fs_group)
                args += ["--volume", f"{local}:{path}:ro"]
            else:
                kinds = ", ".join(k for k in volume if k != "name")
                raise StackError(COMPONENT, f"{name}: volume {mount['name']} ({kinds})",
                                 fix="extend podrun for this volume type")  # fmt: skip
            points.add(path)
        automount = spec.get("automountServiceAccountToken", True)
        if automount:
            sa = spec.get("serviceAccountName") or "default"
            local = pod_dir / "volumes" / "kube-api-access"
            ca_pem = self.kube.dir / "pki" / "ca.crt"
            files = {
                "token": self.token(sa).encode(),
                "ca.crt": ca_pem.read_bytes(),
                "namespace": self.namespace.encode(),
            }
            self._write_files(local, files, None, 0o640 if fs_group is not None else 0o644,
                              fs_group)  # fmt: skip
            args += ["--volume", f"{local}:{SA_DIR}:ro"]
            points.add(SA_DIR)
        return points, args

    def _env(self, container: dict[str, Any], pod_name: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or ():
            if "configMapRef" in source:
                data = self._configmap_data(source["configMapRef"]["name"])
            else:
                data = self._secret_data(source["secretRef"]["name"])
            env.update({k: v.decode() for k, v in data.items()})
        for item in container.get("env") or ():
            value_from = item.get("valueFrom") or {}
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "secretKeyRef" in value_from:
                ref = value_from["secretKeyRef"]
                env[item["name"]] = self._secret_data(ref["name"])[ref["key"]].decode()
            elif "configMapKeyRef" in value_from:
                ref = value_from["configMapKeyRef"]
                env[item["name"]] = self._configmap_data(ref["name"])[ref["key"]].decode()
            elif "fieldRef" in value_from and value_from["fieldRef"]["fieldPath"] in (
                "metadata.namespace",
                "metadata.name",
            ):
                # the downward API: what a kubelet fills in (the chart's POD_NAME/POD_NAMESPACE)
                field = value_from["fieldRef"]["fieldPath"]
                env[item["name"]] = self.namespace if field == "metadata.namespace" else pod_name
            else:
                raise StackError(COMPONENT, f"env {item['name']}: {value_from}",
                                 fix="extend podrun for this env source")  # fmt: skip
        return env

    @staticmethod
    def _probe_url(container: dict[str, Any], ports: dict[int, int]) -> str | None:
        probe = (container.get("readinessProbe") or {}).get("httpGet")
        if probe is None:
            return None
        port = probe["port"]
        if isinstance(port, str):
            named = {p["name"]: p["containerPort"] for p in container.get("ports") or ()}
            port = named[port]
        return f"http://127.0.0.1:{ports.get(port, port)}{probe.get('path', '/')}"
