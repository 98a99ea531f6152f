"""Where the machine's CPU goes during a demo run: CPU seconds per part of the stack.

Every process the demo starts runs in its own session (``start_new_session``), so a process
belongs to the part named by its session leader: a region's service (the kubelet stand-in's
pods), a region's PostgreSQL / Redis / Kafka / Temporal / MirrorMaker 2, the management control
plane, the operator, the PSP simulator, or the demo process itself (load generator, kubelet
stand-in, edges). Read from ``/proc`` (Linux): user + system time of each live process.
Latency on a loaded machine is not comparable from run to run; CPU per checkout is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: str) -> tuple[int, int, float] | None:
    """(parent pid, session id, CPU seconds) of one process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / TICKS


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-controller-manager", "kwok")


def part_of(cmdline: str, regions: list[str]) -> str | None:
    """The part a session leader's command line belongs to (None: none the demo knows). The
    programs come from the stack's cache folder (``~/.cache/checkout-operator/...``), so the
    program's own name decides, not a substring of its path."""
    region = next(
        (r for r in regions if f"/regions/{r}/" in cmdline or f"/pods/{r}/" in cmdline), ""
    )
    words = cmdline.split()
    names = [w.rsplit("/", 1)[-1] for w in words[:2]]
    part: str | None = None
    if any(n in CONTROL_PLANE for n in names):
        part = "control plane"
    elif "connect-mirror-maker" in cmdline or "MirrorMaker" in cmdline:
        part = "mirrormaker2"
    elif "kafka.Kafka" in words:
        part = "kafka"
    elif "temporal" in names:
        part = "temporal"
    elif any(n.startswith("postgres") for n in names):
        part = "postgres"
    elif any(n.startswith("redis") for n in names):
        part = "redis"
    elif "checkout-operator" in names and "run" in words:
        part = "operator"
    if part is None:
        return None
    return f"{part}[{region}]" if region else part


def snapshot(workdir: Path, regions: list[str], known: Mapping[int, str]) -> dict[str, float]:
    """CPU seconds so far per part. ``known``: pid -> part for the processes whose command line
    does not name the work folder (the pods ``service[region]``, Redis, the PSP simulator).
    A process counts for the part of its session leader, else of its parent (PostgreSQL's
    backends each start a session of their own; their titles name no folder)."""
    procs: dict[int, tuple[int, int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            procs[int(entry)] = stat
    me = os.getpid()
    where = str(workdir)
    labels: dict[int, str | None] = {me: "demo process (load, kubelet stand-in, edges)"}
    labels.update(known)

    def leader_part(pid: int) -> str | None:
        if pid not in labels:
            line = _cmdline(pid)
            labels[pid] = (part_of(line, regions) or "other") if where in line else None
        return labels[pid]

    def part(pid: int) -> str | None:
        for _ in range(8):  # up the parent chain a few steps at most
            if pid <= 1 or pid not in procs:
                return None
            ppid, sid, _cpu = procs[pid]
            found = labels.get(pid) or leader_part(sid)
            if found is not None:
                return found
            pid = ppid
        return None

    out: dict[str, float] = {}
    for pid, (_ppid, _sid, seconds) in procs.items():
        name = part(pid)
        if name is not None:
            out[name] = out.get(name, 0.0) + seconds
    return out


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds spent between two snapshots per part (parts that died count 0)."""
    return {
        k: round(after[k] - before.get(k, 0.0), 2)
        for k in sorted(after, key=lambda k: -(after[k] - before.get(k, 0.0)))
        if after[k] - before.get(k, 0.0) > 0
    }
