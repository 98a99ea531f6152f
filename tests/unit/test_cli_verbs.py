"""`kubectl checkout` request verbs and report: help, usage errors and exit codes without a
cluster (the cluster paths are in tests/argocd/test_argocd_actions_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkout_operator.cli import kubectl_plugin


@pytest.mark.parametrize(
    "verb", ["switchover", "drain", "return-home", "pause", "resume", "report"]
)
def test_help_examples_say_kubectl_checkout(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        kubectl_plugin.main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"kubectl checkout {verb}" in out
    assert "checkout-operator " not in out
    assert "exit codes:" in out


def test_switchover_needs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        kubectl_plugin.main(["switchover", "eu-a", "-n", "x"])
    assert exc.value.code == 2
    assert "--to" in capsys.readouterr().err


def test_namespace_and_all_namespaces_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        kubectl_plugin.main(["pause", "eu-a", "-n", "x", "-A"])
    assert exc.value.code == 2


def test_an_unreachable_cluster_exits_1_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: ns}}]\n"
    )
    code = kubectl_plugin.main(["pause", "eu-a", "--kubeconfig", str(kubeconfig), "--yes"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert err.startswith("checkout-operator: ")


def test_a_missing_kubeconfig_context_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
    code = kubectl_plugin.main(
        ["report", "--kubeconfig", str(kubeconfig), "--context", "nope", "-A"]
    )
    assert code == 1
    assert "nope" in capsys.readouterr().err
