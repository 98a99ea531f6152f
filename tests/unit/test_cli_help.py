"""The entry points explain themselves and fail without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from checkout_operator.cli import main as cli_main


@pytest.mark.parametrize("prog", ["checkout-operator", "kubectl checkout"])
def test_help_names_the_program_and_exits_zero(
    prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["--help"], prog=prog)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: {prog}" in out
    assert "CheckoutRegion" in out


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_console_scripts_are_installed() -> None:
    bindir = sys.executable.rsplit("/", 1)[0]
    for script in ("checkout-operator", "kubectl-checkout", "checkout-services"):
        proc = subprocess.run([f"{bindir}/{script}", "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "usage:" in proc.stdout
