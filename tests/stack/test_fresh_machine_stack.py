"""On the machine setup ran on (CI runs `bash hack/setup.sh` first, with no CHECKOUT_CACHE_DIR):
the README's main job finds what setup built, from an empty environment, and Kafka's real
StorageTool takes an id that starts with `-` the way we pass it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from checkout_stack import paths
from checkout_stack.components import kafka

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_preflight_finds_the_real_build_from_an_empty_environment() -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    done = subprocess.run(
        ["make", "--no-print-directory", "demo", "DEMO_ARGS=--check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"make demo cannot find what setup built (stdout {done.stdout!r}, stderr "
        f"{done.stderr!r}); run `bash hack/setup.sh` without CHECKOUT_CACHE_DIR first"
    )
    assert "everything is built" in done.stdout


def test_storage_tool_formats_with_an_id_that_starts_with_a_dash(tmp_path: Path) -> None:
    paths.require("kafka", paths.kafka_libs(), kafka.FIX_BUILD)
    dash_id = "-T4_oqf8SU2aKPu5LSsa1g"  # the id that broke setup on a fresh machine
    data = kafka.format_storage(tmp_path, dash_id)
    assert f"cluster.id={dash_id}" in (data / "meta.properties").read_text()
    assert (data / "bootstrap.checkpoint").exists()
