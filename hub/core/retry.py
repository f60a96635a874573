"""One retry policy for the whole hub: exponential backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter (a uniform draw up to the exponential bound) spreads retries of many workers apart; a
        remote's Retry-After is a floor, never shortened.
        """
        bound = min(self.cap, self.base * (2 ** (attempt - 1)))
        delay = random.uniform(bound / 2, bound)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
