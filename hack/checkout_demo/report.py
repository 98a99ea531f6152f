"""The GameDay report: the summary (:func:`build`) and its text; :mod:`report_files` writes them
with the JSON, the attempts and the HTML page with its timeline."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from checkout_demo import cpu
from checkout_demo.load import Checkout, LoadGen
from checkout_demo.verify import Verdict
from checkout_demo.view import RunRecord

P95_GOAL_MS = 250.0


def pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return round(ordered[k], 1)


def phase_of(t: float, marks: Mapping[str, float]) -> str:
    """before the fault; during it (until the region is back, restart included); after."""
    if t < marks.get("fault", math.inf):
        return "before"
    if t < marks.get("recovered", marks.get("recovery", math.inf)):
        return "during"
    return "after"


def checkout_phase(c: Checkout, marks: Mapping[str, float]) -> str:
    """A checkout's phase by its arrival, except that one which arrived before the fault but
    was answered after it (or never) lived through the fault: it counts as during. "Before" is
    the steady state."""
    phase = phase_of(c.scheduled, marks)
    if phase == "before" and (c.acked_at is None or c.acked_at >= marks.get("fault", math.inf)):
        return "during"
    return phase


def latency_table(
    load: LoadGen, marks: Mapping[str, float], field: str = "latency_ms"
) -> dict[str, dict[str, Any]]:
    """p50/p95/p99 per phase of acknowledged checkouts: ``latency_ms`` end to end (retries and
    their waits included), ``attempt_ms`` the HTTP attempt that succeeded alone."""
    out: dict[str, dict[str, Any]] = {}
    for phase in ("before", "during", "after"):
        lat = [
            v
            for c in load.checkouts
            if (v := getattr(c, field)) is not None and checkout_phase(c, marks) == phase
        ]
        out[phase] = {"n": len(lat), "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99)}
    return out


def cpu_table(demo: RunRecord, acked_before: int, seconds: float) -> dict[str, Any]:
    """CPU seconds per part of the stack over the phase before the fault, the cores they kept
    busy, and CPU ms per acknowledged checkout (comparable across loaded runs; latency is not)."""
    snaps = demo.cpu
    if "start" not in snaps or "fault" not in snaps or seconds <= 0:
        return {}
    parts = cpu.delta(snaps["start"], snaps["fault"])
    total = sum(parts.values())
    services = sum(v for k, v in parts.items() if k.split("[")[0] in SERVICES)
    return {
        "seconds": round(seconds, 1),
        "cores_busy": round(total / seconds, 2),
        "services_cores_busy": round(services / seconds, 2),
        "ms_per_checkout": round(1000 * total / acked_before, 1) if acked_before else None,
        "services_ms_per_checkout": (
            round(1000 * services / acked_before, 1) if acked_before else None
        ),
        "parts_cpu_seconds": parts,
    }


SERVICES = ("cart", "pricing", "inventory", "payments", "orders", "gateway")


def before_by_region(load: LoadGen, marks: Mapping[str, float]) -> dict[str, list[float]]:
    """Steady state (before the fault): the latencies of acknowledged checkouts per region."""
    out: dict[str, list[float]] = {}
    for c in load.checkouts:
        if c.region and c.latency_ms is not None and checkout_phase(c, marks) == "before":
            out.setdefault(c.region, []).append(c.latency_ms)
    return dict(sorted(out.items()))


def build(
    *,
    demo: RunRecord,
    load: LoadGen,
    verdict: Verdict,
    result: dict[str, Any],
    startup_seconds: float,
    total_seconds: float,
) -> dict[str, Any]:
    checkouts = load.checkouts
    outcomes: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for c in checkouts:
        outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
        if c.reason:
            reasons[c.reason] = reasons.get(c.reason, 0) + 1
    failover = result.get("failover") or {}
    by_market: dict[str, dict[str, int]] = {}
    for c in checkouts:
        row = by_market.setdefault(c.market, {"attempted": 0, "acknowledged": 0, "acked_before": 0})
        row["attempted"] += 1
        if c.outcome == "acknowledged":
            row["acknowledged"] += 1
            if checkout_phase(c, demo.marks) == "before":
                row["acked_before"] += 1
    if failover.get("happened"):
        moved = failover.get("moved") or {}
        fault = demo.marks.get("fault", 0.0)
        served = [
            c.acked_at
            for c in checkouts
            if c.market in moved and c.region == moved[c.market] and c.acked_at is not None
            and c.acked_at >= fault
        ]  # fmt: skip
        failover["first_ack_by_new_writer_seconds"] = (
            round(min(served) - fault, 2) if served else None
        )
    steady = before_by_region(load, demo.marks)
    region_p95 = {r: pct(v, 95) for r, v in steady.items()}
    latency_misses = {r: v for r, v in region_p95.items() if v is not None and v > P95_GOAL_MS}
    broken = []
    if verdict.double_charges:
        broken.append(f"{verdict.double_charges} double charge(s)")
    if verdict.oversold_units:
        broken.append(f"{verdict.oversold_units} oversold unit(s)")
    if verdict.missing:
        broken.append(f"{verdict.missing} acknowledged order(s) missing")
    if latency_misses:
        broken.append(
            "p95 over 250 ms before the fault in "
            + ", ".join(f"{r} ({v:.0f} ms)" for r, v in latency_misses.items())
        )
    failover_missing = bool(failover) and not failover.get("happened") and failover.get("expected")
    # a broken promise outranks what could not be read; unread is "could not run" (2): a
    # promise the demo could not check is not a promise held
    exit_code = 1 if broken else 2 if verdict.unverified else 3 if failover_missing else 0
    return {
        "scenario": result.get("scenario"),
        "region": result.get("region"),
        "rate_per_s": load.rate,
        "regions": demo.names,
        "attempted": len(checkouts),
        "acknowledged": outcomes.get("acknowledged", 0),
        "rejected": outcomes.get("rejected", 0),
        "failed": outcomes.get("failed", 0),
        "failure_reasons": reasons,
        "by_market": dict(sorted(by_market.items())),
        "completed": verdict.completed,
        "orders_by_state": verdict.orders_by_state,
        "http_attempts": len(load.attempts),
        "duplicate_attempts": sum(1 for a in load.attempts if a.kind == "duplicate"),
        "retry_attempts": sum(1 for a in load.attempts if a.kind == "retry"),
        "load_average": demo_load_average(),
        "double_charges": verdict.double_charges,
        "double_charged": verdict.double_charged[:20],
        "ledger": verdict.ledger_totals,
        "oversold_units": verdict.oversold_units,
        "stock": verdict.stock,
        "missing_acknowledged_orders": verdict.missing,
        "missing_in_db": verdict.missing_in_db[:20],
        "missing_in_kafka": verdict.missing_in_kafka[:20],
        "unverified": list(verdict.unverified),
        "unverified_orders": len(verdict.unverified_orders),
        "failover": failover,
        "failover_seconds": failover.get("seconds"),
        "recovery_seconds": (
            round(demo.marks["recovered"] - demo.marks["recovery"], 1)
            if "recovered" in demo.marks and "recovery" in demo.marks
            else None
        ),
        "writers_before": result.get("writers_before"),
        "writers_after": result.get("writers_after"),
        "writer_events": [e.__dict__ for e in demo.writer_events],
        "routing_events": getattr(demo, "routing_events", []),
        "latency_ms": latency_table(load, demo.marks),
        "attempt_latency_ms": latency_table(load, demo.marks, "attempt_ms"),
        "warmup": getattr(demo, "warmup_summary", {}),
        "cpu_before": cpu_table(
            demo,
            sum(r["acked_before"] for r in by_market.values()),
            demo.marks.get("fault", 0.0),
        ),
        "p95_before_by_region_ms": region_p95,
        "n_before_by_region": {r: len(v) for r, v in steady.items()},
        "marks": {k: round(v, 2) for k, v in demo.marks.items()},
        "workdir": str(getattr(demo, "workdir", "")),
        "startup_seconds": round(startup_seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "timings": {k: round(v, 1) for k, v in demo.timings.items()},
        "notes": [*demo.notes, *verdict.notes],
        "promises_broken": broken,
        "failover_missing": failover_missing,
        "exit_code": exit_code,
    }


def demo_load_average() -> list[float]:
    return [round(x, 1) for x in os.getloadavg()]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def text(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    empty = {"p50": None, "p95": None, "p99": None}
    att = s.get("attempt_latency_ms") or {ph: empty for ph in ("before", "during", "after")}
    fo = s["failover"] or {}
    if fo.get("happened"):
        fo_line = (
            (
                "UNEXPECTED (this scenario must not move a market): "
                if not fo.get("expected")
                else ""
            )
            + f"{fo['seconds']:.1f} s ({', '.join(f'{m} -> {w}' for m, w in fo['moved'].items())}"
            + (f"; down: {', '.join(fo['down'])}" if fo.get("down") else "")
            + f"; source: {fo['source']})"
            + (
                f"; every region's routing ConfigMap (what the services follow) after "
                f"{fo['routing_seconds']:.1f} s"
                if fo.get("routing_seconds") is not None
                else "; the regions' routing ConfigMaps had not all followed by the recovery"
            )
            + (
                f"; first moved checkout acknowledged by the new writer after "
                f"{fo['first_ack_by_new_writer_seconds']:.1f} s"
                if fo.get("first_ack_by_new_writer_seconds") is not None
                else ""
            )
        )
        if fo.get("lease_seconds") is not None:
            fo_line += (
                f"\n  new writer's lease      {fo['lease_seconds']:.1f} s after the fault (floor "
                f"{fo['floor_seconds']:.1f} s: failureThreshold x periodSeconds, or the old "
                f"lease's expiry; goal within 1 s of it: "
                f"{'met' if fo.get('within_goal') else 'NOT met'})"
            )
    elif fo and not fo.get("expected"):
        fo_line = "none, as expected: this scenario must not move any market"
    elif fo:
        fo_line = "NONE: " + fo.get("message", "")
    else:
        fo_line = "-"
    lines = [
        f"GameDay report: {s['scenario']} ({s['region']}), {s['rate_per_s']:g} checkouts/s, "
        f"regions {', '.join(s['regions'])}",
        f"  checkouts attempted     {s['attempted']}",
        f"  acknowledged            {s['acknowledged']}  (rejected {s['rejected']}, "
        f"failed after retries {s['failed']})",
        f"  completed (captured)    {s['completed']}",
        f"  double charges          {s['double_charges']}   (PSP ledger)",
        f"  oversold units          {s['oversold_units']}   (inventory databases)",
        f"  acknowledged missing    {s['missing_acknowledged_orders']}   "
        f"(DB {len(s['missing_in_db'])}, Kafka {len(s['missing_in_kafka'])})",
        f"  failover time           {fo_line}",
        f"  region back after       {s['recovery_seconds']} s (restart of what the fault stopped)",
        "  latency ms (p50/p95/p99) "
        + "  ".join(
            f"{ph}: {_ms(lat[ph]['p50'])}/{_ms(lat[ph]['p95'])}/{_ms(lat[ph]['p99'])}"
            f" (n={lat[ph]['n']})"
            for ph in ("before", "during", "after")
        ),
        "  succeeded attempt alone "
        + "  ".join(
            f"{ph}: {_ms(att[ph]['p50'])}/{_ms(att[ph]['p95'])}/{_ms(att[ph]['p99'])}"
            for ph in ("before", "during", "after")
        ),
        "  p95 before, per region  "
        + ", ".join(
            f"{r} {_ms(v)} (n={s.get('n_before_by_region', {}).get(r, '?')})"
            for r, v in s["p95_before_by_region_ms"].items()
        ),
        f"  run time                {s['total_seconds']:.0f} s"
        f" (start-up {s['startup_seconds']:.0f} s; load average at the end "
        f"{'/'.join(str(x) for x in s['load_average'])} on {os.cpu_count()} cores)",
        f"  HTTP attempts           {s['http_attempts']} (retries after an error "
        f"{s['retry_attempts']}, deliberate duplicates with the same key "
        f"{s['duplicate_attempts']})",
    ]
    c = s.get("cpu_before") or {}
    if c:
        lines.append(
            f"  CPU before the fault    {c['cores_busy']:.2f} of {os.cpu_count()} cores busy with "
            f"the demo's processes ({c['ms_per_checkout']} ms CPU per acknowledged checkout; "
            f"the services {c['services_cores_busy']:.2f} cores, "
            f"{c['services_ms_per_checkout']} ms per checkout)"
        )
        top = list(c["parts_cpu_seconds"].items())[:8]
        lines.append("  CPU s by part (before)  " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    w = s.get("warmup") or {}
    if w:
        lines.append(
            f"  warm-up (not counted)   {w['seconds']:g} s, {w['acknowledged']}/{w['attempted']}"
            f" acknowledged, p95 {_ms(w['p95_ms'])} ms"
        )
    lines.append(
        "  acknowledged by market  "
        + ", ".join(
            f"{m} {r['acknowledged']}/{r['attempted']}" for m, r in s.get("by_market", {}).items()
        )
    )
    if s["failure_reasons"]:
        lines.append(
            "  why not acknowledged    "
            + ", ".join(f"{k} {v}" for k, v in sorted(s["failure_reasons"].items()))
        )
    for note in s["notes"]:
        lines.append(f"  note: {note}")
    for why in s.get("unverified") or ():
        lines.append(f"  COULD NOT VERIFY: {why}")
    if s.get("unverified_orders"):
        lines.append(
            f"  COULD NOT VERIFY: {s['unverified_orders']} acknowledged order(s) whose row or "
            "event can only be in a system that could not be read"
        )
    if s["promises_broken"]:
        lines.append("  PROMISES BROKEN: " + "; ".join(s["promises_broken"]))
    elif s.get("unverified"):
        lines.append(
            "  promises: NOT VERIFIED: nothing read was broken, but the systems above could "
            "not be read (exit code 2)"
        )
    else:
        lines.append("  promises: no double charge, no oversell, no lost acknowledged order: HELD")
    if s["failover_missing"]:
        lines.append("  FAILOVER: expected, did not happen (exit code 3)")
    return "\n".join(lines)
