"""What the demo takes as each market's writer (checkout_demo.writers.Published), pure parts."""

from __future__ import annotations

from checkout_demo.writers import Published


def routing(*markets: tuple[str, str, int, str]) -> dict[str, object]:
    return {
        "markets": [{"market": m, "writer": w, "epoch": e, "state": s} for m, w, e, s in markets]
    }


def test_routing_serving_needs_every_running_region_to_follow_the_writer() -> None:
    down: set[str] = set()
    seen = Published(["eu", "us"], down)
    seen.record_routing(1.0, "eu", routing(("DE", "eu", 2, "Serving")))
    assert not seen.routing_serving("DE", "eu", 2)  # us has not shown it yet
    seen.record_routing(1.5, "us", routing(("DE", "eu", 1, "Serving")))
    assert not seen.routing_serving("DE", "eu", 2)  # us still at an older epoch
    assert seen.routing_serving("DE", "eu", 1)
    down.add("us")  # a region the scenario took down is not waited for
    assert seen.routing_serving("DE", "eu", 2)
    seen.record_routing(2.0, "eu", routing(("DE", "eu", 2, "Fencing")))
    assert not seen.routing_serving("DE", "eu", 2)
    # one event per change, none for a repeat
    seen.record_routing(2.5, "eu", routing(("DE", "eu", 2, "Fencing")))
    assert [(e["region"], e["epoch"], e["state"]) for e in seen.routing_events] == [
        ("eu", 2, "Serving"), ("us", 1, "Serving"), ("eu", 2, "Fencing"),
    ]  # fmt: skip


def test_serving_from_needs_health_status_and_routing() -> None:
    seen = Published(["eu"], set())
    seen.record_routing(1.0, "eu", routing(("DE", "eu", 1, "Serving")))
    seen.writers["DE"], seen.epochs["DE"], seen.states["DE"] = "eu", 1, "Serving"
    assert not seen.serving_from({"DE": "eu"})  # no health yet
    seen.region_status["eu"] = {"health": {"state": "Healthy"}}
    assert seen.serving_from({"DE": "eu"})
    assert not seen.serving_from({"DE": "eu", "NL": "eu"})  # NL not published
    seen.states["DE"] = "Down"
    assert not seen.serving_from({"DE": "eu"})
