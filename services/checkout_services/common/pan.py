"""Card numbers (PANs) as the application will see them, whatever way a client wrote them.

A scanner that looks at the bytes on the wire misses what a decoder turns into digits later:
JSON ``\\u0034`` escapes, ``%34`` or ``+``-separated digits in a query string, full-width or
other Unicode digits (U+FF14 U+FF11..., which ``int()`` and NFKC read as ``41``), digits
grouped by dots, dashes, slashes, underscores or several spaces, and a JSON number
(``4111111111111111`` or ``4.111111111111111e15``). So everything here works on the *decoded* value:

* :func:`find_pan` / :func:`contains_pan` / :func:`mask`: a string, NFKC-normalised first;
  13-19 decimal digits starting with 2-6, at most three separators between two digits, that
  pass the Luhn check. A 13-digit epoch in milliseconds starts with 1 and is left alone.
* :func:`number_is_pan`: a JSON number (an int, or a float with an integral value).
* :func:`pan_field`: the path of the first card number in a parsed JSON value, keys included,
  walked without recursion and refused past :data:`MAX_DEPTH` (:class:`TooDeep`).
* :func:`query_pan_field`: a query string decoded as the app decodes it (``+`` is a space).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

SEPARATOR: Final = r"[\s.\-+_/\\,:]"
RUN: Final = re.compile(rf"(?<!\d)\d(?:{SEPARATOR}{{0,3}}\d){{12,}}(?!\d)")
"""13 or more decimal (Unicode) digits, at most three separators between two of them."""
GROUP_BREAK: Final = re.compile(rf"{SEPARATOR}+")
MAX_DEPTH: Final = 64
"""Deepest JSON nesting accepted (the services' own bodies nest 4 deep at most)."""


class TooDeep(ValueError):
    """A JSON value nested deeper than :data:`MAX_DEPTH`."""


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def normalise(text: str) -> str:
    """What ``text`` reads as once compatibility forms are folded (full-width digits...)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def digits_of(candidate: str) -> str:
    """The ASCII digits of a candidate (Unicode decimal digits mapped to 0-9)."""
    if candidate.isascii():
        return "".join(c for c in candidate if c.isdigit())
    return "".join(str(unicodedata.decimal(c)) for c in candidate if c.isdecimal())


def _card_in_run(run: str) -> str | None:
    """The digits of a card number in a run: the whole run, or consecutive groups of it (a
    run ``1 4111 1111 1111 1111`` holds one), 13-19 digits, first digit 2-6, Luhn-valid."""
    groups = [digits_of(g) for g in GROUP_BREAK.split(run)]
    for i in range(len(groups)):
        total = 0
        for j in range(i, len(groups)):
            total += len(groups[j])
            if total > 19:
                break
            if total >= 13:
                digits = "".join(groups[i : j + 1])
                if digits[0] in "23456" and luhn_ok(digits):
                    return digits
    return None


def find_pan(text: str) -> str | None:
    """The first card-like number in ``text`` (as written after normalisation), or None."""
    if not text:
        return None
    for m in RUN.finditer(normalise(text)):
        if _card_in_run(m.group(0)):
            return m.group(0)
    return None


def contains_pan(text: str) -> bool:
    return find_pan(text) is not None


def is_pan(value: str) -> bool:
    """The whole string is a card number (digits, optionally grouped)."""
    norm = normalise(value).strip()
    m = RUN.fullmatch(norm)
    return m is not None and _card_in_run(m.group(0)) is not None


def _mask_match(m: re.Match[str]) -> str:
    digits = _card_in_run(m.group(0))
    return f"[card ****{digits[-4:]}]" if digits else m.group(0)


def mask(text: str) -> str:
    """``text`` (normalised when it holds a card number) with every card number masked."""
    if not text or find_pan(text) is None:
        return text
    return RUN.sub(_mask_match, normalise(text))


def number_is_pan(value: float) -> bool:
    """A JSON number that is a card number (``4111111111111111`` or ``4.111111111111111e15``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        if not value.is_integer() or not 1e12 <= abs(value) < 1e19:
            return False
        value = int(value)
    return find_pan(str(abs(value))) is not None


def pan_field(value: Any, path: str = "") -> str | None:
    """The path (``payment.card.number``, ``lines[0].sku``) of the first card number in a parsed
    JSON value: strings, numbers and object keys. Iterative; :class:`TooDeep` past
    :data:`MAX_DEPTH`."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TooDeep(f"the JSON value nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if find_pan(item):
                return where or "body"
        elif isinstance(item, (int, float)):
            if number_is_pan(item):
                return where or "body"
        elif isinstance(item, Mapping):
            children = []
            for k, v in item.items():
                key = str(k)
                child = f"{where}.{key}" if where else key
                if find_pan(key):
                    return f"{where}.<key>" if where else "<key>"
                children.append((v, child, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item)]))
    return None


def query_pan_field(query: str) -> str | None:
    """``query.<name>`` of the first parameter whose name or value (``%xx`` and ``+``
    decoded) holds a card number, or None."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if find_pan(name):
            return "query.<name>"
        if find_pan(value):
            return f"query.{name}"
    return None
