"""PCI and PII scrubbing: card-like numbers and personal fields never reach logs, events or
traces, and a request carrying a card number is refused.

* :func:`find_pan` spots a primary account number as the application would read it
  (:mod:`pan`: NFKC-normalised, 13 to 19 digits grouped any common way, Luhn-valid, starting
  like a card: 2-6). A 13-digit epoch in milliseconds starts with 1 and is left alone.
* :func:`scrub_text` masks every PAN (``[card ****1234]``) and e-mail address (``[email]``) in a
  string; :func:`scrub_value` does it through dicts and lists and also masks the values of
  personal fields (``classification.PERSONAL_FIELDS``) unless told to keep them.
* :func:`scrub_event` is what the outbox applies to every event before it is stored: PANs and
  free-text e-mails go; personal fields stay only in events whose topic family is personal
  (they are the reason the topic exists and its residency is enforced).
* :func:`install_logging` masks every log record of the process at creation (a log record
  factory, so it covers every logger and handler, uvicorn's too).
* :class:`RefuseCardNumbers` is an ASGI middleware: a request with a card-like number in its
  path, query (decoded), headers or JSON body (parsed: escapes decoded, numbers and keys too)
  gets a 422 problem+json naming the field (never echoing the value); payments carry PSP
  tokens only. A body nested deeper than :data:`pan.MAX_DEPTH` gets 400. What the services
  write themselves is never refused: the principal they sign (:data:`VOUCHED_HEADERS`) passes
  when its signature verifies, and the ids they make (request, cart, quote ids: ``ids.new``)
  are shaped so that they cannot hold a card number.
* :func:`require_no_pan`: the same check where a client-chosen string becomes an identifier
  (a Temporal workflow id, a Kafka / outbox key, a ``customers`` row).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote_plus

from checkout_contract import classification
from checkout_services.common import errors, pan, principal
from checkout_services.common.pan import find_pan, is_pan, luhn_ok

__all__ = ["find_pan", "is_pan", "luhn_ok"]

EMAIL: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
REDACTED: Final = "[redacted]"
EMAIL_MASK: Final = "[email]"

PROBLEM_TYPE: Final = "https://checkout-operator.io/problems/card-number-refused"


UNSCANNED_HEADERS: Final = frozenset(
    {b"authorization", b"cookie", b"traceparent", b"tracestate", b"x-checkout-principal-sig"}
)
"""Headers not searched for card numbers: credentials, hex trace ids and (any header named
``*signature`` / ``*-sig``) HMAC signatures: never logged or stored, and their hex digit runs
would be false alarms (a webhook refused as a card number)."""


VOUCHED_HEADERS: Final = frozenset({principal.PRINCIPAL_HEADER_RAW})
"""Headers the gateway (or a service calling another) writes itself and signs: the principal,
the subject of the token the gateway verified, which a client does not write. A request whose
signature verifies under the service's key (:func:`principal.vouched`) is not refused for
them: an identity provider may well number its subjects like cards. On any other request they
are scanned like every header (a client sending them around the gateway)."""


def _scanned(name: bytes) -> bool:
    return name not in UNSCANNED_HEADERS and not name.endswith((b"signature", b"-sig"))


class CardNumberRefused(errors.ProblemError):
    status, slug, title = 422, "card-number-refused", "Card numbers are not accepted"


def require_no_pan(value: str, field: str) -> str:
    """``value`` unchanged, or :class:`CardNumberRefused` naming ``field`` (not the value)."""
    if find_pan(value):
        raise CardNumberRefused(
            f"{field} looks like a card number: it would become an identifier", field=field
        )
    return value


def scrub_text(text: str) -> str:
    """``text`` with every card-like number and e-mail address masked."""
    if not text:
        return text
    out = pan.mask(text)
    return EMAIL.sub(EMAIL_MASK, out) if "@" in out else out


def scrub_value(value: Any, *, keep_personal: bool = False) -> Any:
    """A copy of a JSON-like value, scrubbed; personal fields' values become ``[redacted]``
    unless ``keep_personal`` (then only card numbers go from them)."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return REDACTED if pan.number_is_pan(value) else value
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
        return pan.mask(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return REDACTED if pan.number_is_pan(value) else value
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
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return 0 if pan.number_is_pan(value) else value
    if isinstance(value, (bytes, bytearray)):
        return scrub_text(bytes(value).decode("utf-8", "replace")).encode()
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
    return pan.pan_field(value, path)


Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class RefuseCardNumbers:
    """ASGI middleware: 422 problem+json for a request holding a card-like number where the
    application will read it (path, decoded query, headers, parsed JSON body); 400 for a JSON
    body nested too deeply to check (or to parse) safely.

    ``skip_prefixes``: paths whose bodies come from a payment provider, not a shopper (signed
    webhooks): Adyen's pspReference is 16 digits and one in twenty looks like a card number.
    The headers of :data:`VOUCHED_HEADERS` pass on a request whose principal signature
    verifies under the app's ``gateway_key`` (checked only when one of them holds a number)."""

    def __init__(self, app: Callable[..., Any], skip_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.skip_prefixes = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (self.skip_prefixes and path.startswith(self.skip_prefixes)):
            await self.app(scope, receive, send)
            return
        field = _head_pan_field(scope, skip=VOUCHED_HEADERS)
        if field is not None:
            await self._refuse(scope, send, field)
            return
        # checked once the body is read (the signature covers it), and only if one holds digits
        vouched_field = _head_pan_field(scope, only=VOUCHED_HEADERS, path=False)
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
        if body:
            try:
                field = _body_pan_field(body)
            except pan.TooDeep as exc:
                await _answer(scope, send, 400, "body-too-deep", "Body nested too deeply", str(exc))
                return
            if field is not None:
                await self._refuse(scope, send, field)
                return
        if vouched_field is not None and not principal.vouched(_gateway_key(scope), scope, body):
            await self._refuse(scope, send, vouched_field)
            return
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, send: Send, field: str) -> None:
        detail = (
            f"{field} looks like a card number: send a PSP payment token instead "
            "(the checkout never receives card data)"
        )
        await _answer(scope, send, 422, "", "Card numbers are not accepted", detail, field=field)


def _gateway_key(scope: Scope) -> bytes | None:
    """The key the app checks principal signatures with (``principal.install``), if any."""
    key = getattr(getattr(scope.get("app"), "state", None), "gateway_key", None)
    return key if isinstance(key, bytes) else None


def _head_pan_field(
    scope: Scope,
    *,
    skip: frozenset[bytes] = frozenset(),
    only: frozenset[bytes] | None = None,
    path: bool = True,
) -> str | None:
    """Where a card number sits in the request line (unless not ``path``) or the headers
    (those in ``only`` if given, none in ``skip``), or None."""
    if path:
        if find_pan(scope.get("path", "")):
            return "path"
        query = scope.get("query_string", b"")
        if query:
            found = pan.query_pan_field(query.decode("latin-1"))
            if found is not None:
                return found
    for name, value in scope.get("headers", ()):
        if not _scanned(name) or name in skip or (only is not None and name not in only):
            continue
        # the app reads headers as latin-1; a UTF-8 reader (a log shipper) would see more
        if find_pan(value.decode("latin-1")) or find_pan(value.decode("utf-8", "replace")):
            return f"header.{name.decode('latin-1')}"
    return None


async def _answer(
    scope: Scope, send: Send, status: int, slug: str, title: str, detail: str, **extra: Any
) -> None:
    problem = {
        "type": f"{errors.TYPE_ROOT}common/{slug}" if slug else PROBLEM_TYPE,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scrub_text(scope.get("path", "")),
        **extra,
    }
    payload = json.dumps(problem).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", errors.PROBLEM.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _body_pan_field(body: bytes) -> str | None:
    """The field of a card number in the body as the app will parse it; :class:`pan.TooDeep`
    when it nests too deeply for that."""
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise pan.TooDeep(f"the JSON body nests deeper than {pan.MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace")
        return "body" if find_pan(text) or find_pan(unquote_plus(text)) else None
    return pan.pan_field(parsed)


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
