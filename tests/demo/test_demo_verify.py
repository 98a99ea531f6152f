"""The promise checks when a system of record does not answer (no server needed).

A closed loopback port stands in for a region whose Kafka / PostgreSQL is still coming back:
every check retries until its (here short) deadline, then says "could not verify ... because
...": the report lists it and the exit code is 2, never a traceback and never a broken promise.
The CLI's last resort turns any other error into one line and a traceback in the work folder.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from checkout_demo import cli, report, verify
from checkout_demo.load import Checkout, LoadGen, Router
from checkout_tasks import Backoff


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_kafka_that_never_answers_is_unverified_within_the_deadline() -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    began = time.monotonic()
    with pytest.raises(verify.Unverified) as caught:
        await verify.placed_events(
            bootstrap, what="us-east-1's ORDER_PLACED events", deadline_s=1.5
        )
    took = time.monotonic() - began
    # it retried, and gave up in time (as soon as the next backoff would pass the deadline, so
    # possibly a pause before it: no lower bound on the time, which jitter makes vary)
    assert took < 10, took
    message = str(caught.value)
    assert message.startswith("could not verify us-east-1's ORDER_PLACED events because ")
    assert "KafkaConnectionError" in message, message
    tries = re.search(r"\((\d+) attempt\(s\) in 1\.5 s\)", message)
    assert tries is not None, message
    assert int(tries.group(1)) >= 2, message


async def test_database_that_never_answers_is_unverified() -> None:
    dsn = f"postgresql://demo@127.0.0.1:{closed_port()}/orders"
    with pytest.raises(verify.Unverified, match=r"could not verify eu-west-1's orders .* because"):
        await verify.orders("eu-west-1", dsn, deadline_s=1.0)


async def test_retrying_retries_transient_errors_and_not_others() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("broker restarting")
        return "read"

    fast = Backoff(initial=0.01, maximum=0.02)
    got = await verify.retrying("x", flaky, transient=(OSError,), deadline_s=5, backoff=fast)
    assert (got, len(calls)) == ("read", 3)

    async def bug() -> str:
        raise KeyError("not transient")

    with pytest.raises(KeyError):
        await verify.retrying("x", bug, transient=(OSError,), deadline_s=5, backoff=fast)

    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(verify.Unverified, match=r"because it gave no answer within 0\.3 s"):
        await verify.retrying("y", hangs, transient=(OSError,), deadline_s=0.3, backoff=fast)


def acked_run() -> LoadGen:
    load = LoadGen(Router(lambda: {}, lambda: {}), rate=1.0)
    for i, region in enumerate(["us-east-1", "eu-west-1", "eu-west-1"]):
        c = Checkout(f"c{i}", "US", float(i), [])
        c.outcome, c.region, c.latency_ms, c.acked_at = "acknowledged", region, 80.0, i + 0.1
        load.checkouts.append(c)
    return load


async def test_check_reports_what_it_could_not_read_and_exits_2() -> None:
    """The ledger answers, us-east-1 (just restarted) does not: nothing counts as missing."""
    port = closed_port()
    load = acked_run()

    async def ledger() -> dict[str, Any]:
        return {"totals": {"payments": 3}, "checkouts": {"c0": {"charged": 1, "captures": 1}}}

    verdict = await verify.check(
        ledger,
        [verify.Region("us-east-1", f"postgresql://demo@127.0.0.1:{port}/x", f"127.0.0.1:{port}")],
        [(c.checkout_id, c.region) for c in load.checkouts],
        {"tee": 10},
        deadline_s=1.0,
    )
    assert len(verdict.unverified) == 2, verdict.unverified
    assert any("us-east-1's stock" in u for u in verdict.unverified)
    assert any("us-east-1's ORDER_PLACED events" in u for u in verdict.unverified)
    assert all(u.startswith("could not verify ") and " because " in u for u in verdict.unverified)
    assert verdict.missing == 0
    assert sorted(verdict.unverified_orders) == ["c0", "c1", "c2"]

    demo = SimpleNamespace(
        names=["us-east-1"], marks={"fault": 1.0}, writer_events=[], timings={}, cpu={}, notes=[]
    )
    s = report.build(
        demo=demo, load=load, verdict=verdict, result={"scenario": "kill-region"},
        startup_seconds=1, total_seconds=2,
    )  # fmt: skip
    assert s["exit_code"] == 2
    assert s["unverified"] == verdict.unverified
    text = report.text(s)
    assert "COULD NOT VERIFY: could not verify us-east-1's ORDER_PLACED events" in text
    assert "NOT VERIFIED" in text
    assert "HELD" not in text


def test_a_broken_promise_outranks_what_could_not_be_read() -> None:
    load = acked_run()
    verdict = verify.Verdict(unverified=["could not verify the PSP ledger because OSError"])
    db = {"us-east-1": {"c0": "placed"}, "eu-west-1": {"c1": "placed"}}  # c2 lost
    verify.missing_orders(
        [(c.checkout_id, c.region) for c in load.checkouts],
        db,
        {"us-east-1": {"c0"}, "eu-west-1": {"c1"}},
        verdict,
    )
    assert verdict.missing_in_db == ["c2"]
    demo = SimpleNamespace(
        names=["us-east-1"], marks={}, writer_events=[], timings={}, cpu={}, notes=[]
    )
    s = report.build(
        demo=demo, load=load, verdict=verdict, result={}, startup_seconds=1, total_seconds=2
    )
    assert s["exit_code"] == 1


def test_missing_orders_only_counts_what_was_read() -> None:
    acked = [("a", "us-east-1"), ("b", "eu-west-1"), ("c", "eu-west-1")]
    verdict = verify.Verdict()
    verify.missing_orders(
        acked,
        {"eu-west-1": {"b": "placed", "c": "placed"}},
        {"us-east-1": set(), "eu-west-1": {"b"}},
        verdict,
        unread_db={"us-east-1"},
    )
    # a: its region's database could not be read; c: its event is really missing
    assert verdict.unverified_orders == ["a"]
    assert verdict.missing_in_kafka == ["c"]
    assert verdict.missing_in_db == []


def test_cli_turns_an_unexpected_error_into_one_line_and_a_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: Any, workdir: list[Path]) -> int:
        workdir.append(tmp_path / "work")
        raise RuntimeError("metadata gone\nsecond line")

    monkeypatch.setattr(cli, "_main", boom)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    log = tmp_path / "work" / "demo.log"
    assert err.strip().splitlines() == [
        f"checkout-demo: failed: RuntimeError: metadata gone second line (traceback in {log})"
    ]
    assert "Traceback" in log.read_text()
    assert "metadata gone" in log.read_text()


def test_cli_error_before_the_run_has_a_folder_still_logs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: Any, workdir: list[Path]) -> int:
        raise ValueError("bad fleet file")

    monkeypatch.setattr(cli, "_main", boom)
    assert cli.main(["gameday", "--scenario", "none"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("checkout-demo: failed: ValueError: bad fleet file (traceback in ")
    log = Path(err.rsplit("(traceback in ", 1)[1].rstrip().rstrip(")"))
    try:
        assert log.name == "demo.log"
        assert "ValueError" in log.read_text()
    finally:
        log.unlink()
        log.parent.rmdir()
