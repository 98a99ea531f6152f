"""The Argo CD Lua harness (hack/tools/argocd-lua): built with Go into the cache, keyed by the
hash of its sources, so a changed harness is rebuilt and an unchanged one is reused."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from checkout_stack import paths
from checkout_stack.errors import MissingTool, StackError

SOURCE_DIR = paths.REPO / "hack" / "tools" / "argocd-lua"


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.iterdir()):
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary() -> Path:
    return paths.cache_dir() / "bin" / f"argocd-lua-{source_hash()}" / "argocd-lua"


def build() -> str:
    dest = binary()
    if dest.exists():
        return f"cached {dest}"
    go = paths.go_bin()
    if not go.exists():
        raise MissingTool(
            "argocd-lua",
            "the Go toolchain (go)",
            "run `bash hack/setup.sh` (installs Go into /usr/local/go) or put `go` on PATH",
        )
    cache = paths.cache_dir()
    env = {
        **os.environ,
        "GOCACHE": str(cache / "go" / "build"),
        "GOMODCACHE": str(cache / "go" / "mod"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
        "CGO_ENABLED": "0",
    }
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log = paths.logs_dir() / "build-argocd-lua.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(go), "build", "-trimpath", "-o", str(tmp), "."]
    with log.open("w") as out:
        done = subprocess.run(
            argv, cwd=SOURCE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise StackError(
            "argocd-lua",
            f"`{' '.join(argv)}` exited with {done.returncode}",
            fix="read the log; rerun `hack/stack build --only argocd-lua`",
            log=log,
        )
    tmp.rename(dest)
    return f"built {dest}"
