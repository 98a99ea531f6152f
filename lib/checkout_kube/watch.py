"""List-then-watch, the informer loop: every consumer of a watch goes through :func:`list_watch`.

What it does (client-go's reflector, kopf's watcher): list (remembering the list's
resourceVersion), watch from there with bookmarks, resume each new watch from the last
resourceVersion seen (event or ``BOOKMARK``); on ``410 Gone`` (that version is too old) list
again, and report what changed meanwhile as ``ADDED`` / ``MODIFIED`` / ``DELETED``; on any other
failure (an ERROR event, whose Status is logged and passed to ``on_error``; a broken stream; an
unreadable line; a failed list) wait a jittered exponential backoff and carry on. A watch that
ends at once without any event also waits, so a server that keeps closing the stream never
makes it spin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from checkout_kube import errors
from checkout_kube.client import KubeClient, Obj
from checkout_tasks import Retries

logger = logging.getLogger("checkout_kube.watch")

QUICK_END: float = 1.0
"""Seconds: a watch that ends sooner than this without an event counts as a failure."""


def _key(obj: Mapping[str, object]) -> tuple[str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version(obj: Mapping[str, object]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, Mapping) else ""


async def list_watch(
    client: KubeClient,
    api_version: str,
    kind: str,
    namespace: str | None = None,
    labels: Mapping[str, str] | str | None = None,
    *,
    timeout_seconds: int = 60,
    backoff: Retries | None = None,
    on_error: Callable[[errors.KubeError], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[tuple[str, Obj]]:
    """``(type, object)`` for every change of the matching objects, forever (cancel to stop).

    The first list reports every object as ``ADDED``; a relist reports only the differences
    from what was reported before (objects whose resourceVersion did not change stay silent).
    """
    backoff = backoff or Retries()
    known: dict[tuple[str, str], str] = {}
    version = ""
    while True:
        if not version:
            try:
                items, version = await client.list_versioned(api_version, kind, namespace, labels)
            except errors.KubeError as exc:
                _failed(exc, f"list {kind}", on_error)
                await backoff.sleep()
                continue
            seen: dict[tuple[str, str], str] = {}
            for obj in items:
                key, rv = _key(obj), _version(obj)
                seen[key] = rv
                if key not in known:
                    yield "ADDED", obj
                elif known[key] != rv:
                    yield "MODIFIED", obj
            for key in known.keys() - seen.keys():
                namespace_, name = key
                gone = {"metadata": {"namespace": namespace_ or None, "name": name}}
                yield "DELETED", {"apiVersion": api_version, "kind": kind, **gone}
            known = seen
        started = clock()
        events = 0
        try:
            async for type_, obj in client.watch(
                api_version,
                kind,
                namespace,
                labels,
                timeout_seconds=timeout_seconds,
                resource_version=version,
            ):
                events += 1
                version = _version(obj) or version
                if type_ == "BOOKMARK":
                    continue
                if type_ == "DELETED":
                    known.pop(_key(obj), None)
                else:
                    known[_key(obj)] = _version(obj)
                yield type_, obj
        except errors.Gone as exc:
            logger.info("watch of %s: %s; listing again", kind, exc)
            version = ""
            if events == 0:
                await backoff.sleep()  # Gone right after a list: do not spin on it
            continue
        except errors.KubeError as exc:
            _failed(exc, f"watch of {kind}", on_error)
            await backoff.sleep()
            continue
        if events == 0 and clock() - started < QUICK_END:
            await backoff.sleep()
        else:
            backoff.reset()


def _failed(
    exc: errors.KubeError, what: str, on_error: Callable[[errors.KubeError], None] | None
) -> None:
    logger.warning("%s failed: %s (retrying with backoff)", what, exc)
    if on_error is not None:
        on_error(exc)
