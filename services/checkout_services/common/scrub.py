"""PCI and PII scrubbing: card-like numbers and personal fields never reach logs, events or
traces, and a request carrying a card number is refused.

* :func:`find_pan` spots a primary account number: 13 to 19 digits (spaces or dashes allowed
  between them) that pass the Luhn check and start like a card (2-6: Mastercard 2-series, Amex,
  Visa, Mastercard, Discover/UnionPay/RuPay...). A 13-digit epoch in milliseconds starts with 1
  and is left alone.
* :func:`scrub_text` masks every PAN (``[card ****1234]``) and e-mail address (``[email]``) in a
  string; :func:`scrub_value` does it through dicts and lists and also masks the values of
  personal fields (``classification.PERSONAL_FIELDS``) unless told to keep them.
* :func:`scrub_event` is what the outbox applies to every event before it is stored: PANs and
  free-text e-mails go; personal fields stay only in events whose topic family is personal
  (they are the reason the topic exists and its residency is enforced).
* :func:`install_logging` masks every log record of the process at creation (a log record
  factory, so it covers every logger and handler, uvicorn's too).
* :class:`RefuseCardNumbers` is an ASGI middleware: a JSON body with a card-like number in any
  field gets a 422 problem+json naming the field (never echoing the value); payments carry PSP
  tokens only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from checkout_services.common import classification

PAN_CANDIDATE: Final = re.compile(r"(?<![\d])[2-6](?:[ -]?\d){12,18}(?![\d])")
EMAIL: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_BYTES_CANDIDATE: Final = re.compile(rb"[2-6](?:[ -]?\d){12,18}")
REDACTED: Final = "[redacted]"
EMAIL_MASK: Final = "[email]"

PROBLEM_TYPE: Final = "https://checkout-operator.io/problems/card-number-refused"


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


def _digits(candidate: str) -> str:
    return candidate.replace(" ", "").replace("-", "")


def is_pan(value: str) -> bool:
    """The whole string is a card number (digits, optionally grouped by spaces or dashes)."""
    m = PAN_CANDIDATE.fullmatch(value.strip())
    return m is not None and luhn_ok(_digits(m.group(0)))


def find_pan(text: str) -> str | None:
    """The first card-like number in ``text`` (as written), or None."""
    for m in PAN_CANDIDATE.finditer(text):
        digits = _digits(m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return m.group(0)
    return None


def _mask_pan(m: re.Match[str]) -> str:
    digits = _digits(m.group(0))
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return f"[card ****{digits[-4:]}]"
    return m.group(0)


def scrub_text(text: str) -> str:
    """``text`` with every card-like number and e-mail address masked."""
    if not text:
        return text
    out = PAN_CANDIDATE.sub(_mask_pan, text) if any(c.isdigit() for c in text) else text
    return EMAIL.sub(EMAIL_MASK, out) if "@" in out else out


def scrub_value(value: Any, *, keep_personal: bool = False) -> Any:
    """A copy of a JSON-like value, scrubbed; personal fields' values become ``[redacted]``
    unless ``keep_personal`` (then only card numbers go from them)."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return REDACTED if find_pan(str(value)) else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if classification.is_personal_field(str(k)):
                if keep_personal:
                    out[k] = _pan_only(v)
                else:
                    out[k] = REDACTED if v not in (None, "") else v
            else:
                out[k] = scrub_value(v, keep_personal=keep_personal)
        return out
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, keep_personal=keep_personal) for v in value]
    return scrub_text(str(value))


def _pan_only(value: Any) -> Any:
    """Mask card numbers (not e-mails) inside a personal field kept on purpose."""
    if isinstance(value, str):
        return PAN_CANDIDATE.sub(_mask_pan, value)
    if isinstance(value, Mapping):
        return {k: _pan_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_pan_only(v) for v in value]
    return value


def scrub_event(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The event payload as it may be stored and published (see the module doc)."""
    try:
        personal = classification.of_event(event_type).data_class == "personal"
    except classification.ClassificationError:
        personal = False
    scrubbed: dict[str, Any] = scrub_value(dict(data), keep_personal=personal)
    return scrubbed


def scrub_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Span or metric attributes (traces): never personal, never a card number."""
    out: dict[str, Any] = scrub_value(dict(attributes))
    return out


# -- logging ------------------------------------------------------------------------------------

_installed: list[Callable[..., logging.LogRecord]] = []


def _scrub_arg(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 if find_pan(str(value)) else value
    if isinstance(value, (bytes, bytearray)):
        return scrub_text(bytes(value).decode("utf-8", "replace")).encode()
    if isinstance(value, (float, bool)) or value is None:
        return value
    text = str(value)
    return scrub_text(text) if (find_pan(text) or EMAIL.search(text)) else value


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the message and each argument (kept apart: formatters such as uvicorn's access
    log unpack ``record.args``), and a traceback."""
    if isinstance(record.msg, str):
        record.msg = scrub_text(record.msg)
    elif record.msg is not None and not isinstance(record.msg, (int, float)):
        record.msg = scrub_text(str(record.msg))
    if isinstance(record.args, Mapping):
        record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_scrub_arg(a) for a in record.args)
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = scrub_text(record.stack_info)
    return record


def install_logging() -> None:
    """Scrub every log record this process creates (idempotent)."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(previous(*args, **kwargs))

    _installed.append(previous)
    logging.setLogRecordFactory(factory)


def uninstall_logging() -> None:
    """Restore the record factory found by :func:`install_logging` (tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())


class ScrubFilter(logging.Filter):
    """The same masking as a ``logging.Filter`` (for a handler configured elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


# -- requests -----------------------------------------------------------------------------------


def pan_field(value: Any, path: str = "") -> str | None:
    """The path (``payment.card.number``, ``lines[0].sku``) of the first card-like value."""
    if isinstance(value, str):
        return (path or "body") if find_pan(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return (path or "body") if find_pan(str(value)) else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = pan_field(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = pan_field(v, f"{path}[{i}]")
            if found:
                return found
    return None


Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class RefuseCardNumbers:
    """ASGI middleware: 422 problem+json for a JSON body (or query string) holding a card-like
    number. Cheap on the hot path: the raw bytes are searched first, JSON is parsed only when
    a Luhn-valid candidate is there.

    ``skip_prefixes``: paths whose bodies come from a payment provider, not a shopper (signed
    webhooks): Adyen's pspReference is 16 digits and one in twenty looks like a card number."""

    def __init__(self, app: Callable[..., Any], skip_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.skip_prefixes = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (self.skip_prefixes and path.startswith(self.skip_prefixes)):
            await self.app(scope, receive, send)
            return
        if any(c.isdigit() for c in path) and find_pan(path):
            await self._refuse(scope, send, "path")
            return
        query = scope.get("query_string", b"")
        if query and _BYTES_CANDIDATE.search(query):
            text = query.decode("latin-1")
            if find_pan(text):
                name = next((p.split("=", 1)[0] for p in text.split("&") if find_pan(p)), "query")
                await self._refuse(scope, send, f"query.{name}")
                return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], receive, message), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _BYTES_CANDIDATE.search(body):
            field = _body_pan_field(body)
            if field is not None:
                await self._refuse(scope, send, field)
                return
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, send: Send, field: str) -> None:
        problem = {
            "type": PROBLEM_TYPE,
            "title": "Card numbers are not accepted",
            "status": 422,
            "detail": f"{field} looks like a card number: send a PSP payment token instead "
            "(the checkout never receives card data)",
            "instance": scrub_text(scope.get("path", "")),
            "field": field,
        }
        payload = json.dumps(problem).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _body_pan_field(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "body" if find_pan(body.decode("latin-1")) else None
    return pan_field(parsed)


def _replay(chunks: list[bytes], upstream: Receive, first: Any = None) -> Receive:
    """The buffered body once, then whatever the server sends next (e.g. the disconnect)."""
    queue: list[Any] = [{"type": "http.request", "body": c, "more_body": False} for c in chunks]
    if first is not None:
        queue.append(first)

    async def receive() -> Any:
        if queue:
            return queue.pop(0)
        return await upstream()

    return receive
