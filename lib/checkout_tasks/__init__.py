"""Guarded background tasks: one way to run every background loop of the operator and services.

A background loop started with a bare ``asyncio.create_task`` dies silently on its first
unexpected exception (the error surfaces, if ever, as "Task exception was never retrieved" at
garbage collection) or, where the loop catches everything itself, retries in a hot loop. Each
loop used to pick its own policy. Here one helper does it for all:

* every task has a **name** (in logs and in ``asyncio.Task.get_name()``);
* a crash is **logged** with its traceback and, by the task's :class:`Policy`, the task is
  **restarted** after an exponential **backoff with jitter** (reset once a run lasted
  ``reset_after`` seconds), or it **stops** (one-shot jobs);
* exceptions the policy names **permanent** (a configuration error, say) are logged and end
  the task at once: retrying would only repeat them; the error is kept on the handle;
* a loop that must never end (``finishable=False``) is restarted when it returns;
* cancellation is shutdown: :meth:`Guarded.stop` and :meth:`Supervisor.aclose` cancel and wait.

The package is plain asyncio with no other dependency, so that both ``checkout_operator`` and
``checkout_services`` may use it (neither imports the other), and the Kubernetes client
``checkout_kube`` too: its :class:`Backoff` (with :class:`Retries`, a retry loop's state) is
the one backoff of the code base.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "FULL_JITTER",
    "ONCE",
    "RESTART",
    "Backoff",
    "Guarded",
    "Policy",
    "Retries",
    "Supervisor",
    "start",
]

Factory = Callable[[], Awaitable[object]]
"""Makes a fresh coroutine for each run (a coroutine object can be awaited only once)."""
Sleep = Callable[[float], Awaitable[object]]

_default_logger = logging.getLogger("checkout_tasks")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``initial * factor**attempt`` capped at ``maximum``,
    then scaled by a random factor in ``[1 - jitter, 1]`` (many replicas restarting at once
    do not retry in step; ``jitter=1`` is "full jitter"), and never below ``floor``.

    The one backoff of the code base: the guarded tasks' restarts, and through
    :class:`Retries` every retry loop (the Kubernetes client's requests and watches, the
    services' lease keeper)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    reset_after: float = 30.0
    """A run that lasted this long counts as healthy: the next crash starts from ``initial``."""
    floor: float = 0.0
    """The least delay: a retry loop never spins, whatever the random draw."""

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("backoff needs 0 <= initial <= maximum and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction in [0, 1]")
        if not 0 <= self.floor <= self.maximum:
            raise ValueError("backoff needs 0 <= floor <= maximum")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The pause before restart number ``attempt`` (0-based)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return max(self.floor, base * (1.0 - self.jitter * rng.random()))

    def delays(self, rng: random.Random) -> Iterator[float]:
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1


FULL_JITTER = Backoff(jitter=1.0, floor=0.05)
"""For clients that failed together (a restarted apiserver's watchers, say): a delay anywhere
up to the ceiling, at least 50 ms."""


class Retries:
    """One retry loop's state on a :class:`Backoff`: ``next()`` is the delay after one more
    failure, ``reset()`` after a success, ``await sleep()`` sleeps the next delay."""

    def __init__(
        self,
        backoff: Backoff = FULL_JITTER,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.backoff = backoff
        self.failures = 0
        self._rng = rng or random.Random()
        self._sleep = sleep

    def next(self) -> float:
        delay = self.backoff.delay(self.failures, self._rng)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    async def sleep(self) -> float:
        """Sleep the next delay; returns it."""
        delay = self.next()
        await self._sleep(delay)
        return delay


@dataclass(frozen=True)
class Policy:
    """What a guarded task does when its coroutine raises or returns."""

    restart: bool = True
    """On an unexpected exception: restart after a backoff (True) or log and stop (False)."""
    permanent: tuple[type[BaseException], ...] = ()
    """Exceptions no retry can cure: logged, the task stops, the error stays on the handle."""
    finishable: bool = True
    """False: the coroutine is a loop that must never return; a return is restarted too."""
    backoff: Backoff = field(default_factory=Backoff)


RESTART = Policy()
"""A long-running loop: restart on a crash, after a backoff."""
ONCE = Policy(restart=False)
"""A one-shot job: a crash is logged and ends it."""


class Guarded:
    """A handle on one guarded task."""

    def __init__(
        self,
        name: str,
        factory: Factory,
        policy: Policy,
        logger: logging.Logger,
        sleep: Sleep,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.policy = policy
        self.restarts = 0
        """How often the coroutine was started again after a crash or an unexpected return."""
        self.failures = 0
        self.error: BaseException | None = None
        """The last exception of a run (the permanent one, if that ended the task)."""
        self._factory = factory
        self._logger = logger
        self._sleep = sleep
        self._rng = rng
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._guard(), name=name
        )

    def done(self) -> bool:
        return self.task.done()

    def cancel(self) -> None:
        self.task.cancel()

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (a no-op when it already has)."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def wait(self) -> None:
        """Until the task ends on its own (a finished one-shot job, a permanent error)."""
        await asyncio.shield(self.task)

    async def _guard(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            began = loop.time()
            try:
                await self._factory()
            except asyncio.CancelledError:
                raise
            except self.policy.permanent as exc:
                self.failures += 1
                self.error = exc
                self._logger.error(
                    "task %s stopped on a permanent error: %s", self.name, exc, exc_info=exc
                )
                return
            except Exception as exc:
                self.failures += 1
                self.error = exc
                if not self.policy.restart:
                    self._logger.error("task %s failed", self.name, exc_info=exc)
                    return
                why = "crashed"
            else:
                if self.policy.finishable:
                    return
                why = "ended unexpectedly"
            if loop.time() - began >= self.policy.backoff.reset_after:
                attempt = 0
            pause = self.policy.backoff.delay(attempt, self._rng)
            attempt += 1
            self._logger.warning(
                "task %s %s; restarting in %.2f s (attempt %d)",
                self.name,
                why,
                pause,
                attempt,
                exc_info=self.error if why == "crashed" else None,
            )
            await self._sleep(pause)
            self.restarts += 1


def start(
    name: str,
    factory: Factory,
    *,
    policy: Policy = RESTART,
    logger: logging.Logger | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Guarded:
    """Run ``factory()`` as a guarded background task (in the running event loop)."""
    return Guarded(name, factory, policy, logger or _default_logger, sleep, rng or random.Random())


class Supervisor:
    """Guarded tasks by name, cancelled together on shutdown.

    Starting a name that is still running replaces (cancels) the old task; finished tasks are
    forgotten as they end.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._logger = logger or _default_logger
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._tasks: dict[str, Guarded] = {}

    def start(self, name: str, factory: Factory, *, policy: Policy = RESTART) -> Guarded:
        old = self._tasks.pop(name, None)
        if old is not None:
            old.cancel()
        handle = Guarded(name, factory, policy, self._logger, self._sleep, self._rng)
        self._tasks[name] = handle
        handle.task.add_done_callback(functools.partial(self._forget, handle))
        return handle

    def _forget(self, handle: Guarded, _task: object = None) -> None:
        if self._tasks.get(handle.name) is handle:
            del self._tasks[handle.name]

    def get(self, name: str) -> Guarded | None:
        """The running task of that name (None once it has ended)."""
        handle = self._tasks.get(name)
        return handle if handle is not None and not handle.done() else None

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self, name: str) -> None:
        handle = self._tasks.pop(name, None)
        if handle is not None:
            handle.cancel()

    async def drain(self) -> None:
        """Until every task running now or started meanwhile has ended on its own."""
        while self._tasks:
            await asyncio.gather(
                *(asyncio.shield(h.task) for h in list(self._tasks.values())),
                return_exceptions=True,
            )

    async def aclose(self) -> None:
        """Cancel every task and wait for them to end."""
        handles = list(self._tasks.values())
        self._tasks.clear()
        for handle in handles:
            handle.cancel()
        for handle in handles:
            with contextlib.suppress(asyncio.CancelledError):
                await handle.task
