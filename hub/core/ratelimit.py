"""One rate limiter for every external account: a leaky bucket described as ``"2/s burst 50"``.

Bitrix24 documents exactly this model (drain 2 requests/s, bucket of 50); amoCRM's 7 requests/s is
``"7/s burst 7"``. ``acquire()`` blocks until a request may go, so the remote limit is never tripped.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.core.errors import ConfigError

_SPEC = re.compile(
    r"^\s*(?P<rate>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|m|min|minute)\s*"
    r"(?:burst\s+(?P<burst>\d+))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RateSpec:
    rate: float  # requests per second that drain from the bucket
    burst: int  # bucket size

    @classmethod
    def parse(cls, spec: str) -> RateSpec:
        match = _SPEC.match(spec)
        if not match:
            raise ConfigError(f"rate limit {spec!r} is not of the form '2/s burst 50' or '120/min'")
        rate = float(match["rate"])
        if match["unit"].lower().startswith("m"):
            rate /= 60.0
        burst = int(match["burst"]) if match["burst"] else max(1, int(rate))
        if rate <= 0 or burst <= 0:
            raise ConfigError(f"rate limit {spec!r} must be positive")
        return cls(rate=rate, burst=burst)


class RateLimiter:
    """A thread-safe leaky bucket. ``acquire(n)`` waits until ``n`` more requests fit, then counts them.

    ``pause(seconds)`` stops everything for a while (a 429 with Retry-After, a ban); ``waited`` totals the
    seconds spent waiting, for metrics.
    """

    def __init__(
        self,
        spec: RateSpec | str,
        *,
        clock: object = time.monotonic,
        margin: float = 0.0,
        on_acquire: Callable[[int, float], None] | None = None,
    ) -> None:
        self.spec = RateSpec.parse(spec) if isinstance(spec, str) else spec
        self._clock = clock
        self._level = 0.0
        self._last = self._now()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.margin = margin
        self.waited = 0.0
        self.on_acquire = on_acquire  # (requests, seconds waited) -> None, for metrics

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _drain(self, now: float) -> None:
        self._level = max(0.0, self._level - (now - self._last) * self.spec.rate)
        self._last = now

    def delay(self, n: int = 1) -> float:
        """Seconds until ``n`` requests fit (0 when they fit now). Does not count them."""
        with self._lock:
            now = self._now()
            self._drain(now)
            wait = max(0.0, self._paused_until - now)
            overflow = self._level + n - self.spec.burst
            if overflow > 0:
                wait = max(wait, overflow / self.spec.rate + self.margin)
            return wait

    def acquire(self, n: int = 1, *, stop: threading.Event | None = None) -> float:
        """Block until ``n`` requests fit, count them, and return the seconds waited."""
        if n > self.spec.burst:
            raise ValueError(f"{n} requests can never fit a bucket of {self.spec.burst}")
        total = 0.0
        while True:
            with self._lock:
                now = self._now()
                self._drain(now)
                wait = max(0.0, self._paused_until - now)
                if wait == 0.0 and self._level + n <= self.spec.burst:
                    self._level += n
                    self.waited += total
                    if self.on_acquire is not None:
                        self.on_acquire(n, total)
                    return total
                if wait == 0.0:
                    wait = (self._level + n - self.spec.burst) / self.spec.rate + self.margin
            if stop is not None:
                if stop.wait(wait):
                    raise InterruptedError("stopping")
            else:
                time.sleep(wait)
            total += wait

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._now() + seconds)

    def fill(self) -> None:
        """Treat the bucket as full (the remote said it is): the next requests wait for it to drain."""
        with self._lock:
            self._level = float(self.spec.burst)
            self._last = self._now()
