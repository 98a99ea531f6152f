"""A fresh machine runs the README's two commands (issue 17).

The README's first command builds with `hack/setup.sh` (-> `hack/stack build`) and then runs
`make demo`; both must agree on one cache folder with an EMPTY environment (a newcomer sets no
CHECKOUT_CACHE_DIR), and a Kafka id must never start with `-`.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checkout_stack import build, paths
from checkout_stack.components import kafka

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import readme_commands  # noqa: E402


def newcomer_env(home: Path) -> dict[str, str]:
    """What a newcomer's shell has: PATH and HOME, nothing of ours."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}


def test_readme_names_the_two_commands() -> None:
    assert readme_commands.commands((ROOT / "README.md").read_text()) == [
        "bash hack/setup.sh && make demo",
        "make test",
    ]


def test_readme_commands_parser_refuses_a_readme_without_them() -> None:
    with pytest.raises(ValueError, match="The two commands"):
        readme_commands.commands("# a README\n")
    with pytest.raises(ValueError, match="holds no command"):
        readme_commands.commands("## The two commands\n```bash\n# only a comment\n```\n")


def test_ci_runs_the_readme_commands_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py" in ci
    assert "env -u CHECKOUT_CACHE_DIR" in ci
    assert "export CHECKOUT_CACHE_DIR" not in ci
    assert "CHECKOUT_CACHE_DIR" not in (ROOT / "Makefile").read_text()
    assert "CHECKOUT_CACHE_DIR=" not in (ROOT / "hack" / "setup.sh").read_text()


def test_the_default_cache_is_outside_the_clone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CHECKOUT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.cache_dir() == tmp_path / ".cache" / "checkout-operator"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "checkout-operator"
    monkeypatch.setenv("CHECKOUT_CACHE_DIR", str(tmp_path / "mine"))
    assert paths.cache_dir() == tmp_path / "mine"


def test_make_demo_finds_what_setup_built_with_an_empty_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """setup's build step and make demo's preflight look in the same place: nothing there ->
    both say so, naming the cache and the fix; the build's outputs there -> both find them."""
    home = tmp_path / "home"
    home.mkdir()
    env = newcomer_env(home)
    stack_check = [str(ROOT / "hack" / "stack"), "build", "--check"]
    demo_check = ["make", "--no-print-directory", "demo", "DEMO_ARGS=--check"]

    before = subprocess.run(stack_check, cwd=ROOT, env=env, capture_output=True, text=True)
    assert before.returncode == 1, before.stderr
    cache = home / ".cache" / "checkout-operator"
    assert f"cache {cache} (the default)" in before.stderr
    assert "fix: run `hack/stack build`" in before.stderr
    demo = subprocess.run(demo_check, cwd=ROOT, env=env, capture_output=True, text=True)
    assert demo.returncode != 0
    assert str(cache) in demo.stderr
    assert "fix: run `bash hack/setup.sh`" in demo.stderr

    # what `hack/stack build` leaves, as seen by the build module under the same environment
    monkeypatch.delenv("CHECKOUT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    for _, path in build.missing():
        if path.is_relative_to(cache):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    assert all(not p.is_relative_to(cache) for _, p in build.missing())

    after = subprocess.run(stack_check, cwd=ROOT, env=env, capture_output=True, text=True)
    missing_outside = [p for _, p in build.missing()]
    # only the venv's Temporal CLI lives outside the cache (made by `make setup`)
    assert all(p.is_relative_to(ROOT / ".venv") for p in missing_outside)
    if not missing_outside:
        assert after.returncode == 0, after.stderr
        demo = subprocess.run(demo_check, cwd=ROOT, env=env, capture_output=True, text=True)
        assert demo.returncode == 0, demo.stderr
        assert f"everything is built (cache {cache})" in demo.stdout


def test_kafka_ids_never_start_with_a_dash() -> None:
    ids = [kafka.kafka_id() for _ in range(20_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    for i in ids[:500]:
        assert len(i) == 22
        assert len(base64.urlsafe_b64decode(i + "==")) == 16


def test_kafka_id_rule_rejects_the_dash_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator retries past a dash id (one in 64 of random ids) instead of returning it."""
    dash = b"\xf8" + bytes(15)  # base64 of 0b111110.. starts with '-'
    plain = bytes(16)
    draws = iter([dash, dash, plain])

    class FakeUuid:
        def __init__(self) -> None:
            self.bytes = next(draws)

    monkeypatch.setattr(kafka.uuid, "uuid4", FakeUuid)
    assert base64.urlsafe_b64encode(dash).decode().startswith("-")
    assert kafka.kafka_id() == base64.urlsafe_b64encode(plain).decode().rstrip("=")
