"""Tables for ``kubectl checkout status`` and ``kubectl checkout history REGION``. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from checkout_operator.api.checkoutregion import CheckoutRegion


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines) + "\n"


def status_table(regions: Sequence[CheckoutRegion]) -> str:
    """One row per market: writer, epoch, state, home, home health, last move and why."""
    rows: list[list[str]] = []
    for r in sorted(regions, key=lambda x: x.spec.region):
        st = r.status
        markets = {m.market: m for m in st.markets} if st else {}
        records = (st.history or ((st.last_failover,) if st.last_failover else ())) if st else ()
        for hm in r.spec.home_markets:
            m = markets.get(hm.country)
            moved = ""
            why = m.message if m else "no lease yet"
            last = next((h for h in records if hm.country in h.markets), None)
            if last is not None:
                moved = f"{last.time} {last.from_region}->{last.to_region}"
                why = f"{last.reason} ({last.actor})"
            rows.append(
                [
                    hm.country,
                    m.writer if m else r.spec.region,
                    str(m.epoch) if m else "-",
                    m.state if m else "-",
                    r.spec.region,
                    st.health.state if st else "Unknown",
                    moved or "-",
                    why or "-",
                ]
            )
    rows.sort(key=lambda x: x[0])
    header = ["MARKET", "WRITER", "EPOCH", "STATE", "HOME", "HOME-HEALTH", "LAST-MOVE", "WHY"]
    return _table(header, rows)


def history_table(region: CheckoutRegion) -> str:
    st = region.status
    records = st.history if st else ()
    if not records:
        return f"no moves recorded for {region.spec.region}\n"
    rows = [
        [
            h.time,
            ",".join(h.markets),
            h.from_region,
            h.to_region,
            str(h.epoch),
            h.reason,
            h.actor,
            "; ".join(h.evidence),
        ]
        for h in records
    ]
    header = ["TIME", "MARKETS", "FROM", "TO", "EPOCH", "REASON", "ACTOR", "EVIDENCE"]
    return _table(header, rows)
