"""The GameDay report: figures from a load run, and the HTML page in headless Chromium.

The load data is a run's worth of checkouts and attempts built with the load generator's own
records (no services needed); the page is opened in Debian's `chromium`, whose DOM must hold the
summary and whose screenshot must show the timeline plot's colours (the PNG decoded and drawn).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from checkout_demo import report, report_files
from checkout_demo.load import Attempt, Checkout, LoadGen, Router
from checkout_demo.verify import Verdict, double_charges, missing_orders

MARKS = {"fault": 20.0, "failover": 27.5, "recovery": 50.0, "end": 72.0}


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(
        "headless Chromium is missing: `apt-get install -y chromium` (or `bash hack/setup.sh`)"
    )


def a_run() -> LoadGen:
    """70 s at 4/s: fast before the fault, slow and failing during it, fast again after."""
    rng = random.Random(3)
    load = LoadGen(Router(lambda: {}, lambda: {}), rate=4.0)
    for i in range(280):
        t = i / 4.0
        c = Checkout(f"c{i}", rng.choice(["US", "NL", "DE", "IN", "BR"]), t, [])
        during = MARKS["fault"] <= t < MARKS["failover"]
        base = 400.0 if during else 60.0
        if during and i % 3 == 0:
            load.attempts.append(
                Attempt(c.checkout_id, c.market, "us-east-1", t, 5, 0, "ConnectError", "first")
            )
            c.outcome, c.reason = "failed", "ConnectError"
        else:
            lat = base + rng.random() * base
            c.outcome, c.latency_ms, c.acked_at = "acknowledged", lat, t + lat / 1000
            c.region = "eu-west-1" if t >= MARKS["failover"] else "us-east-1"
            load.attempts.append(
                Attempt(c.checkout_id, c.market, c.region, t, lat, 201, "", "first")
            )
            if i % 10 == 0:
                load.attempts.append(
                    Attempt(c.checkout_id, c.market, c.region, t, lat, 201, "", "duplicate")
                )
        load.checkouts.append(c)
    return load


def fake_demo() -> Any:
    return SimpleNamespace(
        names=["ap-south-1", "eu-west-1", "us-east-1"],
        marks=dict(MARKS),
        writer_events=[],
        timings={"infra": 50.0},
        cpu={},
        notes=["pricing: PRICING_CONFIG_FILE is not in the rendered Deployment; the demo sets it"],
    )


def test_summary_counts_and_promises(tmp_path: Path) -> None:
    load = a_run()
    verdict = Verdict()
    ledger = {
        "totals": {"payments": 3},
        "checkouts": {"c1": {"charged": 1, "captures": 1}, "c2": {"charged": 2, "captures": 1}},
    }
    double_charges(ledger, verdict)
    acked = [(c.checkout_id, c.region) for c in load.checkouts if c.outcome == "acknowledged"]
    db = {"us-east-1": {cid: "fulfilment_requested" for cid, r in acked if r == "us-east-1"}}
    db["eu-west-1"] = {cid: "placed" for cid, r in acked if r == "eu-west-1"}
    lost = acked[-1][0]
    del db["eu-west-1"][lost]
    kafka = {r: set(rows) for r, rows in db.items()}
    missing_orders(acked, db, kafka, verdict)
    result = {
        "scenario": "kill-region",
        "region": "us-east-1",
        "failover": {"happened": True, "expected": True, "seconds": 7.5,
                     "moved": {"US": "eu-west-1"}, "down": [],
                     "source": "routing ConfigMap", "markets": ["US"]},
    }  # fmt: skip
    s = report.build(
        demo=fake_demo(), load=load, verdict=verdict, result=result,
        startup_seconds=100, total_seconds=300,
    )  # fmt: skip
    assert s["attempted"] == 280
    assert s["acknowledged"] + s["failed"] == 280
    assert sum(r["attempted"] for r in s["by_market"].values()) == 280
    assert sum(r["acknowledged"] for r in s["by_market"].values()) == s["acknowledged"]
    assert s["failed"] == sum(1 for c in load.checkouts if c.outcome == "failed") > 0
    assert s["double_charges"] == 1
    assert s["duplicate_attempts"] == sum(1 for a in load.attempts if a.kind == "duplicate") > 0
    assert s["http_attempts"] == len(load.attempts)
    assert s["double_charged"] == ["c2"]
    assert s["missing_acknowledged_orders"] == 1
    assert s["missing_in_db"] == [lost]
    assert s["completed"] == len(db["us-east-1"])
    lat = s["latency_ms"]
    assert lat["during"]["p95"] > lat["before"]["p95"]
    assert lat["before"]["p50"] <= lat["before"]["p95"] <= lat["before"]["p99"]
    assert s["exit_code"] == 1
    assert any("double charge" in b for b in s["promises_broken"])
    text = report.text(s)
    assert "PROMISES BROKEN" in text
    assert "7.5 s (US -> eu-west-1" in text
    assert "UNEXPECTED" not in text
    # the same move in a scenario that must not move anything (a slow but healthy region)
    s["failover"] = {**result["failover"], "expected": False}
    assert "failover time           UNEXPECTED" in report.text(s)
    s["failover"] = {"happened": False, "expected": False, "markets": ["US"], "moved": {}}
    assert "none, as expected" in report.text(s)


def test_no_failover_is_reported_honestly() -> None:
    load = a_run()
    result = {
        "scenario": "kill-region",
        "region": "us-east-1",
        "failover": {"happened": False, "expected": True, "markets": ["BR", "US"], "moved": {},
                     "down": [], "message": "no failover happened: after 45 s ..."},
    }  # fmt: skip
    demo = fake_demo()
    demo.marks.pop("failover")
    s = report.build(
        demo=demo, load=load, verdict=Verdict(), result=result,
        startup_seconds=1, total_seconds=2,
    )  # fmt: skip
    assert s["failover_seconds"] is None
    assert s["failover_missing"]
    assert s["exit_code"] == 3
    assert "NONE: no failover happened" in report.text(s)


@pytest.fixture
def written(tmp_path: Path) -> Path:
    load = a_run()
    s = report.build(
        demo=fake_demo(), load=load, verdict=Verdict(),
        result={"scenario": "kill-region", "region": "us-east-1",
                "failover": {"happened": True, "expected": True, "seconds": 7.5,
                             "moved": {"US": "eu-west-1"}, "down": [],
                             "source": "routing ConfigMap", "markets": ["US"]}},
        startup_seconds=1, total_seconds=2,
    )  # fmt: skip
    report_files.write(s, load, fake_demo(), tmp_path)
    return tmp_path


def test_report_files(written: Path) -> None:
    data = json.loads((written / "report.json").read_text())
    assert data["attempted"] == 280
    assert (written / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "GameDay report" in (written / "report.txt").read_text()


def test_html_report_renders_in_headless_chromium(written: Path, tmp_path: Path) -> None:
    from PIL import Image

    browser = chromium()
    page = (written / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<h1 id="verdict">Promises held</h1>' in dom.stdout
    assert 'id="timeline"' in dom.stdout
    assert 'src="data:image/png;base64,' in dom.stdout
    assert "double charges</th><td>0</td>" in dom.stdout

    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [browser, *flags, "--window-size=1100,1200", f"--screenshot={shot}", page],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000) or []

    def near(rgb: tuple[int, int, int]) -> int:
        return sum(
            n for n, c in colours if all(abs(a - b) < 40 for a, b in zip(c, rgb, strict=True))
        )

    # matplotlib's default palette: the throughput (green), latency (blue), errors (red) lines
    assert near((44, 160, 44)) > 50, "no throughput line drawn: the plot is not on the page"
    assert near((31, 119, 180)) > 50, "no latency line drawn"
    assert near((214, 39, 40)) > 50, "no error bars drawn"


def test_router_follows_the_writer_like_the_write_record() -> None:
    writers = {"US": "us-east-1", "NL": "eu-west-1"}
    entries = {"us-east-1": "http://us", "eu-west-1": "http://eu"}
    router = Router(lambda: writers, lambda: entries, {"US": "us-east-1", "NL": "eu-west-1"})
    assert router.target_url("US") == "http://us"
    writers["US"] = "eu-west-1"  # the operator moved US: its customers follow
    assert router.target_url("US") == "http://eu"
    assert router.region_for("NL") == "eu-west-1"
    del writers["NL"]  # nothing published yet: the home region
    assert router.region_for("NL") == "eu-west-1"
    assert router.target_url("XX") == ""


def test_an_order_forwarded_to_another_region_is_not_missing() -> None:
    verdict = Verdict()
    db = {"us-east-1": {}, "eu-west-1": {"c1": "fulfilment_requested"}}
    missing_orders([("c1", "us-east-1"), ("c2", "us-east-1")], db, {"eu-west-1": set()}, verdict)
    assert verdict.missing_in_db == ["c2"]
    assert verdict.missing_in_kafka == ["c1"]  # in eu-west-1's database, not in its Kafka
    assert verdict.completed == 1


def test_a_checkout_caught_by_the_fault_is_not_steady_state() -> None:
    marks = {"fault": 20.0, "recovered": 50.0}
    done = Checkout("a", "US", 19.0, [], outcome="acknowledged", acked_at=19.3, latency_ms=300)
    caught = Checkout("b", "US", 19.5, [], outcome="acknowledged", acked_at=31.0, latency_ms=11500)
    lost = Checkout("c", "US", 19.8, [], outcome="failed")
    assert report.checkout_phase(done, marks) == "before"
    assert report.checkout_phase(caught, marks) == "during"
    assert report.checkout_phase(lost, marks) == "during"
    assert report.checkout_phase(Checkout("d", "US", 55.0, []), marks) == "after"
