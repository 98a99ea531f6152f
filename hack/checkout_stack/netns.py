"""Network namespaces the stack creates itself (a real node's), and sockets opened inside one.

A real node runs in a network namespace of its own (``ip netns add``): its bridge, its pods'
addresses, its kube-proxy's iptables rules and its conntrack table are invisible to the machine
and to any other engineer's node, so several test runs can each have one at once and nothing
outside the machine ever sees a pod address. :func:`entered` moves the calling thread into a
namespace: a socket made there stays there after the thread leaves (how the forwarder and the
tests reach in).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from checkout_stack.errors import StackError

COMPONENT: Final = "netns"
CLONE_NEWNET: Final = 0x40000000
NETNS_DIR: Final = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(path: Path) -> Iterator[None]:
    """The calling thread inside the network namespace at ``path``, back on the way out."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def wrap(path: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside the namespace at ``path``."""
    return ["nsenter", f"--net={path}", "--", *argv]


def run(path: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(wrap(path, argv), capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise StackError(
            COMPONENT,
            f"`{' '.join(argv)}` in {path} exited with {done.returncode}: {done.stderr.strip()}",
            fix="the node needs root (CAP_NET_ADMIN) and iproute2",
        )
    return done


@dataclass
class Netns:
    """A named network namespace (``/run/netns/<name>``), removed by :meth:`delete`."""

    name: str

    @classmethod
    def create(cls, prefix: str = "checkout-node") -> Netns:
        ns = cls(f"{prefix}-{secrets.token_hex(4)}")
        done = subprocess.run(
            ["ip", "netns", "add", ns.name], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise StackError(
                COMPONENT,
                f"`ip netns add {ns.name}` exited with {done.returncode}: {done.stderr.strip()}",
                fix="run as root (CAP_SYS_ADMIN, CAP_NET_ADMIN) with iproute2 installed",
            )
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(self.path, *argv, check=check)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return wrap(self.path, argv)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)
