"""PostgreSQL from the Debian packages: initdb into the run folder, TCP on loopback only."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack import paths
from checkout_stack.errors import MissingTool, StackError
from checkout_stack.proc import Proc, free_port, run, tcp_open

COMPONENT = "postgres"
SUPERUSER = "postgres"
FIX_INSTALL = "apt-get install -y postgresql (or run `bash hack/setup.sh`)"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _run_as() -> str | None:
    """initdb and postgres refuse root: run them as the `postgres` system user then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise MissingTool(
            COMPONENT, "system user `postgres` (needed to run PostgreSQL as root)", FIX_INSTALL
        ) from exc
    return "postgres"


def _reachable_by(user: str, folder: Path) -> bool:
    done = subprocess.run(
        ["test", "-w", str(folder), "-a", "-x", str(folder)], user=user, check=False
    )
    return done.returncode == 0


@dataclass
class Postgres:
    dir: Path
    port: int = 0
    procs: list[Proc] = field(default_factory=list)
    external: Path | None = None

    @property
    def dsn(self) -> str:
        """Superuser DSN of the running server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        bindir = paths.postgres_bin_dir()
        for tool in ("initdb", "postgres", "psql"):
            if not (bindir / tool).exists():
                raise MissingTool(COMPONENT, str(bindir / tool), FIX_INSTALL)
        user = _run_as()
        self.dir.mkdir(parents=True, exist_ok=True)
        data = self.dir / "data"
        log = self.dir / "postgres.log"
        if user is not None:
            shutil.chown(self.dir, user=user)
            if self.external is not None:  # a restart (after a crash): the same data
                data = self.external / "data"
                log = self.external / "postgres.log"
            elif not _reachable_by(user, self.dir):
                # e.g. under pytest's 0700 tmp folders: keep the data where `postgres` can reach
                self.external = Path(tempfile.mkdtemp(prefix="checkout-stack-pg-"))
                shutil.chown(self.external, user=user)
                data = self.external / "data"
                log = self.external / "postgres.log"
                (self.dir / "data").symlink_to(data)
        if not data.exists():
            run(
                COMPONENT,
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                user=user,
                fix="read the initdb message above",
                log=log,
            )
        self.port = self.port or free_port()
        proc = Proc(
            COMPONENT,
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                # Fast, and still no acknowledged commit lost when the server process is
                # SIGKILLed (the GameDay's kill-region): a commit returns once its WAL is
                # written to the kernel, which keeps it across a process kill. Only a crash of
                # the machine itself could lose it (fsync off). synchronous_commit must stay on:
                # off, a commit returns before its WAL is written and a SIGKILL within ~0.6 s
                # loses it, while the outbox relay may already have published the order
                # (tests/stack/test_postgres_crash.py).
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=on",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ],
            log=log,
            user=user,
            fix="check the log; a stale data folder can be removed with `hack/stack down`",
        ).start()
        self.procs.append(proc)
        proc.wait_ready(self._accepts_queries, timeout=60, what="accepting connections")
        return self

    def _accepts_queries(self) -> bool:
        if not tcp_open(self.port):
            return False
        try:
            self.psql("SELECT 1")
        except StackError:
            return False
        return True

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = run(
            COMPONENT,
            [
                str(paths.postgres_bin_dir() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn_for(database),
                "-c",
                sql,
            ],
            fix="check the SQL and the server log",
            timeout=60,
        )
        return done.stdout

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its DSN."""
        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def stop(self) -> None:
        for proc in self.procs:
            # SIGTERM is postgres' "smart" shutdown which waits for clients: use fast (SIGINT)
            if proc.alive():
                os.kill(proc.pid, 2)
            proc.stop()
        self.procs.clear()
        if self.external is not None:
            shutil.rmtree(self.external, ignore_errors=True)
            self.external = None
