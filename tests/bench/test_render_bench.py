"""Benchmark: render a generated 100-region fleet with 200 PSPRoutes.

Prints wall time per stage (p50/p95 over a few rounds), the whole pipeline from YAML text to
YAML text, peak traced Python memory (tracemalloc) and the process's peak RSS. Goal on the
2-core dev machine: under 2 s and under 200 MiB. Asserts correctness only, never speed.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

import fleetgen
from checkout_operator.api import fleet, load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.render import region, stream

REGIONS = 100
ROUTES = 200
ROUNDS = 5


def _pipeline(text: str) -> tuple[str, dict[str, float]]:
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    items = [fleet.Located(f"doc{i}", load.parse(d)) for i, d in enumerate(docs)]
    t1 = time.perf_counter()
    assert fleet.validate(items) == []
    t2 = time.perf_counter()
    regions = [i.obj for i in items if isinstance(i.obj, CheckoutRegion)]
    routes = [i.obj for i in items if isinstance(i.obj, PSPRoute)]
    objects = region.render_fleet(regions, routes)
    t3 = time.perf_counter()
    out = stream.dump_all(objects)
    t4 = time.perf_counter()
    times.update(parse=t1 - t0, validate=t2 - t1, render=t3 - t2, emit=t4 - t3, total=t4 - t0)
    return out, times


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.mark.bench
def test_render_100_regions_200_routes() -> None:
    text = yaml.safe_dump_all(fleetgen.fleet_docs(REGIONS, ROUTES))
    runs = [_pipeline(text) for _ in range(ROUNDS)]
    outputs = {out for out, _ in runs}
    assert len(outputs) == 1, "render is not deterministic"
    output = outputs.pop()
    assert output.count("\n---\n") + 1 == output.count("apiVersion: ") - output.count(
        "  apiVersion: "
    )

    tracemalloc.start()
    _pipeline(text)
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    print(f"\nrender bench: {REGIONS} regions, {ROUTES} PSPRoutes, {ROUNDS} rounds")
    print(f"  objects: {output.count('---')}, output: {len(output) / 2**20:.1f} MiB of YAML")
    for stage in ("parse", "validate", "render", "emit", "total"):
        values = [times[stage] for _, times in runs]
        print(
            f"  {stage:<8} p50 {statistics.median(values) * 1000:8.1f} ms"
            f"   p95 {_pct(values, 0.95) * 1000:8.1f} ms   max {max(values) * 1000:8.1f} ms"
        )
    print(f"  peak traced Python memory (one run): {peak_traced / 2**20:.1f} MiB")
    print(f"  peak RSS of the test process (5 outputs kept): {peak_rss_kib / 1024:.1f} MiB")


@pytest.mark.bench
def test_cli_render_100_regions_200_routes(tmp_path: Path) -> None:
    """End to end as a user runs it: a fresh `checkout-operator render` process."""
    for index, doc in enumerate(fleetgen.fleet_docs(REGIONS, ROUTES)):
        (tmp_path / f"{index:04d}.yaml").write_text(yaml.safe_dump(doc))
    walls: list[float] = []
    rss_kib = 0
    # The child reports its own peak RSS: VmHWM of its address space. (ru_maxrss would not
    # do: Linux carries the forking parent's peak across exec.)
    child = (
        "import sys\n"
        "from checkout_operator.cli import main\n"
        "code = main.main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(status.split()[0], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", child, "render", "-f", str(tmp_path)],
            capture_output=True,
            text=True,
        )
        walls.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("---\n") == 4099
        rss_kib = max(rss_kib, int(proc.stderr.split()[-1]))
    print(f"\ncli render: {REGIONS} regions, {ROUTES} PSPRoutes in {REGIONS + ROUTES} files")
    print(
        f"  wall (process start to exit) p50 {statistics.median(walls) * 1000:.0f} ms"
        f"   max {max(walls) * 1000:.0f} ms"
    )
    print(f"  peak RSS of the render process: {rss_kib / 1024:.1f} MiB")
