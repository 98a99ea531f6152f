"""Deduplication of replicated events by id: the in-memory window and the Deduper."""

from __future__ import annotations

import pytest

from checkout_services.common.dedupe import Deduper, MemoryWindow


async def test_each_id_is_applied_once() -> None:
    dedupe = Deduper(window=10)
    applied: list[str] = []
    for event_id in ["a", "b", "a", "c", "b", "a"]:

        async def handler(event_id: str = event_id) -> None:
            applied.append(event_id)

        await dedupe.apply_once(event_id, handler)
    assert applied == ["a", "b", "c"]
    assert (dedupe.stats.applied, dedupe.stats.duplicates) == (3, 3)


async def test_a_failed_handler_leaves_the_id_free_for_a_redelivery() -> None:
    dedupe = Deduper(window=10)
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("db down")

    with pytest.raises(RuntimeError):
        await dedupe.apply_once("x", flaky)
    assert await dedupe.apply_once("x", flaky) is True
    assert await dedupe.apply_once("x", flaky) is False
    assert calls == 2


async def test_window_forgets_the_oldest_ids_beyond_capacity() -> None:
    window = MemoryWindow(capacity=3)
    for event_id in "abcd":
        assert await window.claim(event_id)
        await window.done(event_id)
    assert len(window) == 3
    assert await window.claim("a") is True  # forgotten: a durable store must back long windows
    assert await window.claim("d") is False


async def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MemoryWindow(capacity=0)

    async def noop() -> None:
        return None

    with pytest.raises(ValueError, match="without an id"):
        await Deduper().apply_once("", noop)
