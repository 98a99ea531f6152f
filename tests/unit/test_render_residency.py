"""Residency: the rendered MirrorMaker 2 topic filters and the flows table, exactly.

MM2's DefaultTopicFilter joins the ``topics`` list and the ``topics.exclude`` list each into
one regex with ``|`` and replicates a topic when ``topics`` matches its whole name and
``topics.exclude`` does not. ``mm2_filter`` below does the same with Python's ``re`` (the
constructs used, lookahead and non-capturing groups, mean the same in Java), on the regexes
read back from the rendered properties file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import example_data as helpers
import pytest

from checkout_contract import classification
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import flows, inputs, mirrormaker

FLEET_FILE = helpers.ROOT / "tests" / "data" / "residency" / "fleet.yaml"
BIN = Path(sys.executable).parent


def fleet() -> list[CheckoutRegion]:
    items = inputs.load_paths([str(FLEET_FILE)])
    out = [i.obj for i in items if isinstance(i.obj, CheckoutRegion)]
    return sorted(out, key=lambda r: r.spec.region)


def by_name(name: str) -> CheckoutRegion:
    return next(r for r in fleet() if r.spec.region == name)


def _unescape(value: str) -> str:
    """What java.util.Properties.load makes of a value (only ``\\\\`` occurs here)."""
    return value.replace("\\\\", "\\")


def flow_filters(props: str, source: str, target: str) -> tuple[list[str], list[str]]:
    keys = {}
    for line in props.splitlines():
        if " = " in line and not line.startswith("#"):
            k, v = line.split(" = ", 1)
            keys[k] = _unescape(v)
    topics = keys[f"{source}->{target}.topics"].split(",")
    exclude = keys[f"{source}->{target}.topics.exclude"].split(",")
    return topics, exclude


def mm2_filter(topics: list[str], exclude: list[str], topic: str) -> bool:
    return (
        re.fullmatch("|".join(topics), topic) is not None
        and re.fullmatch("|".join(exclude), topic) is None
    )


SAMPLE_TOPICS = [
    *(
        classification.market_topic(f.base, m)
        for f in classification.TOPICS
        if f.scope == "market"
        for m in ("US", "BR", "NL", "DE", "IN", "XX")
    ),
    *(f.base for f in classification.TOPICS if f.scope != "market"),
    "checkout.order-placed",  # a legacy topic without its market: never leaves
    "eu-west-1.checkout.order-placed.NL",  # a replicated copy (multi-hop)
    "eu-west-1.checkout.order-placed.IN",
]


def replicated_into(target: str, source: str) -> set[str]:
    regions = fleet()
    props = mirrormaker.properties(by_name(target), regions)
    topics, exclude = flow_filters(props, source, target)
    return {t for t in SAMPLE_TOPICS if mm2_filter(topics, exclude, t)}


def restricted_markets(topics: set[str]) -> set[str]:
    out = set()
    for t in topics:
        info = classification.classify_topic(t)
        assert info is not None, t
        if info.family.restricted:
            out.add(info.market or "-")
    return out


AGGREGATES = {"checkout.stock-deltas", "checkout.inventory-divergence"}


@pytest.mark.parametrize(
    ("target", "source", "markets"),
    [
        # EU regions hold EU markets and US/BR (which allow EU); never IN
        ("eu-west-1", "eu-central-1", {"BR", "DE", "NL", "US"}),
        ("eu-central-1", "us-east-1", {"BR", "DE", "NL", "US"}),
        # the US region holds US and BR only: no EU market, no IN
        ("us-east-1", "eu-west-1", {"BR", "US"}),
        ("us-east-1", "ap-south-1", {"BR", "US"}),
        # India holds IN only
        ("ap-south-1", "us-east-1", {"IN"}),
        ("ap-south-1", "eu-west-1", {"IN"}),
    ],
)
def test_flow_replicates_aggregates_and_only_allowed_markets(
    target: str, source: str, markets: set[str]
) -> None:
    got = replicated_into(target, source)
    assert got & AGGREGATES == AGGREGATES
    assert restricted_markets(got) == markets
    # a whole family per allowed market, nothing of an unknown market, no DLQ, no legacy name
    for family in classification.TOPICS:
        if family.scope == "market":
            assert {t for t in got if t.startswith(family.base + ".")} == {
                f"{family.base}.{m}" for m in markets
            }
    assert not any(".dlq." in t for t in got)
    assert "checkout.order-placed" not in got


def test_replicated_copies_of_barred_markets_are_excluded_too() -> None:
    # with a catch-all topics pattern a copy (<source>.<topic>) would be offered for the next
    # hop: the exclusion covers it
    regions = fleet()
    props = mirrormaker.properties(by_name("us-east-1"), regions)
    _, exclude = flow_filters(props, "eu-west-1", "us-east-1")
    assert not mm2_filter([".*"], exclude, "eu-west-1.checkout.order-placed.NL")
    assert not mm2_filter([".*"], exclude, "eu-central-1.checkout.customers.DE")
    assert mm2_filter([".*"], exclude, "eu-west-1.checkout.order-placed.US")
    assert mm2_filter([".*"], exclude, "eu-west-1.checkout.stock-deltas")


def test_exact_excludes_of_india_and_the_us() -> None:
    regions = fleet()
    assert mirrormaker.topic_excludes(by_name("ap-south-1"), regions) == [
        r".*[\-\.]internal",
        r".*\.replica",
        r"__.*",
        r"(?:.+\.)?checkout\.order-placed(?!\.(?:IN)$).*",
        r"(?:.+\.)?checkout\.payment-captured(?!\.(?:IN)$).*",
        r"(?:.+\.)?checkout\.fulfillment-requested(?!\.(?:IN)$).*",
        r"(?:.+\.)?checkout\.customers(?!\.(?:IN)$).*",
        r"(?:.+\.)?checkout\.dlq\.payment-capture-failed.*",
        r"(?:.+\.)?checkout\.dlq\.reservation-expired.*",
    ]
    assert mirrormaker.topic_excludes(by_name("us-east-1"), regions)[3:5] == [
        r"(?:.+\.)?checkout\.order-placed(?!\.(?:BR|US)$).*",
        r"(?:.+\.)?checkout\.payment-captured(?!\.(?:BR|US)$).*",
    ]


def test_a_region_that_may_hold_no_market_excludes_every_restricted_family() -> None:
    doc = helpers.example_docs()["us-east-1"]
    doc["spec"]["jurisdiction"] = "UK"
    doc["spec"]["homeMarkets"] = []
    region = load.parse(doc)
    assert isinstance(region, CheckoutRegion)
    assert mirrormaker.topic_excludes(region, [region])[3:] == [
        r"(?:.+\.)?checkout\.order-placed.*",
        r"(?:.+\.)?checkout\.payment-captured.*",
        r"(?:.+\.)?checkout\.fulfillment-requested.*",
        r"(?:.+\.)?checkout\.customers.*",
        r"(?:.+\.)?checkout\.dlq\.payment-capture-failed.*",
        r"(?:.+\.)?checkout\.dlq\.reservation-expired.*",
    ]


def test_strimzi_mirrors_carry_the_same_excludes() -> None:
    regions = fleet()
    target = by_name("us-east-1").model_copy(deep=True)
    rep = target.spec.replication.model_copy(update={"mode": "Strimzi"})
    target = target.model_copy(update={"spec": target.spec.model_copy(update={"replication": rep})})
    got = mirrormaker.strimzi(target, "ns", regions)
    want = ",".join(mirrormaker.topic_excludes(target, regions))
    assert [m["topicsExcludePattern"] for m in got["spec"]["mirrors"]] == [want] * 3
    assert [m["source"]["alias"] for m in got["spec"]["mirrors"]] == [
        "ap-south-1",
        "eu-central-1",
        "eu-west-1",
    ]


EXPECTED_FLOWS_INTO_AP_SOUTH_FROM_US = """\
SOURCE     TARGET      TOPIC                                    CLASS      REPLICATED  BLOCKED
us-east-1  ap-south-1  checkout.order-placed.<MARKET>           personal   IN          BR(allowed: EU, US) DE(allowed: EU) NL(allowed: EU) US(allowed: EU, US)
us-east-1  ap-south-1  checkout.payment-captured.<MARKET>       payment    IN          BR(allowed: EU, US) DE(allowed: EU) NL(allowed: EU) US(allowed: EU, US)
us-east-1  ap-south-1  checkout.fulfillment-requested.<MARKET>  personal   IN          BR(allowed: EU, US) DE(allowed: EU) NL(allowed: EU) US(allowed: EU, US)
us-east-1  ap-south-1  checkout.customers.<MARKET>              personal   IN          BR(allowed: EU, US) DE(allowed: EU) NL(allowed: EU) US(allowed: EU, US)
us-east-1  ap-south-1  checkout.dlq.payment-capture-failed      payment    -           all (local only)
us-east-1  ap-south-1  checkout.dlq.reservation-expired         personal   -           all (local only)
us-east-1  ap-south-1  checkout.stock-deltas                    aggregate  all         -
us-east-1  ap-south-1  checkout.inventory-divergence            aggregate  all         -
"""  # noqa: E501


def test_flows_table_exact() -> None:
    rows = [
        r for r in flows.flow_rows(fleet()) if (r.source, r.target) == ("us-east-1", "ap-south-1")
    ]
    assert flows.table(rows) == EXPECTED_FLOWS_INTO_AP_SOUTH_FROM_US
    every = flows.flow_rows(fleet())
    assert len(every) == 12 * len(classification.TOPICS)  # 4 regions, full mesh
    assert flows.table([]).splitlines()[1].startswith("(no replication flows")


def test_flows_cli() -> None:
    proc = subprocess.run(
        [str(BIN / "checkout-operator"), "flows", "-f", str(FLEET_FILE), "--region", "ap-south-1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == list(flows.HEADER)
    assert len(lines) == 1 + 6 * len(classification.TOPICS)  # 3 flows in, 3 out
    bad = subprocess.run(
        [str(BIN / "checkout-operator"), "flows", "-f", str(FLEET_FILE), "--region", "mars-1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("--region mars-1: no such region in the input")
    assert "Traceback" not in bad.stderr


def test_lag_is_measured_on_the_replicated_topics_only() -> None:
    from checkout_operator.replication import offsets

    regions = fleet()
    patterns = mirrormaker.effective_topic_patterns(by_name("us-east-1"), regions)
    topics = [*SAMPLE_TOPICS, "checkout.orders-1a2b3c", "mm2-offsets.eu-west-1.internal"]
    assert offsets.replicated_topics(topics, patterns) == sorted(
        [
            "checkout.customers.BR",
            "checkout.customers.US",
            "checkout.fulfillment-requested.BR",
            "checkout.fulfillment-requested.US",
            "checkout.inventory-divergence",
            "checkout.order-placed.BR",
            "checkout.order-placed.US",
            "checkout.orders-1a2b3c",
            "checkout.payment-captured.BR",
            "checkout.payment-captured.US",
            "checkout.stock-deltas",
        ]
    )
