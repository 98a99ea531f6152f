"""Must-show (issue 18): a property test. Hypothesis generates Luhn-valid card numbers and
writes each in a form a JSON body, a query string or a header can carry (``\\u`` escapes,
full-width or other Unicode digits, dots, dashes, underscores, double spaces, ``+`` and ``%xx``
in queries, JSON integers and floats, object keys) into every place a client chooses (ids that
become Temporal workflow ids and Kafka keys, customer fields that become ``customers`` rows,
free text, headers). Every such request must be refused with a 4xx, and afterwards no
generated number, in digits or as sent, appears in:

* a log: the real services' log files, and ``caplog`` for an in-process app built by the same
  factory (the record factory that masks every record);
* Kafka: every record of every topic, keys and values;
* a database row: every table of the orders, inventory and payments databases;
* a Temporal history: every workflow of the region's task queue.

Real processes (PSP simulator, payments, pricing, inventory, orders) on real PostgreSQL, Redis,
Kafka and Temporal. Bounded: a fixed number of derandomized examples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import checkout_env as ce
import httpx
import hypothesis
import pytest
import services_harness as h
from fastapi import FastAPI, Request
from hypothesis import strategies as st
from temporalio.client import Client
from test_services_scrub import (  # the scrub test's region fixture (env) and searches
    checkout_body,
    database_text,
    env,  # noqa: F401
    read_logs,
    topics_text,
)

from checkout_services.common import pan, scrub
from checkout_stack.components.temporal import Temporal

pytestmark = pytest.mark.stack

EXAMPLES = 60
TAG = uuid.uuid4().hex[:6]


def luhn_complete(partial: str) -> str:
    """``partial`` + the check digit that makes it Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return partial + str((10 - total % 10) % 10)


@st.composite
def pans(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("23456"))
    rest = draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    number = luhn_complete(first + rest)
    assert scrub.luhn_ok(number)
    return number


def _grouped(sep: str) -> Callable[[str], str]:
    return lambda d: sep.join(d[i : i + 4] for i in range(0, len(d), 4))


def _digits_from(zero: int) -> Callable[[str], str]:
    return lambda d: "".join(chr(zero + int(c)) for c in d)


TEXT_FORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda d: d,
    "spaced": _grouped(" "),
    "double-spaced": _grouped("  "),
    "dashed": _grouped("-"),
    "dotted": _grouped("."),
    "underscored": _grouped("_"),
    "colons": _grouped(":"),
    "full-width": _digits_from(0xFF10),
    "math-bold": _digits_from(0x1D7CE),
    "arabic-indic": _digits_from(0x0660),
    "prefixed": lambda d: f"ref {_grouped(' ')(d)} end",
}
ASCII_FORMS = ("plain", "spaced", "dashed", "dotted", "underscored", "colons", "prefixed")
ID_FORMS = ("plain", "dashed", "dotted", "underscored", "colons")
"""Forms that pass the id patterns ``[A-Za-z0-9._:-]``: they would reach Temporal and Kafka."""


@dataclass(frozen=True)
class Attack:
    carrier: str
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str | bytes]
    sent: str
    """The number as written in the request (searched for afterwards, besides the digits)."""


def _json(value: Any, escape_all: bool) -> bytes:
    """``value`` as JSON; with ``escape_all`` every digit inside a string is a ``\\u`` escape
    (the bytes of a string then hold no digit run at all)."""
    if not escape_all:
        return json.dumps(value, ensure_ascii=True).encode()
    return _escaped(value).encode()


def _escaped(value: Any) -> str:
    if isinstance(value, str):
        # ASCII digits escaped here, any other character as json writes it (\\uXXXX, pairs)
        inner = (
            f"\\u{ord(c):04x}" if c.isascii() and c.isdigit() else json.dumps(c)[1:-1]
            for c in value
        )
        return '"' + "".join(inner) + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_escaped(str(k))}: {_escaped(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_escaped(v) for v in value) + "]"
    return json.dumps(value)


@st.composite
def attacks(draw: st.DrawFn) -> Attack:
    number = draw(pans())
    carrier = draw(
        st.sampled_from(
            [
                "body-field",
                "body-id",
                "body-customer",
                "body-key",
                "body-number",
                "query",
                "header",
                "path",
            ]
        )
    )
    cid = f"co-pp-{uuid.uuid4().hex[:8]}"
    if carrier == "body-number":
        # as a float only when a double holds it exactly (up to 2**53; a longer one is another
        # number once parsed, not a card number)
        exact = float(int(number)) == int(number)
        value: Any = float(number) if exact and draw(st.booleans()) else int(number)
        field = draw(st.sampled_from(["promo_code", "shipping_option", "checkout_id"]))
        body = {**checkout_body(cid), field: value}
        return Attack(carrier, "POST", "/v1/checkouts", _json(body, False), {}, number)
    ids_only = carrier in ("body-id", "path")
    form = draw(st.sampled_from(ID_FORMS if ids_only else tuple(TEXT_FORMS)))
    sent = TEXT_FORMS[form](number)
    escape_all = draw(st.booleans())
    if carrier == "body-field":
        field = draw(st.sampled_from(["promo_code", "shipping_option"]))
        body = {**checkout_body(cid), field: sent}
    elif carrier == "body-id":
        where = draw(st.sampled_from(["checkout_id", "sku", "customer_id"]))
        body = checkout_body(cid)
        if where == "checkout_id":
            body["checkout_id"] = sent
        elif where == "sku":
            body["lines"] = [{"sku": sent, "quantity": 1}]
        else:
            body["customer"] = {"customer_id": sent}
    elif carrier == "body-customer":
        where = draw(st.sampled_from(["name", "email", "line1"]))
        customer: dict[str, Any] = {"customer_id": f"cust-{cid}"}
        if where == "name":
            customer["name"] = sent
        elif where == "email":
            customer["email"] = f"{sent.replace(' ', '')}@example.org"
        else:
            customer["address"] = {
                "line1": sent,
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            }
        body = {**checkout_body(cid), "customer": customer}
    elif carrier == "body-key":
        body = {**checkout_body(cid), "metadata": {sent: "x"}}
    elif carrier == "query":
        style = draw(st.sampled_from(["percent", "plus", "raw-ascii"]))
        if style == "percent":
            q = quote(sent, safe="")
        elif style == "plus":
            q = quote_plus(sent)
        else:
            q = sent.replace(" ", "+") if form in ASCII_FORMS else quote(sent, safe="")
        method = draw(st.sampled_from(["GET", "POST"]))
        path = f"/v1/orders/{cid}?ref={q}" if method == "GET" else f"/v1/checkouts?ref={q}"
        payload = _json(checkout_body(cid), False) if method == "POST" else None
        return Attack(carrier, method, path, payload, {}, sent)
    elif carrier == "header":
        name = draw(st.sampled_from(["Idempotency-Key", "X-Request-Id", "X-Client-Ref"]))
        value: str | bytes = sent if sent.isascii() else sent.encode()
        return Attack(
            carrier, "POST", "/v1/checkouts", _json(checkout_body(cid), False), {name: value}, sent
        )
    else:  # path
        return Attack(carrier, "GET", f"/v1/orders/{quote(sent, safe='')}", None, {}, sent)
    return Attack(carrier, "POST", "/v1/checkouts", _json(body, escape_all), {}, sent)


# -- the in-process app (caplog) ------------------------------------------------------------------


def echo_app() -> FastAPI:
    """An app from the services' own factory whose routes log everything they get."""
    app = h.in_process_app("echo")
    log = logging.getLogger("checkout_services.echo")

    @app.api_route("/{rest:path}", methods=["GET", "POST"])
    async def echo(rest: str, request: Request) -> dict[str, str]:
        body = await request.body()
        log.info("got %s %s %s %s", rest, request.url.query, dict(request.headers), body)
        return {"ok": "1"}

    return app


# -- fixture and test -----------------------------------------------------------------------------


async def region_histories(temporal: Temporal, workdir: Any) -> str:
    queue = json.loads((workdir / "region.json").read_text())["temporalTaskQueue"]
    client = await Client.connect(temporal.address, namespace=temporal.namespace)
    out = []
    async for wf in client.list_workflows(f'TaskQueue = "{queue}"'):
        out.append(wf.id)
        history = await client.get_workflow_handle(wf.id).fetch_history()
        out.append(history.to_json())
    return "\n".join(out)


async def test_generated_card_numbers_reach_no_log_topic_row_or_history(
    env: ce.CheckoutEnv,  # noqa: F811 (the fixture imported above)
    temporal: Temporal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[tuple[str, str]] = []  # (digits, as written)
    refusals: dict[str, int] = {}
    echo = echo_app()
    loop = asyncio.get_running_loop()
    orders = httpx.Client(base_url=env.orders.url, timeout=60)
    local = httpx.AsyncClient(transport=httpx.ASGITransport(app=echo), base_url="http://echo")

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(attacks())
    def attack(a: Attack) -> None:
        digits = pan.digits_of(a.sent) if a.carrier != "body-number" else a.sent
        sent.append((digits, a.sent))
        resp = orders.request(a.method, a.path, content=a.body, headers=a.headers)
        assert 400 <= resp.status_code < 500, (a, resp.status_code, resp.text)
        assert digits not in resp.text, (a, resp.text)
        refusals[a.carrier] = refusals.get(a.carrier, 0) + 1
        # the same request in-process: refused too, and nothing of it in a log record
        future = asyncio.run_coroutine_threadsafe(
            local.request(a.method, a.path, content=a.body, headers=a.headers), loop
        )
        assert 400 <= future.result(30).status_code < 500, a

    scrub.install_logging()
    try:
        with caplog.at_level(logging.DEBUG):
            await asyncio.to_thread(attack)
            clean = await local.post(f"/v1/clean-{TAG}", json={"a": "b"})  # it does log
            assert clean.status_code == 200
    finally:
        scrub.uninstall_logging()
        await asyncio.to_thread(orders.close)
        await local.aclose()
    # the app's records (the test's own HTTP client logs its URLs: not the app's)
    app_logs = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert f"clean-{TAG}" in app_logs, "caplog saw none of the app's records"
    assert len(sent) >= EXAMPLES // 2
    assert len(refusals) >= 6, refusals  # most carriers were exercised

    # a legitimate checkout beside them: the searches below see real traffic
    good = f"co-pp-good-{TAG}"
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.put(f"{env.inventory.url}/v1/stock/tee", json={"available": 50})
        assert r.status_code == 200
        placed = await client.post(f"{env.orders.url}/v1/checkouts", json=checkout_body(good))
        assert placed.status_code == 201, placed.text
    await asyncio.sleep(3)  # the relays publish

    logs = read_logs(env.workdir, env.payments.log)
    assert any(good in text for text in logs.values())
    kafka = (await topics_text(env.kafka_bootstrap)).decode("utf-8", "replace")
    assert good in kafka
    dbs = {
        "orders": await database_text(env.orders_env["DATABASE_URL"]),
        "inventory": await database_text(env.inventory.env["DATABASE_URL"]),
        "payments": await database_text(env.payments.env["DATABASE_URL"]),
    }
    assert good in dbs["orders"]
    histories = await region_histories(temporal, env.workdir)
    assert good in histories
    for digits, written in sent:
        for secret in {digits, written}:
            assert secret not in app_logs, f"{secret!r} in an in-process log record"
            for name, text in logs.items():
                assert secret not in text, f"{secret!r} in log {name}"
            assert secret not in kafka, f"{secret!r} in a Kafka record"
            for name, text in dbs.items():
                assert secret not in text, f"{secret!r} in the {name} database"
            assert secret not in histories, f"{secret!r} in a workflow history"
    print(f"\n{len(sent)} card numbers sent, refusals by carrier: {refusals}")
