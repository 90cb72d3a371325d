"""A client-side cap on PutEvents calls per second that backs off when the service throttles (AIMD).

Personalize allows 1000 PutEvents calls/s per dataset group, shared by every replica. A replica's
``personalize.max_calls_per_second`` caps its own share. When the service still answers
``ThrottlingException`` (other replicas, other writers), the rate drops multiplicatively, at most once
per ``cooldown_s``, down to a floor (``floor_fraction`` of the cap), and climbs back additively while
calls succeed. Replicas thereby share a quota without a retry storm.

Without a cap there is no limiter: each throttled call still waits its own exponential, jittered
backoff before it is retried (send.py). A rate learned from throttles alone would collapse when the
throttling is not caused by this replica's load (random throttling drives it to its floor:
docs/benchmarks.md), so the cap is what gives the controller its scale.

Contract: :meth:`acquire` returns when a call may start (calls spaced at the current rate, with a small
burst allowance); :meth:`on_success` / :meth:`on_throttle` report outcomes. For one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class AdaptiveRateLimiter:
    """Virtual-time token bucket with additive increase and multiplicative decrease, between floor and cap."""

    def __init__(
        self,
        max_rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        floor_fraction: float = 0.25,
        decrease: float = 0.7,
        increase_fraction: float = 0.05,
        cooldown_s: float = 1.0,
        burst_s: float = 0.05,
    ) -> None:
        self.ceiling = max_rate
        self.rate = max_rate  # None: no limit
        self.floor = max_rate * floor_fraction if max_rate is not None else None
        self._clock = clock
        self._decrease = decrease
        self._step = max_rate * increase_fraction if max_rate is not None else 0.0
        self._cooldown = cooldown_s
        self._burst = burst_s
        self._next = 0.0  # virtual time at which the next call may start
        self._last_change = clock()
        self._last_throttle = float("-inf")
        self.throttles = 0

    async def acquire(self) -> None:
        """Wait until a call may start under the current rate."""
        rate = self.rate
        if rate is None:
            return
        now = self._clock()
        start = max(self._next, now - self._burst)
        self._next = start + 1.0 / rate
        if start > now:
            await asyncio.sleep(start - now)

    def on_success(self) -> None:
        """A call succeeded: raise the rate a step if neither a throttle nor a change came for a cooldown."""
        if self.rate is None or self.ceiling is None or self.rate >= self.ceiling:
            return
        now = self._clock()
        if now - self._last_change >= self._cooldown and now - self._last_throttle >= self._cooldown:
            self.rate = min(self.ceiling, self.rate + self._step)
            self._last_change = now

    def on_throttle(self) -> None:
        """The service throttled a call: lower the rate, once per cooldown, not below the floor."""
        self.throttles += 1
        now = self._clock()
        self._last_throttle = now
        if self.rate is None or self.floor is None:
            return
        if now - self._last_change >= self._cooldown:
            self.rate = max(self.floor, self.rate * self._decrease)
            self._last_change = now
