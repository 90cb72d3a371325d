"""The client-side rate limit: spacing at the configured rate, multiplicative decrease on throttling,
additive recovery, and an open limiter that learns a rate from the first throttle."""

from __future__ import annotations

import asyncio

import pytest

from forwarder.rate_limit import AdaptiveRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_acquire_spaces_calls_at_the_rate() -> None:
    async def go() -> float:
        limiter = AdaptiveRateLimiter(200.0, burst_s=0.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(41):
            await limiter.acquire()
        return loop.time() - start

    elapsed = asyncio.run(go())
    assert 0.18 <= elapsed <= 0.6, elapsed  # 40 intervals of 5 ms


def test_throttling_decreases_multiplicatively_once_per_cooldown_and_recovers_additively() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(1000.0, clock, decrease=0.5, increase_fraction=0.1, cooldown_s=1.0)
    limiter.on_throttle()
    assert limiter.rate == pytest.approx(1000.0), "no decrease within the cooldown after start"
    clock.now += 1.5
    limiter.on_throttle()
    limiter.on_throttle()  # a burst of throttles from concurrent calls counts once
    assert limiter.rate == pytest.approx(500.0)
    clock.now += 0.5
    limiter.on_throttle()  # within the cooldown of the decrease: no second decrease
    clock.now += 0.6
    limiter.on_success()
    assert limiter.rate == pytest.approx(500.0), "no increase within a cooldown of the last throttle"
    clock.now += 0.5
    limiter.on_success()
    assert limiter.rate == pytest.approx(600.0)
    for _ in range(20):
        clock.now += 1.1
        limiter.on_success()
    assert limiter.rate == pytest.approx(1000.0), "never above the configured cap"


def test_persistent_throttling_stops_at_the_floor() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(400.0, clock, floor_fraction=0.25)
    for _ in range(50):
        clock.now += 1.1
        limiter.on_throttle()
    assert limiter.rate == pytest.approx(100.0)


def test_without_a_cap_there_is_no_limit() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(None, clock)
    for _ in range(10):
        clock.now += 2
        limiter.on_throttle()
        limiter.on_success()
    assert limiter.rate is None
    assert limiter.throttles == 10
