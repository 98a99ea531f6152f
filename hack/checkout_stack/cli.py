"""`hack/stack up|down|status|env|build`: the local stack by hand."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from checkout_stack import build as build_mod
from checkout_stack import paths
from checkout_stack.errors import StackError
from checkout_stack.proc import group_alive, group_rss_bytes, kill_group
from checkout_stack.stack import COMPONENTS, DEFAULT_REGIONS, MANAGEMENT, Stack, read_state


def _exports(env: dict[str, str]) -> str:
    lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
    return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    state_path = paths.state_file()
    if read_state(state_path) is not None:
        print(
            f"stack: a stack is already up (state in {state_path}); run `hack/stack down` first",
            file=sys.stderr,
        )
        return 1
    components = [c.strip() for c in args.components.split(",") if c.strip()]
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        print(
            f"stack: unknown component(s) {', '.join(unknown)}; "
            f"choose from {', '.join(COMPONENTS)}",
            file=sys.stderr,
        )
        return 2
    regions = [r.strip() for r in args.regions.split(",") if r.strip()][: args.num_regions]
    planes = [MANAGEMENT] + [f"region-{r}" for r in regions] * bool(args.region_clusters)
    run_dir = None
    if args.dir:
        run_dir = Path(args.dir).resolve()
        if run_dir.exists() and any(run_dir.iterdir()):
            print(f"stack: --dir {run_dir} is not empty", file=sys.stderr)
            return 2
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dir.chmod(0o755)
    stack = Stack(run_dir)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = stack.up(components, regions, planes)
        stack.write_state(state_path)
    except KeyboardInterrupt:
        print("stack: interrupted, stopping what was started", file=sys.stderr)
        stack.stop()
        stack.remove()
        return 130
    except StackError as exc:
        stack.stop()
        print(f"stack: up failed\n{exc.render()}", file=sys.stderr)
        print(f"(logs kept in {stack.run_dir})", file=sys.stderr)
        return 1
    for name, seconds in sorted(report.seconds.items()):
        print(f"# {name}: up in {seconds:.1f} s", file=sys.stderr)
    print(
        f"# stack up in {report.total:.1f} s, RSS {_mib(stack.rss_bytes())}, "
        f'folder {stack.run_dir}; `eval "$(hack/stack env)"` to use it, '
        "`hack/stack down` to stop it",
        file=sys.stderr,
    )
    print(_exports(stack.env()))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_path = paths.state_file()
    state = read_state(state_path)
    if state is None:
        print("stack: no stack is up (nothing to stop)", file=sys.stderr)
        return 0
    t0 = time.monotonic()

    def stop(proc: dict[str, str]) -> None:
        pgid = int(proc["pgid"])
        if _same_process(pgid, proc["argv0"]):
            t = time.monotonic()
            kill_group(pgid, timeout=20)
            print(
                f"# {proc['component']}: stopped in {time.monotonic() - t:.1f} s", file=sys.stderr
            )

    def tier(proc: dict[str, str]) -> int:
        # a control plane stops from the top: etcd after the apiserver after the rest
        name = proc["component"]
        return 2 if name.endswith("/etcd") else 1 if name.endswith("/kube-apiserver") else 0

    for level in (0, 1, 2):
        procs = [p for p in state["processes"] if tier(p) == level]
        with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
            list(pool.map(stop, procs))
    if not args.keep:
        for folder in [state["run_dir"], *state.get("external_dirs", [])]:
            shutil.rmtree(folder, ignore_errors=True)
    state_path.unlink()
    print(f"stack: down in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


def _same_process(pgid: int, argv0: str) -> bool:
    """Guard against a recycled pid: the group leader must still run the binary we started."""
    try:
        exe = os.readlink(f"/proc/{pgid}/exe")
    except FileNotFoundError:
        return False
    except OSError:
        return group_alive(pgid)
    return exe.removesuffix(" (deleted)") == os.path.realpath(argv0)


def cmd_status(args: argparse.Namespace) -> int:
    state = read_state(paths.state_file())
    if state is None:
        print("stack: down")
        return 1
    total = 0
    down = 0
    print(f"stack: up since {state['started_at']}, folder {state['run_dir']}")
    for proc in state["processes"]:
        pgid = int(proc["pgid"])
        alive = group_alive(pgid) and _same_process(pgid, proc["argv0"])
        rss = group_rss_bytes(pgid) if alive else 0
        total += rss
        down += not alive
        print(
            f"  {proc['component']:<45} pgid {pgid:<8} {'up' if alive else 'DOWN':<5} {_mib(rss)}"
        )
    print(f"  total RSS {_mib(total)}")
    return 1 if down else 0


def cmd_env(args: argparse.Namespace) -> int:
    state = read_state(paths.state_file())
    if state is None:
        print("stack: no stack is up; run `hack/stack up` first", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(state["env"], indent=2))
    else:
        print(_exports(state["env"]))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    if args.check:
        return _check_built()
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    if only:
        unknown = set(only) - set(build_mod.STEPS)
        if unknown:
            print(f"stack: unknown build step(s) {sorted(unknown)}", file=sys.stderr)
            return 2
    t0 = time.monotonic()
    try:
        build_mod.build(only)
    except StackError as exc:
        print(f"stack: build failed\n{exc.render()}", file=sys.stderr)
        return 1
    print(f"build: done in {time.monotonic() - t0:.1f} s (cache {paths.cache_dir()})")
    return 0


def _check_built() -> int:
    """`hack/stack build --check`: is everything built? Builds nothing."""
    if build_mod.report_missing(
        "build", "run `hack/stack build` (or `bash hack/setup.sh` on a fresh machine)"
    ):
        return 1
    print(f"build: everything is built (cache {paths.cache_dir()} ({paths.cache_origin()}))")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hack/stack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack in the background and print its env")
    up.add_argument(
        "--components",
        default=",".join(COMPONENTS),
        help=f"comma-separated subset of {','.join(COMPONENTS)} (default: all)",
    )
    up.add_argument(
        "--regions",
        default=",".join(DEFAULT_REGIONS),
        help="comma-separated region names (one Kafka cluster each)",
    )
    up.add_argument(
        "--num-regions", type=int, default=len(DEFAULT_REGIONS), help="use the first N regions"
    )
    up.add_argument(
        "--region-clusters",
        action="store_true",
        help="also start one control plane per region (besides the management one)",
    )
    up.add_argument("--dir", help="run folder (default: a new temporary folder)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the stack started by `up`")
    down.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    down.set_defaults(func=cmd_down)
    sub.add_parser("status", help="which processes run, and their memory").set_defaults(
        func=cmd_status
    )
    env = sub.add_parser("env", help="print shell exports for the running stack")
    env.add_argument("--json", action="store_true")
    env.set_defaults(func=cmd_env)
    build = sub.add_parser("build", help="fetch/build every binary into the cache")
    build.add_argument("--only", help=f"comma-separated subset of {','.join(build_mod.STEPS)}")
    build.add_argument(
        "--check",
        action="store_true",
        help="build nothing; exit 1 and list what is missing from the cache, 0 if all is built",
    )
    build.set_defaults(func=cmd_build)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "up" and args.num_regions < 0:
        print("stack: --num-regions must be >= 0", file=sys.stderr)
        return 2
    os.umask(0o022)
    result: int = args.func(args)
    return result
