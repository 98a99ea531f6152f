"""Fixtures of the real-Kafka replication tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checkout_stack.components.kafka import MirrorMaker


@pytest.fixture
def mm2s() -> Iterator[list[MirrorMaker]]:
    """The MirrorMaker 2 processes a test starts (append them): stopped at its end."""
    started: list[MirrorMaker] = []
    yield started
    for mm in started:
        mm.stop()
