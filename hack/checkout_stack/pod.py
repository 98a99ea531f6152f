"""A container started from a pod template (:mod:`checkout_stack.podrun` makes it): start,
readiness by its HTTP probe, logs and state, what it wrote outside its volumes, stop and kill;
:func:`running` removes what it started, also on failure."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from checkout_stack import images
from checkout_stack.errors import StackError

COMPONENT: Final = "podrun"
EROFS_MARKERS: Final = ("Read-only file system", "EROFS")


@dataclass
class Pod:
    """One running (or finished) container of a pod template."""

    name: str
    argv: list[str]
    log: Path
    probe_url: str | None
    ports: dict[int, int]
    """containerPort -> the host port that reaches it."""
    mount_points: list[str]
    net_argv: list[str] | None = None
    """The sidecar holding the pod's own network namespace (``private`` network)."""

    @property
    def net_name(self) -> str:
        return f"{self.name}-net"

    def start(self) -> Pod:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.remove()
        for argv in (self.net_argv, self.argv):
            if argv is None:
                continue
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(
                    COMPONENT,
                    f"`{' '.join(argv)}` exited with {done.returncode}: {done.stderr.strip()}",
                    fix="read the podman error above",
                )
        return self

    def restart(self) -> None:
        """The container again, in the same pod (as the kubelet restarts a killed one)."""
        subprocess.run(images.podman("rm", "-f", self.name), capture_output=True, check=False)
        subprocess.run(self.argv, capture_output=True, check=True)

    def logs(self) -> str:
        done = subprocess.run(
            images.podman("logs", self.name), capture_output=True, text=True, check=False
        )
        text = done.stdout + done.stderr
        self.log.write_text(text)
        return text

    def state(self) -> dict[str, Any]:
        done = subprocess.run(
            images.podman("inspect", "--format", "{{json .State}}", self.name),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return {}
        state: dict[str, Any] = json.loads(done.stdout)
        return state

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def ready(self) -> bool:
        """The readiness probe, once (HTTP 200-399 is ready, as the kubelet counts it)."""
        if self.probe_url is None:
            return self.running()
        try:
            with urllib.request.urlopen(self.probe_url, timeout=2) as resp:  # noqa: S310 (http://127.0.0.1 built here)
                return 200 <= int(resp.status) < 400
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if not self.running():
                raise StackError(
                    COMPONENT,
                    f"container {self.name} exited ({self.state().get('ExitCode')}) before ready"
                    f"\n{self.logs()[-4000:]}",
                    fix="read the container's log above",
                )
            time.sleep(0.5)
        raise StackError(
            COMPONENT,
            f"container {self.name} not ready after {timeout:.0f} s ({self.probe_url})"
            f"\n{self.logs()[-4000:]}",
            fix="read the container's log above",
        )

    def writes_outside_volumes(self) -> list[str]:
        """``podman diff`` of the container's root filesystem, minus the mount points podman
        itself creates for the volumes (and their parent folders)."""
        done = subprocess.run(
            images.podman("diff", "--format", "json", self.name),
            capture_output=True,
            text=True,
            check=True,
        )
        changes: dict[str, list[str] | None] = json.loads(done.stdout or "{}")
        allowed = set()
        points = [*self.mount_points, "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]
        # /var/run is a symlink to /run in the images: podman creates the mount point there
        points += [p.replace("/var/run/", "/run/", 1) for p in points if p.startswith("/var/run/")]
        for point in points:
            parts = Path(point).parts
            allowed |= {str(Path(*parts[: n + 1])) for n in range(1, len(parts))}
        allowed |= {"/run/.containerenv", "/run"}
        return sorted(
            f"{kind} {path}"
            for kind, paths in changes.items()
            for path in paths or ()
            if path not in allowed
        )

    def read_only_errors(self) -> list[str]:
        return [line for line in self.logs().splitlines() if any(m in line for m in EROFS_MARKERS)]

    def stop(self, grace: int = 30) -> int:
        """SIGTERM, SIGKILL after ``grace`` s (as the kubelet does); the exit code."""
        subprocess.run(
            images.podman("stop", "--time", str(grace), self.name),
            capture_output=True,
            check=False,
        )
        self.logs()
        return int(self.state().get("ExitCode", -1))

    def kill(self) -> None:
        subprocess.run(
            images.podman("kill", "--signal", "KILL", self.name), capture_output=True, check=False
        )

    def remove(self) -> None:
        for name in (self.name, self.net_name):
            subprocess.run(images.podman("rm", "-f", name), capture_output=True, check=False)


@contextlib.contextmanager
def running(pods: Iterable[Pod]) -> Any:
    """Start ``pods``; remove them on the way out (also on failure)."""
    started: list[Pod] = []
    try:
        for pod in pods:
            started.append(pod.start())
        yield started
    finally:
        for pod in started:
            pod.remove()
