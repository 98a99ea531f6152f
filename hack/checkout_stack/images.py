"""The project's container images, built without Docker and cached by a hash of their inputs.

No Docker engine and no registry here: the base is a Debian bookworm root filesystem made by
``mmdebstrap`` from Debian's packages (Python 3.11, as the Dockerfile's default base has) and
imported into podman's store; the Dockerfile is then built unchanged by ``podman build`` with
``--build-arg PYTHON_IMAGE=<that base>``. Two targets of the one Dockerfile:

- ``operator`` (the last stage, what ``docker build .`` makes): the operator, base dependencies;
- ``services``: the checkout services, with the ``services`` and ``tracing`` extras.

Each built image is saved as an OCI archive named by the content hash of everything that goes
into it (Dockerfile, .dockerignore, pyproject.toml, README.md, the operator/ and services/
trees, the base recipe) under ``$CHECKOUT_CACHE_DIR/images``; a later build with the same
inputs only loads the archive into podman's store when the image is not there yet.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from checkout_stack import paths
from checkout_stack.errors import MissingTool, StackError
from checkout_stack.proc import run_logged

COMPONENT: Final = "images"
APT_TOOLS: Final = {
    "podman": "podman",
    "buildah": "buildah",
    "mmdebstrap": "mmdebstrap",
    "runc": "runc",
}
FIX_APT: Final = "run `bash hack/setup.sh` (installs podman, buildah, mmdebstrap, runc)"

# -- the base image recipe (part of every image's hash) --------------------------------------
SUITE: Final = "bookworm"
# python3-venv: `python -m venv` (with the pip wheel ensurepip needs); python-is-python3: the
# Dockerfile calls `python`; ca-certificates: pip over TLS in the builder stage.
BASE_PACKAGES: Final = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_RECIPE: Final = f"mmdebstrap --variant=minbase {SUITE} +{','.join(BASE_PACKAGES)}"

# -- podman on this machine: runc (crun fails on hybrid cgroups), cgroupfs, no systemd --------
PODMAN_GLOBAL: Final = (
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "file",
)
# ulimits above the current hard limits fail; the host network (no CNI needed to build or run)
RUN_LIMITS: Final = (
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "host",
)

# The host's trust store and pip settings, mounted into the build's RUN steps only (not into the
# image): pip in the builder reaches the package index the way the host does (e.g. through a
# TLS-inspecting proxy whose CA only the host trusts).
BUILD_HOST_FILES: Final = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")

# what goes into the build context (the rest is excluded by .dockerignore)
CONTEXT_FILES: Final = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_TREES: Final = ("operator", "services")
IGNORED_PARTS: Final = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")

TARGETS: Final = ("operator", "services")
IMAGE_NAMES: Final = {
    "operator": "localhost/checkout-operator",
    "services": "localhost/checkout-services",
}


def require_tools() -> None:
    missing = [pkg for tool, pkg in APT_TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise MissingTool(COMPONENT, ", ".join(missing), FIX_APT)


def podman(*args: str) -> list[str]:
    """A podman command line with this machine's global flags."""
    return ["podman", *PODMAN_GLOBAL, *args]


def _context_files(repo: Path) -> Iterable[Path]:
    for name in CONTEXT_FILES:
        yield repo / name
    for tree in CONTEXT_TREES:
        for path in sorted((repo / tree).rglob("*")):
            rel = path.relative_to(repo)
            if path.is_dir() or path.suffix == ".pyc":
                continue
            if any(part in IGNORED_PARTS or part.endswith(".egg-info") for part in rel.parts):
                continue
            yield path


def base_hash() -> str:
    return hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:16]


def content_hash(repo: Path = paths.REPO) -> str:
    """sha256 over the base recipe and every file of the build context (path + bytes)."""
    digest = hashlib.sha256(BASE_RECIPE.encode())
    for path in _context_files(repo):
        digest.update(str(path.relative_to(repo)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def images_dir() -> Path:
    return paths.cache_dir() / "images"


def image_ref(target: str, tag: str | None = None) -> str:
    """``localhost/checkout-<target>:<content hash>``."""
    return f"{IMAGE_NAMES[target]}:{tag or content_hash()}"


def archive_path(target: str, tag: str | None = None) -> Path:
    return images_dir() / f"checkout-{target}-{tag or content_hash()}.oci.tar"


def base_ref() -> str:
    return f"localhost/checkout-base:{SUITE}-{base_hash()}"


def _run(argv: list[str], log: Path, what: str, cwd: Path | None = None) -> None:
    run_logged(COMPONENT, argv, log, what=what, cwd=cwd, rerun="make image", append=True)


def in_store(ref: str) -> bool:
    done = subprocess.run(podman("image", "exists", ref), capture_output=True, check=False)
    return done.returncode == 0


def _apt_sources() -> list[str]:
    """The host's apt sources (mmdebstrap reads a sources file given as its mirror argument):
    the base comes from the same Debian mirror the machine already uses."""
    found = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists() and legacy.read_text().strip():
        found.append(legacy)
    if not found:
        raise StackError(
            COMPONENT, "no apt sources on this machine", fix="configure Debian's apt sources"
        )
    return [str(p) for p in found]


def ensure_base(log: Path) -> str:
    """The base image in podman's store (made by mmdebstrap once per recipe)."""
    ref = base_ref()
    if in_store(ref):
        return ref
    tarball = images_dir() / f"base-{SUITE}-{base_hash()}.tar"
    if not tarball.exists():
        tmp = tarball.with_suffix(".tmp.tar")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                # no docs/man pages/apt lists in the image
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/*",
                SUITE,
                str(tmp),
                *_apt_sources(),
            ],
            log,
            "base root filesystem",
        )
        tmp.rename(tarball)
    _run(
        podman(
            "import",
            "--change",
            'CMD ["python3"]',
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            str(tarball),
            ref,
        ),
        log,
        "import the base",
    )
    return ref


def ensure_image(target: str, log: Path | None = None) -> str:
    """The image of ``target`` (operator|services) in podman's store; built only when no
    archive of the current content hash exists. Returns its reference."""
    require_tools()
    log = log or paths.logs_dir() / "build-images.log"
    tag = content_hash()
    ref = image_ref(target, tag)
    archive = archive_path(target, tag)
    if in_store(ref):
        if not archive.exists():
            _save(ref, archive, log)
        return ref
    if archive.exists():
        _run(podman("load", "--input", str(archive)), log, f"load {archive.name}")
        if in_store(ref):
            return ref
        raise StackError(
            COMPONENT,
            f"{archive} loaded but {ref} is not in podman's store",
            fix=f"delete {archive} and rerun `make image`",
            log=log,
        )
    base = ensure_base(log)
    host_files = [
        arg for f in BUILD_HOST_FILES if Path(f).is_file() for arg in ("--volume", f"{f}:{f}:ro")
    ]
    _run(
        podman(
            "build",
            "--file",
            "Dockerfile",
            "--target",
            target,
            "--build-arg",
            f"PYTHON_IMAGE={base}",
            "--pull=never",
            # the builder stage is built once for both targets (layer cache in the store)
            "--layers=true",
            *host_files,
            *RUN_LIMITS,
            "--tag",
            ref,
            ".",
        ),
        log,
        f"build the {target} image",
        cwd=paths.REPO,
    )
    _save(ref, archive, log)
    return ref


def _save(ref: str, archive: Path, log: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _run(podman("save", "--format", "oci-archive", "--output", str(tmp), ref), log, "save")
    tmp.rename(archive)


def image_size(ref: str) -> int:
    done = subprocess.run(
        podman("image", "inspect", "--format", "{{.Size}}", ref),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


@dataclass(frozen=True)
class Built:
    ref: str
    archive: Path
    size: int
    seconds: float


def build_all() -> dict[str, Built]:
    """Both images (each cached by the content hash)."""
    out: dict[str, Built] = {}
    for target in TARGETS:
        t0 = time.monotonic()
        ref = ensure_image(target)
        out[target] = Built(ref, archive_path(target), image_size(ref), time.monotonic() - t0)
    return out


def summary() -> str:
    built = build_all()
    return "; ".join(
        f"{b.ref} {b.size / 2**20:.0f} MiB ({b.seconds:.1f} s)" for b in built.values()
    )
