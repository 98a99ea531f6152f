"""`checkout-operator run` fails early, with a message and no traceback, on bad input."""

from __future__ import annotations

import json
import pathlib

import pytest

from checkout_operator.cli import main as cli_main


def kubeconfig(tmp_path: pathlib.Path, namespace: str | None = None) -> str:
    ctx: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    path = tmp_path / "kc"
    path.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "secret-token-value"}}],
                "contexts": [{"name": "x", "context": ctx}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--namespace", "--all-namespaces", "--metrics-port", "--kubeconfig"):
        assert flag in out


def test_missing_kubeconfig_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["run", "--kubeconfig", "/nonexistent/kc", "-n", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("checkout-operator: cannot read the kubeconfig /nonexistent/kc")
    assert "Traceback" not in err


def test_no_namespace_to_watch_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.main(["run", "--kubeconfig", kubeconfig(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pass --namespace NS or --all-namespaces" in err
    assert "secret-token-value" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port: 70000 is not a port"),
        (["--health-port", "-1"], "--health-port: -1 is not a port"),
        (["--drift-interval", "0"], "--drift-interval: must be > 0"),
        (
            ["--leader-elect", "--lease-duration", "3", "--lease-retry", "2"],
            "--lease-duration must exceed --lease-retry + 1 s",
        ),
        (["--leader-elect", "--lease-retry", "0"], "--lease-retry must be > 0"),
    ],
)
def test_bad_flags_exit_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = cli_main.main(["run", "--kubeconfig", kubeconfig(tmp_path, "ns"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_namespace_and_all_namespaces_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["run", "-n", "a", "--all-namespaces"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
