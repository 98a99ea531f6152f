"""`python -m checkout_demo [demo|gameday] ...` (`make demo`, `make gameday SCENARIO=...`).

Exit codes: 0 every promise held (and the expected failover happened), 1 a promise broke,
2 the demo could not run (a one-line message says why; the traceback goes to the work folder's
demo.log, and that folder is kept) or could not verify a promise (the report says "could not
verify ... because ..."), 3 promises held but the scenario's failover did not happen (the
operator published no new writer).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from checkout_demo import scenarios
from checkout_stack.errors import StackError

EPILOG = """\
examples:
  python -m checkout_demo demo                     # the whole show, default GameDay: kill-region
  python -m checkout_demo gameday --scenario hang-probes --region us-east-1
  python -m checkout_demo gameday --scenario slow-psp --before 10 --during 20 --after 10

scenarios: kill-region, hang-probes, slow-psp, partition-kafka, none
exit codes: 0 promises held, 1 a promise broke, 2 could not run or verify, 3 no failover
"""
LOG = "demo.log"
"""The work folder's log: the libraries' warnings, and the traceback of an error."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="checkout-demo",
        description="Three checkout regions on this machine, checkouts flowing, a GameDay, "
        "and a report on the promises (text, JSON, HTML with a timeline).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mode", nargs="?", choices=("demo", "gameday"), default="demo")
    p.add_argument("--scenario", default="kill-region", choices=sorted(scenarios.SCENARIOS))
    p.add_argument("--region", default="us-east-1", help="the region the GameDay breaks")
    p.add_argument(
        "--rate", type=float, default=3.0,
        help="checkouts per second, all markets together (open loop; see the README for why 3)",
    )  # fmt: skip
    p.add_argument(
        "--warmup", type=float, default=20.0,
        help="seconds of the same load before the clock starts (not counted; 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--before", type=float, default=60.0,
        help="seconds of load before the fault (the steady state the p95 promise is judged on)",
    )  # fmt: skip
    p.add_argument("--during", type=float, default=60.0, help="seconds the fault lasts")
    p.add_argument("--after", type=float, default=30.0, help="seconds of load after recovery")
    p.add_argument(
        "--failover-timeout", type=float, default=45.0,
        help="how long to wait for the operator to show a new writer",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("demo-report"), help="report folder")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    p.add_argument(
        "--check",
        action="store_true",
        help="only check that everything the demo runs is built (by hack/setup.sh), then exit",
    )
    return p


def preflight() -> int:
    """Fail fast, before starting anything, when the stack's programs are not in the cache."""
    from checkout_stack import build

    absent = build.report_missing(
        "checkout-demo",
        "run `bash hack/setup.sh` (or `hack/stack build`), which builds into that cache",
    )
    return 2 if absent else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Every error ends here as a message and exit code 2, never a traceback on the terminal:
    the traceback goes to the work folder's ``demo.log`` (the folder is then kept)."""
    args = parser().parse_args(argv)
    # SIGTERM (a CI job cancelled, `kill`) stops as Ctrl-C does: everything started is stopped.
    # Python's default for SIGTERM is to die at once, leaving the whole stack running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir: list[Path] = []  # the run's work folder, once there is one
    try:
        return _main(args, workdir)
    except KeyboardInterrupt:
        print("checkout-demo: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    except StackError as exc:
        log = error_log(exc, workdir)
        print(f"checkout-demo: {exc.render()}\n(traceback in {log})", file=sys.stderr)
        return 2
    except Exception as exc:
        log = error_log(exc, workdir)
        print(f"checkout-demo: failed: {one_line(exc)} (traceback in {log})", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_log(exc: BaseException, workdir: Sequence[Path]) -> Path:
    """Write ``exc``'s traceback to the run's work folder (a new one if the run had none yet)."""
    folder = workdir[0] if workdir else Path(tempfile.mkdtemp(prefix="checkout-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / LOG
    with log.open("a") as f:
        f.write("".join(traceback.format_exception(exc)))
    return log


def _main(args: argparse.Namespace, workdir: list[Path]) -> int:
    from checkout_demo.demo import Options, run

    for name in ("rate", "before", "during", "after", "failover_timeout"):
        if getattr(args, name) <= 0:
            print(f"checkout-demo: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    if args.warmup < 0:
        print("checkout-demo: --warmup must be >= 0", file=sys.stderr)
        return 2
    if preflight():
        return 2
    if args.check:
        from checkout_stack import paths

        print(f"checkout-demo: everything is built (cache {paths.cache_dir()})")
        return 0
    from checkout_demo import cluster

    fleet = cluster.load_fleet()
    if args.region not in fleet.names:
        print(
            f"checkout-demo: --region {args.region}: not in the demo fleet "
            f"({', '.join(fleet.names)})",
            file=sys.stderr,
        )
        return 2
    workdir.append(cluster.new_workdir())
    # the libraries' warnings (a Kafka client retrying a broker that is coming back, say) go
    # to the work folder's log, not between the demo's lines on the terminal
    logging.basicConfig(
        filename=workdir[0] / LOG,
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    opts = Options(
        scenario=args.scenario,
        region=args.region,
        rate=args.rate,
        warmup=args.warmup,
        before=args.before,
        during=args.during,
        after=args.after,
        failover_timeout=min(args.failover_timeout, args.during),
        out=args.out,
        keep=args.keep,
        workdir=workdir[0],
    )
    return run(opts)
