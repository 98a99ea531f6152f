"""The promises, checked from the systems of record after the run.

* double charges: the PSP simulator's ledger (authorizations not voided, captures, per checkout);
* oversold units: every region's inventory database (sold + held + available vs the stock set);
* acknowledged orders missing: every acknowledged checkout must have its order row in the
  database of the region that acknowledged it, and its ORDER_PLACED event in that region's
  Kafka (the outbox publishes at least once).

A system of record may still be coming back when the checks run (the kill-region GameDay has
just restarted that region's Kafka and PostgreSQL): every read is retried with a backoff until a
deadline (:data:`DEADLINE_S`). What still cannot be read is never counted as a broken promise:
it raises :class:`Unverified` ("could not verify ... because ..."), the report lists it and the
demo exits 2 (could not run).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from checkout_tasks import Backoff

T = TypeVar("T")

ORDER_PLACED = "checkout.order-placed"


DEADLINE_S = 60.0
"""How long one check keeps retrying a system of record that does not answer."""
RETRY = Backoff(initial=0.5, maximum=5.0)
KAFKA_TRANSIENT: tuple[type[BaseException], ...] = (KafkaError, OSError, TimeoutError)
DB_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,  # e.g. CannotConnectNowError: the database system is starting up
    asyncpg.InterfaceError,  # e.g. the connection was closed in the middle of the query
)


class Unverified(Exception):
    """A check could not read its system of record before its deadline (the message says
    what and why); the report lists it and the demo exits 2."""


class Incomplete(Exception):
    """One attempt read only part of what it must (retried like a transient error)."""


@dataclass
class Verdict:
    double_charges: int = 0
    double_charged: list[str] = field(default_factory=list)
    captured_twice: int = 0
    oversold_units: int = 0
    stock: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    missing_in_db: list[str] = field(default_factory=list)
    missing_in_kafka: list[str] = field(default_factory=list)
    completed: int = 0
    orders_by_state: dict[str, int] = field(default_factory=dict)
    ledger_totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    """"could not verify ... because ..." for each system of record that never answered."""
    unverified_orders: list[str] = field(default_factory=list)
    """Acknowledged checkouts whose order or event could be only in an unreadable system."""

    @property
    def missing(self) -> int:
        return len(set(self.missing_in_db) | set(self.missing_in_kafka))


def describe(exc: BaseException) -> str:
    """One line naming an error and its cause (what a retry gave up on)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    line = text if text.startswith(name) else f"{name}: {text}" if text else name
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and str(cause) and str(cause) not in line:
        line += f" ({type(cause).__name__}: {str(cause).strip().splitlines()[0]})"
    return line


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    deadline_s: float = DEADLINE_S,
    backoff: Backoff = RETRY,
    rng: random.Random | None = None,
) -> T:
    """``await attempt()`` until it succeeds, retrying the ``transient`` errors (and an
    :class:`Incomplete` read) with a backoff; past ``deadline_s`` (each attempt is cut off there
    too) raise :class:`Unverified`: "could not verify <what> because <the last error>"."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    rng = rng or random.Random()
    retried: tuple[type[BaseException], ...] = (*transient, Incomplete, TimeoutError)
    tries = 0
    while True:
        tries += 1
        try:
            async with asyncio.timeout(max(0.0, end - loop.time())):
                return await attempt()
        except retried as exc:
            last: BaseException = exc
        pause = backoff.delay(tries - 1, rng)
        if loop.time() + pause >= end:
            why = (
                f"it gave no answer within {deadline_s:g} s"
                if isinstance(last, TimeoutError) and not str(last)
                else describe(last)
            )
            raise Unverified(
                f"could not verify {what} because {why} ({tries} attempt(s) in {deadline_s:g} s)"
            ) from last
        await asyncio.sleep(pause)


def double_charges(ledger: Mapping[str, Any], verdict: Verdict) -> None:
    verdict.ledger_totals = dict(ledger.get("totals") or {})
    for ref, row in (ledger.get("checkouts") or {}).items():
        if row.get("charged", 0) > 1 or row.get("captures", 0) > 1:
            verdict.double_charged.append(ref)
        if row.get("captures", 0) > 1:
            verdict.captured_twice += 1
    verdict.double_charges = len(verdict.double_charged)


async def _query(dsn: str, *queries: str) -> list[list[Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return [await conn.fetch(q) for q in queries]
    finally:
        await conn.close()


async def inventory(
    region: str,
    dsn: str,
    initial: Mapping[str, int],
    verdict: Verdict,
    *,
    deadline_s: float = DEADLINE_S,
) -> None:
    rows, held = await retrying(
        f"{region}'s stock (inventory database)",
        lambda: _query(
            dsn,
            "SELECT sku, available FROM stock",
            "SELECT sku, state, sum(quantity)::int AS q FROM reservations GROUP BY sku, state",
        ),
        transient=DB_TRANSIENT,
        deadline_s=deadline_s,
    )
    per: dict[str, dict[str, int]] = {}
    for r in rows:
        per[r["sku"]] = {"initial": initial.get(r["sku"], 0), "available": r["available"]}
    for r in held:
        per.setdefault(r["sku"], {"initial": initial.get(r["sku"], 0), "available": 0})
        per[r["sku"]][r["state"]] = r["q"]
    for sku, s in per.items():
        sold = s.get("committed", 0) + s.get("held", 0)
        over = max(0, sold - s["initial"])
        s["oversold"] = over
        verdict.oversold_units += over
        if s["available"] + sold != s["initial"] and s["initial"]:
            verdict.notes.append(
                f"{region}/{sku}: available {s['available']} + sold/held {sold} != "
                f"initial {s['initial']} (released or expired stock is counted as available)"
            )
    verdict.stock[region] = per


async def orders(region: str, dsn: str, *, deadline_s: float = DEADLINE_S) -> dict[str, str]:
    """checkout id -> order state, of one region's database."""
    (rows,) = await retrying(
        f"{region}'s orders (orders database)",
        lambda: _query(dsn, "SELECT checkout_id, state FROM orders"),
        transient=DB_TRANSIENT,
        deadline_s=deadline_s,
    )
    return {r["checkout_id"]: r["state"] for r in rows}


async def placed_events(
    bootstrap: str,
    topic: str = ORDER_PLACED,
    wait_s: float = 30,
    *,
    what: str = "",
    deadline_s: float = DEADLINE_S,
) -> set[str]:
    """The checkout ids of every ORDER_PLACED event in ``topic`` and its per-market topics,
    read to their end offsets. A broker that is still coming back (no metadata, no leader, a
    read that stalls for ``wait_s``) is retried until ``deadline_s``, then :class:`Unverified`."""
    return await retrying(
        what or f"the {topic} events in Kafka at {bootstrap}",
        lambda: _read_placed(bootstrap, topic, wait_s),
        transient=KAFKA_TRANSIENT,
        deadline_s=deadline_s,
    )


async def _read_placed(bootstrap: str, topic: str, wait_s: float) -> set[str]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        retry_backoff_ms=250,
    )
    loop = asyncio.get_running_loop()
    found: set[str] = set()
    try:
        await consumer.start()
        # the family's topics of this region: ``checkout.order-placed.<MARKET>`` (residency:
        # personal events carry their market), and the unsuffixed name of older builds
        family = re.compile(re.escape(topic) + r"(\.[A-Z]{2})?")
        names = sorted(t for t in await consumer.topics() if family.fullmatch(t))
        if not names:
            return found
        consumer.subscribe(topics=names)  # no group: every partition is assigned to us
        deadline = loop.time() + wait_s
        tps = await _assigned(consumer, names, deadline)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(list(tps))
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                return found
            if loop.time() >= deadline:
                behind = sorted(
                    f"{tp.topic}[{tp.partition}]" for tp in tps if positions[tp] < ends[tp]
                )
                raise Incomplete(
                    f"the read stalled for {wait_s:g} s before the end of {', '.join(behind)}"
                )
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for rec in records:
                    if rec.key is not None:
                        found.add(rec.key.decode())
                    elif rec.value:
                        data = json.loads(rec.value)
                        found.add(str((data.get("data") or data).get("checkoutId")))
    finally:
        await consumer.stop()


async def _assigned(
    consumer: AIOKafkaConsumer, names: list[str], deadline: float
) -> set[TopicPartition]:
    """Every partition of ``names``, once the subscription's metadata is in and assigned."""
    loop = asyncio.get_running_loop()
    while True:
        parts = {n: consumer.partitions_for_topic(n) for n in names}
        want = {TopicPartition(n, p) for n, ps in parts.items() for p in ps or ()}
        if all(parts.values()) and consumer.assignment() == want:
            return want
        if loop.time() >= deadline:
            raise Incomplete(
                "no partition metadata for " + ", ".join(n for n, ps in parts.items() if not ps)
                if not all(parts.values())
                else "the partitions were not assigned"
            )
        await asyncio.sleep(0.1)


def missing_orders(
    acknowledged: Iterable[tuple[str, str]],
    db: Mapping[str, Mapping[str, str]],
    kafka: Mapping[str, set[str]],
    verdict: Verdict,
    *,
    unread_db: Collection[str] = (),
    unread_kafka: Collection[str] = (),
) -> None:
    """``acknowledged``: (checkout id, region the client sent it to). The order must be in the
    database of some region (the one the client reached, or the writer a gateway forwarded it
    to), and its ORDER_PLACED event in that same region's Kafka. An order or event that may be
    in a region whose database (``unread_db``) or Kafka (``unread_kafka``) could not be read is
    unverified, not missing."""
    acknowledged = list(acknowledged)
    states: dict[str, int] = {}
    for checkout_id, region in acknowledged:
        holders = [r for r in (region, *sorted(db)) if checkout_id in db.get(r, {})]
        if not holders:
            if unread_db:
                verdict.unverified_orders.append(checkout_id)
            else:
                verdict.missing_in_db.append(checkout_id)
            continue
        if not any(checkout_id in kafka.get(r, set()) for r in holders):
            if any(r in unread_kafka for r in holders):
                verdict.unverified_orders.append(checkout_id)
            else:
                verdict.missing_in_kafka.append(checkout_id)
        state = db[holders[0]][checkout_id]
        states[state] = states.get(state, 0) + 1
    verdict.orders_by_state = states
    verdict.completed = states.get("fulfilment_requested", 0)


@dataclass(frozen=True)
class Region:
    """Where one region's systems of record answer."""

    name: str
    database_url: str
    kafka_bootstrap: str


async def check(
    ledger: Callable[[], Awaitable[Mapping[str, Any]]],
    regions: Iterable[Region],
    acknowledged: Iterable[tuple[str, str]],
    stock: Mapping[str, int],
    *,
    ledger_transient: tuple[type[BaseException], ...] = (OSError,),
    deadline_s: float = DEADLINE_S,
    settle_rounds: int = 20,
    settle_pause_s: float = 2.0,
) -> Verdict:
    """Every promise check of the run. A system that never answered within ``deadline_s`` is
    listed in ``Verdict.unverified`` and left out of the counts (it is not asked again)."""
    verdict = Verdict()
    regions = list(regions)
    acknowledged = list(acknowledged)
    try:
        book = await retrying(
            "the PSP ledger (double charges)",
            ledger,
            transient=ledger_transient,
            deadline_s=deadline_s,
        )
        double_charges(book, verdict)
    except Unverified as exc:
        verdict.unverified.append(str(exc))
    db: dict[str, dict[str, str]] = {}
    unread_db: set[str] = set()
    kafka: dict[str, set[str]] = {}
    unread_kafka: set[str] = set()

    async def read_db(r: Region) -> None:
        try:
            await inventory(r.name, r.database_url, stock, verdict, deadline_s=deadline_s)
            db[r.name] = await orders(r.name, r.database_url, deadline_s=deadline_s)
        except Unverified as exc:
            verdict.unverified.append(str(exc))
            unread_db.add(r.name)

    async def read_kafka(r: Region) -> None:
        try:
            kafka[r.name] = await placed_events(
                r.kafka_bootstrap,
                what=f"{r.name}'s ORDER_PLACED events (Kafka {r.kafka_bootstrap})",
                deadline_s=deadline_s,
            )
        except Unverified as exc:
            verdict.unverified.append(str(exc))
            unread_kafka.add(r.name)
            kafka.pop(r.name, None)

    # the regions side by side: a region that is still down costs one deadline, not three
    await asyncio.gather(*(read_db(r) for r in regions))
    # the outbox relays publish at least once: give them a moment after the last order
    for round_ in range(settle_rounds):
        await asyncio.gather(*(read_kafka(r) for r in regions if r.name not in unread_kafka))
        if round_ == settle_rounds - 1 or all(
            cid in kafka[r] for cid, r in acknowledged if r in kafka
        ):
            break
        await asyncio.sleep(settle_pause_s)
    missing_orders(acknowledged, db, kafka, verdict, unread_db=unread_db, unread_kafka=unread_kafka)
    return verdict
