"""Patterns of the identifiers clients choose (SKUs, checkout ids, refund ids), shared by every
service so that a fix reaches all of them.

Each may hold dots, but never be made of dots only: ``.`` and ``..`` are URL dot segments, and
an HTTP client resolves them (``/v1/carts/C/items/..`` becomes ``/v1/carts/C``, so a forwarded
"remove this item" would delete the whole cart). The patterns carry no look-ahead (pydantic's
regex engine has none): at least one character must not be a dot.
"""

from __future__ import annotations

from typing import Final

SKU: Final = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"
"""Letters, digits, ``.``, ``_``, ``-``; not only dots."""
ID: Final = r"^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
"""A checkout or refund id: as :data:`SKU`, plus ``:``."""
