"""The guarded-task helper (checkout_tasks): a crash restarts the loop after an exponential,
jittered backoff and is logged; a permanent error stops it; a one-shot job is not restarted;
cancellation stops the task and the supervisor's shutdown stops them all."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

import checkout_tasks as tasks


class Sleeps:
    """Records the backoff pauses (and yields to the loop instead of sleeping them)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)


class Raises:
    """A task body that raises ``error`` on every run, and counts its runs."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1
        raise self.error


def test_backoff_grows_exponentially_capped_and_jittered() -> None:
    b = tasks.Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.5)
    rng = random.Random(7)
    got = [b.delay(n, rng) for n in range(8)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, cap in zip(got, caps, strict=True):
        assert cap * 0.5 <= delay <= cap
    assert len(set(got)) == len(got)  # jitter: no two pauses alike
    assert tasks.Backoff(jitter=0.0).delay(3, rng) == 4.0
    with pytest.raises(ValueError, match="initial <= maximum"):
        tasks.Backoff(initial=2.0, maximum=1.0)
    with pytest.raises(ValueError, match="jitter"):
        tasks.Backoff(jitter=1.5)
    with pytest.raises(ValueError, match="floor"):
        tasks.Backoff(maximum=1.0, floor=2.0)


async def test_retries_count_failures_reset_and_sleep_full_jitter_above_the_floor() -> None:
    pauses = Sleeps()
    retries = tasks.Retries(rng=random.Random(3), sleep=pauses)
    assert retries.backoff == tasks.FULL_JITTER
    got = [await retries.sleep() for _ in range(10)]
    assert got == pauses.pauses
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(10)]
    for delay, ceiling in zip(got, ceilings, strict=True):
        assert 0.05 <= delay <= ceiling  # full jitter: anywhere up to the ceiling
    assert retries.failures == 10
    retries.reset()
    assert retries.failures == 0
    assert retries.next() <= 0.5
    exact = tasks.Retries(tasks.Backoff(initial=0.05, maximum=0.2, jitter=0.0))
    assert [exact.next() for _ in range(4)] == [0.05, 0.1, 0.2, 0.2]


async def test_a_crashing_loop_is_restarted_with_growing_backoff_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 4:
            raise RuntimeError(f"boom {runs}")
        done.set()
        await asyncio.Event().wait()  # then runs for good

    sleeps = Sleeps()
    policy = tasks.Policy(backoff=tasks.Backoff(initial=1.0, maximum=100.0, jitter=0.0))
    with caplog.at_level(logging.WARNING, logger="checkout_tasks"):
        handle = tasks.start("flaky", flaky, policy=policy, sleep=sleeps)
        await asyncio.wait_for(done.wait(), 5)
    assert handle.restarts == 4
    assert handle.failures == 4
    assert sleeps.pauses == [1.0, 2.0, 4.0, 8.0]
    assert handle.task.get_name() == "flaky"
    assert not handle.done()
    crashes = [r for r in caplog.records if "task flaky crashed" in r.getMessage()]
    assert len(crashes) == 4
    assert crashes[0].exc_info is not None
    assert "boom 1" in str(crashes[0].exc_info[1])
    await handle.stop()
    assert handle.done()
    assert handle.task.cancelled()


async def test_a_long_healthy_run_resets_the_backoff() -> None:
    runs = 0

    async def crash_later() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            await asyncio.sleep(0.05)  # a healthy run (longer than reset_after)
        if runs < 5:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    sleeps = Sleeps()
    backoff = tasks.Backoff(initial=1.0, maximum=100.0, jitter=0.0, reset_after=0.04)
    handle = tasks.start("reset", crash_later, policy=tasks.Policy(backoff=backoff), sleep=sleeps)
    for _ in range(200):
        if runs >= 5:
            break
        await asyncio.sleep(0.01)
    await handle.stop()
    assert sleeps.pauses == [1.0, 2.0, 1.0, 2.0]


async def test_a_permanent_error_stops_the_task_and_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BadConfig(Exception):
        pass

    misconfigured = Raises(BadConfig("field spec.x is missing"))
    sleeps = Sleeps()
    with caplog.at_level(logging.ERROR, logger="checkout_tasks"):
        handle = tasks.start(
            "cfg", misconfigured, policy=tasks.Policy(permanent=(BadConfig,)), sleep=sleeps
        )
        await asyncio.wait_for(handle.wait(), 5)
    assert misconfigured.runs == 1
    assert sleeps.pauses == []
    assert handle.restarts == 0
    assert isinstance(handle.error, BadConfig)
    assert any("permanent error" in r.getMessage() for r in caplog.records)
    assert handle.task.result() is None  # the guard never lets the error escape unobserved


async def test_a_one_shot_job_is_not_restarted_and_a_loop_that_returns_is() -> None:
    job = Raises(RuntimeError("once"))
    sleeps = Sleeps()
    handle = tasks.start("job", job, policy=tasks.ONCE, sleep=sleeps)
    await asyncio.wait_for(handle.wait(), 5)
    assert job.runs == 1
    assert handle.restarts == 0
    assert isinstance(handle.error, RuntimeError)

    returned = 0

    async def loop() -> None:
        nonlocal returned
        returned += 1
        if returned > 2:
            await asyncio.Event().wait()

    never_ends = tasks.Policy(finishable=False, backoff=tasks.Backoff(jitter=0.0))
    handle = tasks.start("loop", loop, policy=never_ends, sleep=sleeps)
    for _ in range(100):
        if returned >= 3:
            break
        await asyncio.sleep(0)
    assert returned == 3
    assert handle.restarts == 2
    assert not handle.done()
    await handle.stop()

    finished = tasks.start("fin", lambda: asyncio.sleep(0), sleep=sleeps)
    await asyncio.wait_for(finished.wait(), 5)
    assert finished.restarts == 0
    assert finished.error is None


async def test_cancel_stops_a_task_even_during_its_backoff() -> None:
    slow = tasks.Policy(backoff=tasks.Backoff(initial=60.0, maximum=60.0))
    handle = tasks.start("slow", Raises(RuntimeError("x")), policy=slow)
    await asyncio.sleep(0.05)  # now in its 30-60 s backoff
    assert handle.failures == 1
    assert not handle.done()
    await asyncio.wait_for(handle.stop(), 1)
    assert handle.task.cancelled()
    await handle.stop()  # twice is fine


async def test_supervisor_replaces_by_name_forgets_finished_and_closes_all() -> None:
    sup = tasks.Supervisor()
    gate = asyncio.Event()
    started: list[str] = []

    def forever(name: str) -> tasks.Factory:
        async def run() -> None:
            started.append(name)
            await gate.wait()
            await asyncio.Event().wait()

        return run

    first = sup.start("probe/a", forever("a1"))
    sup.start("probe/b", forever("b"))
    replacement = sup.start("probe/a", forever("a2"))
    await asyncio.sleep(0)
    assert first.task.cancelled() or first.done() or first.task.cancelling()
    assert sup.get("probe/a") is replacement
    assert sup.names() == ["probe/a", "probe/b"]

    quick = sup.start("job", lambda: asyncio.sleep(0), policy=tasks.ONCE)
    await asyncio.wait_for(quick.wait(), 5)
    await asyncio.sleep(0)
    assert "job" not in sup.names()

    sup.cancel("probe/b")
    await asyncio.sleep(0)
    assert sup.names() == ["probe/a"]
    handles = [sup.get(n) for n in sup.names()]
    await asyncio.wait_for(sup.aclose(), 1)
    assert len(sup) == 0
    assert all(h is not None and h.task.cancelled() for h in handles)
    assert "a2" in started
