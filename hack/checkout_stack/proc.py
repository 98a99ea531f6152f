"""Processes of the stack: each in its own process group, logged to a file, killed as a group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack.errors import StackError

_ports_lock = threading.Lock()
_ports_given: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 not handed out before by this process."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def run_logged(
    component: str,
    argv: Sequence[str],
    log: Path,
    *,
    rerun: str,
    what: str = "",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    append: bool = False,
) -> None:
    """Run ``argv`` to its end, its output in ``log`` after a ``$ argv`` line (``append``: after
    what the log already holds), in the environment plus ``env``. A non-zero exit raises a
    StackError naming the command (after ``what``), with the log's tail and the fix: rerun
    ``rerun`` once the cause is fixed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a" if append else "w") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        failed = f"`{' '.join(argv)}` exited with {done.returncode}"
        raise StackError(
            component,
            f"{what}: {failed}" if what else failed,
            fix=f"read the log above; rerun `{rerun}` after fixing the cause",
            log=log,
        )


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_contains(path: Path, text: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return text in path.read_text(errors="replace")
        except FileNotFoundError:
            return False

    return probe


def https_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    ctx = context or ssl._create_unverified_context()  # noqa: S323 - loopback health probe
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:  # noqa: S310
            return int(resp.status) == 200
    except (OSError, ValueError):
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
            return int(resp.status) == 200
    except (OSError, ValueError):
        return False


@dataclass
class Proc:
    """One server process, started in its own session (process group)."""

    component: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    fix: str = "see the log above"
    nice: int = 0
    """Start under ``nice -n``: every thread inherits it (a JVM's too), as a container with a
    smaller CPU request gets a smaller cgroup weight from a real kubelet."""
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.component} not started")
        return self.popen.pid

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with self.log.open("ab") as out:
            try:
                self.popen = subprocess.Popen(
                    ["nice", "-n", str(self.nice), *self.argv] if self.nice else list(self.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                    user=self.user,
                )
            except OSError as exc:
                raise StackError(
                    self.component, f"cannot run {self.argv[0]}: {exc}", fix=self.fix
                ) from exc
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen is not None and self.popen.poll() is not None:
                raise StackError(
                    self.component,
                    f"exited with code {self.popen.returncode} before it was {what}",
                    fix=self.fix,
                    log=self.log,
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    self.component,
                    f"not {what} after {timeout:.0f} s",
                    fix=self.fix,
                    log=self.log,
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        kill_group(self.popen.pid, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader still counts as a member: look for a live member
    return any(_state(pid) not in ("Z", "X", "") for pid in group_members(pgid))


@dataclass(frozen=True)
class Stat:
    """What ``/proc/<pid>/stat`` says of a process (Linux)."""

    state: str
    """``R``, ``S``, ... ``Z`` for a zombie waiting for its reaper."""
    ppid: int
    pgid: int
    sid: int

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def stat_of(pid: int) -> Stat | None:
    """The process's stat, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = raw.rsplit(")", 1)[1].split()
    return Stat(fields[0], int(fields[1]), int(fields[2]), int(fields[3]))


def processes() -> dict[int, Stat]:
    """Every process there is, by pid."""
    out: dict[int, Stat] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := stat_of(int(entry.name))) is not None:
            out[int(entry.name)] = stat
    return out


def _state(pid: int) -> str:
    stat = stat_of(pid)
    return "" if stat is None else stat.state


def group_members(pgid: int) -> list[int]:
    return [pid for pid, stat in processes().items() if stat.pgid == pgid]


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_rss_bytes(pgid: int) -> int:
    total = 0
    for pid in group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run(
    component: str,
    argv: Sequence[str],
    *,
    fix: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    timeout: float = 120,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a setup command to completion; on failure raise a StackError with its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            user=user,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(component, f"{argv[0]} failed: {exc}", fix=fix) from exc
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise StackError(
            component,
            f"`{' '.join(argv)}` exited with {done.returncode}:\n{output}",
            fix=fix,
        )
    return done
