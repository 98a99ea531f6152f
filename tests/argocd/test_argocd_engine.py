"""The Argo CD customizations under argocd/ run in Argo CD's own Lua engine (gopher-lua with the
library set Argo CD opens for argocd-cm scripts) over their upstream-format test files."""

from __future__ import annotations

import json
import pathlib

import pytest

from . import engine


def test_every_upstream_format_suite_passes_in_argo_cds_sandbox() -> None:
    done = engine.run("test", "--json", "--now", engine.NOW, str(engine.ROOT))
    results = [json.loads(line) for line in done.stdout.splitlines()]
    failed = [r for r in results if not r["passed"]]
    assert not failed, "\n".join(f"{r['name']}: {r['detail']}" for r in failed)
    assert done.returncode == 0, done.stderr
    suites = {pathlib.Path(r["name"]).parts[-3] for r in results}
    actions = {"discovery", "switchover", "drain", "return-home", "pause", "resume"}
    assert {"CheckoutRegion", "PSPRoute"} | actions <= suites, suites
    assert len(results) >= 25


@pytest.mark.parametrize("library", ["string", "math", "io"])
def test_the_sandbox_lacks_the_libraries_argocd_cm_scripts_lack(
    tmp_path: pathlib.Path, library: str
) -> None:
    script = tmp_path / "health.lua"
    script.write_text(f'return {{status = "Healthy", message = tostring({library}.len)}}\n')
    obj = tmp_path / "obj.yaml"
    obj.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    done = engine.run("health", str(script), str(obj))
    assert done.returncode == 1
    assert f"{library}" in done.stderr or "non-table" in done.stderr, done.stderr
    opened = engine.run("health", "--open-libs", str(script), str(obj))
    assert opened.returncode == 0, opened.stderr


def test_the_sandbox_has_table_and_safe_os(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "health.lua"
    script.write_text(
        'local t = {}\ntable.insert(t, os.date("!%Y-%m-%dT%H:%M:%SZ"))\n'
        "return {status = \"Healthy\", message = t[1] .. ' ' .. os.time()}\n"
    )
    obj = tmp_path / "obj.yaml"
    obj.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    done = engine.run("health", "--now", "2026-12-07T14:00:00Z", str(script), str(obj))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "status": "Healthy",
        "message": "2026-12-07T14:00:00Z 1796652000",
    }
    exec_script = tmp_path / "exec.lua"
    exec_script.write_text('os.execute("true")\nreturn {status = "Healthy"}\n')
    refused = engine.run("health", str(exec_script), str(obj))
    assert refused.returncode == 1, refused.stdout
    assert "attempt to call a non-function object" in refused.stderr, refused.stderr


def test_a_missing_go_toolchain_fails_with_the_fix(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkout_stack import argocd_lua, paths
    from checkout_stack.errors import MissingTool

    monkeypatch.setenv("CHECKOUT_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(paths, "go_bin", lambda: tmp_path / "no-go" / "go")
    with pytest.raises(MissingTool, match=r"hack/setup\.sh"):
        argocd_lua.build()
