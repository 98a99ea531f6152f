"""What the report and the GameDay scenarios read of a running demo, as Protocols.

``demo.py`` drives the run and imports ``report`` and ``scenarios``; they see the run only
through these views, so neither imports ``demo`` back (no import circle), and each names
exactly what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from checkout_demo import cluster
from checkout_demo.infra import Edge, PspSim, RegionInfra
from checkout_demo.kubelet import Kubelet


@dataclass
class WriterEvent:
    t: float
    market: str
    writer: str
    epoch: int
    state: str
    source: str
    message: str = ""
    """The operator's reason (status.markets[].message), e.g. why a down market does not move."""


class RunRecord(Protocol):
    """What the report reads: the run's marks (phase -> seconds since start), timings, notes
    and the writer changes it saw."""

    @property
    def names(self) -> Sequence[str]: ...
    @property
    def marks(self) -> Mapping[str, float]: ...
    @property
    def notes(self) -> Sequence[str]: ...
    @property
    def timings(self) -> Mapping[str, float]: ...
    @property
    def writer_events(self) -> Sequence[WriterEvent]: ...
    @property
    def cpu(self) -> Mapping[str, Mapping[str, float]]: ...


class Stage(Protocol):
    """What a GameDay scenario acts on: each region's edge, kubelet and infrastructure, the
    fleet, the PSP simulator, and the set of regions it took down."""

    @property
    def edges(self) -> Mapping[str, Edge]: ...
    @property
    def kubelets(self) -> Mapping[str, Kubelet]: ...
    @property
    def infra(self) -> Mapping[str, RegionInfra]: ...
    @property
    def fleet(self) -> cluster.Fleet: ...
    @property
    def sim(self) -> PspSim | None: ...
    @property
    def down(self) -> set[str]: ...
