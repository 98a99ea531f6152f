"""Fixtures of the gateway tests: the payments and services harnesses are reused (PSP
simulator, payments and the domain services as real processes)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for sub in ("payments", "services", "gateway"):
    if str(_TESTS / sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / sub))
