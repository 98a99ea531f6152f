"""The local stack's PostgreSQL keeps every acknowledged commit when its process is SIGKILLed,
as the GameDay's kill-region does: the promise "no lost order" rests on it. (With
``synchronous_commit=off`` a commit returns before its WAL is written, and the kill loses the
last ones while the outbox relay may already have published them to Kafka.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg
import pytest

from checkout_stack.components.postgres import Postgres

pytestmark = pytest.mark.stack

COMMITS = 300


async def test_a_sigkill_right_after_commit_loses_no_committed_row(tmp_path: Path) -> None:
    pg = Postgres(tmp_path / "pg").start()
    try:
        dsn = pg.create_database("crash")
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        for i in range(COMMITS):  # one transaction each, as the services acknowledge orders
            await conn.execute("INSERT INTO orders VALUES ($1)", i)
        # the last commit has returned: kill the server at once, as kill-region does
        for proc in pg.procs:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            if proc.popen is not None:
                proc.popen.wait(10)
        pg.procs.clear()
        conn.terminate()

        pg.start()  # same folder and port: crash recovery replays the WAL
        conn = await asyncpg.connect(dsn)
        try:
            count = await conn.fetchval("SELECT count(*) FROM orders")
            last = await conn.fetchval("SELECT max(id) FROM orders")
        finally:
            await conn.close()
        assert (count, last) == (COMMITS, COMMITS - 1)
    finally:
        pg.stop()
