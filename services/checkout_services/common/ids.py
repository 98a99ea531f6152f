"""Identifiers: the patterns of those clients choose (SKUs, checkout ids, refund ids), shared by
every service so that a fix reaches all of them, and :func:`new` for those the services make
themselves (request ids, cart ids, quote snapshot ids).

Each chosen id may hold dots, but never be made of dots only: ``.`` and ``..`` are URL dot
segments, and an HTTP client resolves them (``/v1/carts/C/items/..`` becomes ``/v1/carts/C``,
so a forwarded "remove this item" would delete the whole cart). The patterns carry no
look-ahead (pydantic's regex engine has none): at least one character must not be a dot.

A made id travels where the card-number filter (:mod:`common.scrub`) looks: the gateway sends
its request id to the services and to a peer gateway in ``X-Request-Id``, a client sends a
cart or snapshot id back in a path. A random hex string holds a card-like number now and then
(13 to 19 digits in a row, starting with 2-6, Luhn-valid: about one ``uuid4().hex`` in a
thousand), and the filter rightly refuses it, so a made id is shaped never to hold one: 32
lowercase hex characters with a letter at each place of :data:`LETTER_AT`, i.e. at both ends
and never more than ten digits in a row, in the id or across anything it is joined to.
"""

from __future__ import annotations

import secrets
from typing import Final

SKU: Final = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"
"""Letters, digits, ``.``, ``_``, ``-``; not only dots."""
ID: Final = r"^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
"""A checkout or refund id: as :data:`SKU`, plus ``:``."""

RAW_BYTES: Final = 16
LETTER_AT: Final = (0, 11, 21, 31)
"""Places of a made id that always hold a letter ``a``-``f``: the longest digit run is ten
(a card number has 13 to 19 digits). About 122 bits stay random, as many as a UUID4's."""
MADE: Final = r"^[0-9a-f]{32}$"
"""What a made id looks like to a route (the shape of the hex ids made before, too)."""


def shaped(raw: bytes) -> str:
    """The id made from :data:`RAW_BYTES` bytes: their hex, with the character at each place
    of :data:`LETTER_AT` mapped onto ``a``-``f``."""
    if len(raw) != RAW_BYTES:
        raise ValueError(f"an id is made from {RAW_BYTES} bytes, not {len(raw)}")
    chars = list(raw.hex())
    for i in LETTER_AT:
        chars[i] = "abcdef"[int(chars[i], 16) % 6]
    return "".join(chars)


def new() -> str:
    """A fresh random id that can never look like a card number (see the module doc)."""
    return shaped(secrets.token_bytes(RAW_BYTES))
