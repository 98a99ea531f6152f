"""Fixtures of the checkout services tests; the payments test harness is reused (PSP simulator
and payments instances as real processes)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))
