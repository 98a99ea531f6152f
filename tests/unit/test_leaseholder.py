"""The holder's side of a write lease, pure (checkout_services.common.leaseholder)."""

from __future__ import annotations

import re

from checkout_contract.lease import KEEPER, KeeperRecord, WriteLease
from checkout_services.common import leaseholder as holder

ME = KEEPER + "orders.pod-a.1.1"
SIBLING = KEEPER + "payments.pod-b.1.1"
OTHER_REGION = KEEPER + "orders.pod-c.1.1"


def lease(**kw: object) -> WriteLease:
    base: dict[str, object] = {
        "market": "DE",
        "holder": "eu-west-1",
        "epoch": 4,
        "duration": 10.0,
        "renewed_at": 1000.0,
    }
    base.update(kw)
    return WriteLease(**base)  # type: ignore[arg-type]


def test_keeper_id_is_a_valid_annotation_name_part_even_when_long() -> None:
    short = holder.keeper_id("orders", pod="Pod_A", pid=7)
    assert re.fullmatch(r"orders\.pod-a\.7\.\d+", short)
    long = holder.keeper_id("orders", pod="p" * 200, pid=7)
    assert len("keeper." + long) <= 63
    assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", long)
    assert long != holder.keeper_id("orders", pod="p" * 200, pid=7)  # n counts the keepers


def test_keeper_notes_record_this_keeper_and_remove_stale_or_unreadable_ones() -> None:
    now = 2000.0
    fresh = KeeperRecord(SIBLING, "eu-west-1", now - 5)
    stale = KeeperRecord(OTHER_REGION, "eu-west-1", now - 1000)
    notes = holder.keeper_notes(
        lease(keepers={SIBLING: fresh, OTHER_REGION: stale, KEEPER + "x": None}),
        ME, "eu-west-1", now, stopped=4,
    )  # fmt: skip
    assert set(notes) == {ME, OTHER_REGION, KEEPER + "x"}
    assert notes[OTHER_REGION] is None
    assert notes[KEEPER + "x"] is None
    mine = KeeperRecord.parse(ME, str(notes[ME]))
    assert mine is not None
    assert (mine.region, mine.stopped) == ("eu-west-1", 4)


def test_siblings_busy_are_recent_keepers_of_the_holder_that_have_not_stopped() -> None:
    now = 2000.0
    keepers = {
        ME: KeeperRecord(ME, "eu-west-1", now),
        SIBLING: KeeperRecord(SIBLING, "eu-west-1", now - 3),
        KEEPER + "stopped": KeeperRecord(KEEPER + "stopped", "eu-west-1", now, stopped=4),
        KEEPER + "silent": KeeperRecord(KEEPER + "silent", "eu-west-1", now - 20),
        KEEPER + "elsewhere": KeeperRecord(KEEPER + "elsewhere", "us-east-1", now),
    }
    assert holder.siblings_busy(lease(keepers=keepers), ME, now, skew=1.0) == [SIBLING]


def test_lost_names_the_region_that_writes() -> None:
    fencing = lease(state="Fencing", fencing_to="us-east-1")
    held = holder.Held(epoch=4, valid_until=0.0, fenced=True)
    exc = holder.lost("eu-west-1", "DE", held, fencing)
    assert (exc.writer, exc.epoch) == ("us-east-1", 4)
    assert "fenced away from eu-west-1 (to us-east-1)" in str(exc)
    exc = holder.lost("us-east-1", "DE", None, lease())
    assert exc.writer == "eu-west-1"
    assert "holds no write lease for market DE; its writer is eu-west-1 (epoch 4)" in str(exc)
    exc = holder.lost("eu-west-1", "DE", holder.Held(4, 0.0), None)
    assert "could not renew" in str(exc)
    assert exc.writer == ""


def test_version_is_the_resource_version_as_a_number() -> None:
    assert holder.version(lease(resource_version="1234")) == 1234
    assert holder.version(lease(resource_version="")) == 0
