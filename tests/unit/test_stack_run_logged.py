"""`checkout_stack.proc.run_logged`: the one way the stack's build steps and image builds run a
command: its output in a log, a failure named with the log's tail and what to rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkout_stack.errors import StackError
from checkout_stack.proc import run_logged


def test_output_goes_to_the_log_after_the_command_line(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "build-x.log"
    script = 'echo "out $STEP"; echo err >&2'
    run_logged("x", ["sh", "-c", script], log, rerun="hack/stack build", env={"STEP": "one"})
    assert log.read_text() == f"$ sh -c {script}\nout one\nerr\n"
    run_logged("x", ["sh", "-c", "echo again"], log, rerun="make image", append=True, cwd=tmp_path)
    assert log.read_text().endswith("err\n$ sh -c echo again\nagain\n")
    run_logged("x", ["true"], log, rerun="hack/stack build")
    assert log.read_text() == "$ true\n"  # not appending: a fresh log


def test_a_failure_names_the_command_the_log_and_the_fix(tmp_path: Path) -> None:
    log = tmp_path / "images.log"
    with pytest.raises(StackError) as caught:
        run_logged(
            "images",
            ["sh", "-c", "echo broken mirror; exit 3"],
            log,
            what="base",
            rerun="make image",
        )
    err = caught.value
    assert err.component == "images"
    assert err.problem == "base: `sh -c echo broken mirror; exit 3` exited with 3"
    assert err.fix == "read the log above; rerun `make image` after fixing the cause"
    assert "broken mirror" in err.render()
