"""`checkout-operator render` and `crds` as a user runs them (real subprocesses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import example_data as helpers
import pytest
import yaml

BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path = helpers.ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "checkout-operator"), *args], capture_output=True, text=True, cwd=cwd
    )


def test_render_examples_prints_valid_yaml() -> None:
    proc = _run("render", "-f", "examples/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    docs = list(yaml.safe_load_all(proc.stdout))
    assert len(docs) > 100
    regions = {d["metadata"]["labels"]["checkout-operator.io/region"] for d in docs}
    assert regions == {"ap-south-1", "eu-central-1", "eu-west-1", "us-east-1"}
    keys = [
        (
            d["metadata"]["labels"]["checkout-operator.io/region"],
            d["kind"],
            d["metadata"]["namespace"],
            d["metadata"]["name"],
        )
        for d in docs
    ]
    assert keys == sorted(keys)


def test_render_accepts_several_files_and_one_region() -> None:
    proc = _run(
        "render", "-f", "examples/regions", "-f", "examples/psproutes/in-upi.yaml",
        "--region", "ap-south-1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert {d["metadata"]["labels"]["checkout-operator.io/region"] for d in docs} == {"ap-south-1"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad-yaml.yaml", "bad-yaml.yaml: line 9, column 4: invalid YAML"),
        ("unknown-field.yaml", "unknown-field.yaml: spec.services.cart.replica: unknown field"),
        ("wrong-type.yaml", "wrong-type.yaml: spec.healthProbe.failureThreshold: Input should be"),
        (
            "failover-to-itself.yaml",
            "failover-to-itself.yaml: spec.failover.targets[0]: a region never lists itself",
        ),
        ("unknown-kind.yaml", "unknown-kind.yaml: kind: unknown kind 'CheckoutZone'"),
        (
            "residency.yaml",
            "residency.yaml#2: spec.failover.targets[0]: region eu-west-1 (jurisdiction EU) "
            "may not hold data of market IN (allowed: IN)",
        ),
    ],
)
def test_invalid_input_exits_2_naming_the_field_with_nothing_on_stdout(
    name: str, expected: str
) -> None:
    proc = _run("render", "-f", f"tests/data/invalid/{name}")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_one_broken_file_among_good_ones_prints_nothing(tmp_path: Path) -> None:
    proc = _run("render", "-f", "examples/", "-f", "tests/data/invalid/unknown-field.yaml")
    assert proc.returncode == 2
    assert proc.stdout == ""


def test_missing_file_and_duplicate_key(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("kind: PSPRoute\nkind: CheckoutRegion\n")
    proc = _run("render", "-f", str(tmp_path / "nope.yaml"), "-f", str(dup))
    assert proc.returncode == 2
    assert "nope.yaml: no such file or directory" in proc.stderr
    assert "duplicate key 'kind'" in proc.stderr
    assert "2 problems in the input:" in proc.stderr


def test_render_is_byte_identical_across_runs() -> None:
    assert _run("render", "-f", "examples/").stdout == _run("render", "-f", "examples/").stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--help"], ["render", "crds", "examples:"]),
        (["render", "--help"], ["-f FILE_OR_DIR", "examples:", "exit code is 2", "--region"]),
        (["crds", "--help"], ["--output-dir", "examples:", "kubectl explain"]),
    ],
)
def test_help_explains_with_examples(args: list[str], words: list[str]) -> None:
    proc = _run(*args)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: checkout-operator")
    for word in words:
        assert word in proc.stdout


def test_kubectl_plugin_help() -> None:
    proc = subprocess.run(
        [str(BIN / "kubectl-checkout"), "render", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: kubectl checkout render")
    assert "examples:" in proc.stdout


def test_a_bare_yaml_on_key_gets_an_explanation(tmp_path: Path) -> None:
    route = (helpers.EXAMPLES / "psproutes" / "in-upi.yaml").read_text()
    broken = tmp_path / "route.yaml"
    broken.write_text(route.replace("{failure: hard_decline", "{on: hard_decline"))
    proc = _run("render", "-f", str(broken))
    assert proc.returncode == 2
    assert "spec.retry[0]: a key is not a string" in proc.stderr
    assert "spec.retry[0].failure: required field is missing" in proc.stderr
