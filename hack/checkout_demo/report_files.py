"""The GameDay report's files: ``report.txt``, ``report.json``, ``attempts.json`` and
``report.html`` with its matplotlib timeline (``timeline.png``), from :func:`report.build`'s
summary."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from checkout_demo.load import LoadGen
from checkout_demo.report import P95_GOAL_MS, pct, text
from checkout_demo.view import RunRecord


def timeline_png(load: LoadGen, marks: Mapping[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = int(max([marks.get("end", 0.0), *(a.started for a in load.attempts)], default=0)) + 1
    acks = [0] * (end + 1)
    errors = [0] * (end + 1)
    lat: list[list[float]] = [[] for _ in range(end + 1)]
    for c in load.checkouts:
        if c.acked_at is not None and c.latency_ms is not None:
            i = min(end, int(c.acked_at))
            acks[i] += 1
            lat[i].append(c.latency_ms)
    for a in load.attempts:
        if a.status != 201:
            errors[min(end, int(a.started))] += 1
    xs = list(range(end + 1))
    p95 = [pct(v, 95) if v else float("nan") for v in lat]
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    axes[0].plot(xs, acks, color="tab:green")
    axes[0].set_ylabel("acked / s")
    axes[1].plot(xs, p95, color="tab:blue")
    axes[1].axhline(P95_GOAL_MS, color="grey", linestyle=":", label="p95 goal 250 ms")
    axes[1].set_ylabel("p95 latency ms")
    axes[1].set_yscale("log")
    axes[1].legend(loc="upper left")
    axes[2].bar(xs, errors, color="tab:red", width=1.0)
    axes[2].set_ylabel("error answers / s")
    axes[2].set_xlabel("seconds since the load started")
    styles = {
        "fault": ("tab:red", "fault injected"),
        "failover": ("tab:purple", "new writer (failover)"),
        "routing": ("tab:cyan", "services follow (routing)"),
        "recovery": ("tab:olive", "recovery started"),
        "recovered": ("tab:green", "region back"),
    }
    for key, (color, label) in styles.items():
        if key in marks:
            for ax in axes:
                ax.axvline(marks[key], color=color, linestyle="--", label=label)
    axes[0].legend(loc="upper right", fontsize=8)
    fig.suptitle("Checkout GameDay timeline")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def html_page(s: dict[str, Any], png: Path) -> str:
    img = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (
            ("scenario", f"{s['scenario']} ({s['region']})"),
            ("attempted", s["attempted"]),
            ("acknowledged", s["acknowledged"]),
            ("completed", s["completed"]),
            ("double charges", s["double_charges"]),
            ("oversold units", s["oversold_units"]),
            ("acknowledged orders missing", s["missing_acknowledged_orders"]),
            (
                "failover seconds",
                s["failover_seconds"] if s["failover_seconds"] is not None else "none",
            ),
            ("exit code", s["exit_code"]),
        )
    )
    verdict = (
        "PROMISES BROKEN"
        if s["promises_broken"]
        else "Could not verify the promises"
        if s.get("unverified")
        else "Promises held"
    )
    items = [*s["promises_broken"], *s.get("unverified", ())]
    if s.get("failover_missing"):
        items.append("the expected failover did not happen")
    broken = (
        '<ul id="broken">' + "".join(f"<li>{html.escape(b)}</li>" for b in items) + "</ul>"
        if items
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Checkout GameDay report</title>
<style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}
pre{{background:#f4f4f4;padding:1em;white-space:pre-wrap}}</style></head>
<body>
<h1 id="verdict">{html.escape(verdict)}</h1>
{broken}
<table id="summary">{rows}</table>
<h2>Timeline</h2>
<img id="timeline" alt="throughput, latency and errors over time, failover marked"
 src="data:image/png;base64,{img}" width="990">
<h2>Report</h2>
<pre id="report">{html.escape(text(s))}</pre>
</body></html>
"""


def write(s: dict[str, Any], load: LoadGen, demo: RunRecord, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    png = out / "timeline.png"
    timeline_png(load, demo.marks, png)
    (out / "report.txt").write_text(text(s) + "\n")
    (out / "report.json").write_text(json.dumps(s, indent=2, default=str) + "\n")
    (out / "report.html").write_text(html_page(s, png))
    attempts = [a.__dict__ for a in load.attempts]
    (out / "attempts.json").write_text(json.dumps(attempts) + "\n")
    return [out / "report.txt", out / "report.json", out / "report.html", png]
