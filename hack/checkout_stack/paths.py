"""Where the repository, the cache and the binaries are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from checkout_stack import versions
from checkout_stack.errors import MissingTool

REPO = Path(__file__).resolve().parents[2]


def default_cache_dir() -> Path:
    """The one default of the cache: `$XDG_CACHE_HOME/checkout-operator`, else
    `~/.cache/checkout-operator`. Outside the clone, so a second clone reuses the builds.

    hack/setup.sh, hack/stack, the Makefile, the pytest plugin, the demo and .ci/run all come
    here (none of them sets a default of its own)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "checkout-operator"


def cache_dir() -> Path:
    """`$CHECKOUT_CACHE_DIR` if set, else `default_cache_dir()`."""
    override = os.environ.get("CHECKOUT_CACHE_DIR")
    return Path(override or default_cache_dir()).expanduser().resolve()


def cache_origin() -> str:
    """Where `cache_dir()` came from, for error messages."""
    if os.environ.get("CHECKOUT_CACHE_DIR"):
        return "$CHECKOUT_CACHE_DIR"
    return "$XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "the default"


def state_file() -> Path:
    """Where `hack/stack up` records what it started: one stack per checkout, unless
    `$CHECKOUT_STACK_STATE` names another file."""
    override = os.environ.get("CHECKOUT_STACK_STATE")
    return Path(override) if override else REPO / ".cache" / "stack-state.json"


def logs_dir() -> Path:
    return cache_dir() / "logs"


def go_bin() -> Path:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    return Path(found)


K8S_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "etcd",
)


def built_k8s_dir() -> Path:
    """Where `hack/stack build` puts the control-plane binaries, kubectl and etcd."""
    return cache_dir() / "bin" / f"k8s-{versions.KUBERNETES}"


def kubelet_bin() -> Path:
    """The kubelet, built by the same `go build` of the pinned k8s.io/kubernetes as the control
    plane."""
    return built_k8s_dir() / "kubelet"


def kube_proxy_bin() -> Path:
    """kube-proxy of the real node: the pinned k8s.io/kubernetes (its own folder, so that adding
    it did not invalidate the control plane's)."""
    return cache_dir() / "bin" / f"kube-proxy-{versions.KUBERNETES}" / "kube-proxy"


def coredns_bin() -> Path:
    return cache_dir() / "bin" / f"coredns-{versions.COREDNS}" / "coredns"


def kwok_bin() -> Path:
    return cache_dir() / "bin" / f"kwok-{versions.KWOK}" / "kwok"


def kwok_stages() -> Path:
    """kwok's Stage configs (node init + heartbeat, pod ready/complete/delete)."""
    return kwok_bin().parent / "stages.yaml"


def helm_bin() -> Path:
    return cache_dir() / "bin" / f"helm-{versions.HELM}" / "helm"


def stripe_mock_bin() -> Path:
    return cache_dir() / "bin" / f"stripe-mock-{versions.STRIPE_MOCK}" / "stripe-mock"


def promtool_bin() -> Path:
    return cache_dir() / "bin" / f"promtool-{versions.PROMETHEUS}" / "promtool"


def kafka_libs() -> Path:
    return cache_dir() / f"kafka-{versions.KAFKA}" / "libs"


def postgres_bin_dir() -> Path:
    return Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")


def venv_bin(name: str) -> Path:
    return REPO / ".venv" / "bin" / name


def require(component: str, path: Path, fix: str | None = None) -> Path:
    if not path.exists():
        raise MissingTool(component, str(path), fix)
    return path


def k8s_binary(name: str) -> Path:
    """A control-plane binary: `$KUBEBUILDER_ASSETS/<name>` if there, else the built one.

    envtest's assets hold etcd, kube-apiserver and kubectl only: the controller-manager and the
    scheduler always come from `hack/stack build`.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).exists():
        return Path(assets) / name
    return require("kubernetes", built_k8s_dir() / name)


def java_bin() -> Path:
    found = shutil.which("java")
    if not found:
        raise MissingTool("kafka", "java (JDK 17)", "apt-get install -y openjdk-17-jdk-headless")
    return Path(found)
