"""One rate limiter for every external account: a leaky bucket ``"2/s burst 50"`` or a sliding window ``"7/s window"``.

Bitrix24 documents the bucket (drain 2 requests/s, bucket of 50); amoCRM counts requests in any one second
(``"7/s window"``). ``acquire()`` blocks until a request may go, so the remote limit is never tripped.
:class:`RateLimiter` paces one process; :class:`SharedRateLimiter` keeps the budget in the hub's database, so
``hub run``, a CLI backfill and N workers on one account share it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.core import schema as s
from hub.core.errors import ConfigError
from hub.core.store import Store

_SPEC = re.compile(
    r"^\s*(?P<rate>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|m|min|minute)\s*"
    r"(?:burst\s+(?P<burst>\d+))?\s*(?P<window>window)?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RateSpec:
    rate: float  # requests per second that drain from the bucket
    burst: int  # bucket size; with ``window``, the requests allowed in any ``burst / rate`` seconds
    window: bool = False  # a sliding window (the remote counts requests per span) instead of a leaky bucket

    @property
    def span(self) -> float:
        """Seconds of the sliding window."""
        return self.burst / self.rate

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
        return cls(rate=rate, burst=burst, window=bool(match["window"]))


class Limiter(Protocol):
    """What every rate limiter offers: :class:`RateLimiter` (one process) and :class:`SharedRateLimiter`."""

    spec: RateSpec
    waited: float

    def delay(self, n: int = 1) -> float: ...

    def acquire(self, n: int = 1, *, stop: threading.Event | None = None) -> float: ...

    def pause(self, seconds: float) -> None: ...

    def fill(self) -> None: ...


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


# --- one budget across processes ----------------------------------------------------------------------------
LIMITS_SCOPE = "ratelimit"  # state scope: account name → its shared budget
# Requests sent at the edge of a window can arrive closer together than they left: leave a little room.
WINDOW_MARGIN = 0.05
LATE_WAKE = 0.02


@dataclass
class _Budget:
    """The shared state of one account's limit, as kept in the ``state`` table (wall-clock seconds)."""

    level: float = 0.0  # bucket level at ``last``
    last: float = 0.0
    paused_until: float = 0.0
    sent: list[float] | None = None  # window: the times of the last ``burst`` reserved requests

    def reserve(self, spec: RateSpec, n: int, now: float) -> float:
        """Book ``n`` requests at the earliest time they fit; return that time."""
        start = max(now, self.paused_until)
        if spec.window:
            sent = sorted(self.sent or [])
            at = start
            for _ in range(n):
                if sent:  # in order, behind what is booked already
                    at = max(at, sent[-1])
                if len(sent) >= spec.burst:
                    at = max(at, sent[-spec.burst] + spec.span + WINDOW_MARGIN)
                sent.append(at)
            self.sent = sent[-spec.burst :]
            return at
        if start >= self.last:
            level = max(0.0, self.level - (start - self.last) * spec.rate)
        else:  # requests already booked ahead: queue behind them
            start, level = self.last, self.level
        at = start + max(0.0, (level + n - spec.burst) / spec.rate)
        self.level = level - (at - start) * spec.rate + n
        self.last = at
        return at

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "last": self.last, "paused_until": self.paused_until, "sent": self.sent}

    @classmethod
    def from_dict(cls, value: Any) -> _Budget:
        if not isinstance(value, dict):
            return cls()
        sent = value.get("sent")
        return cls(
            level=float(value.get("level") or 0.0),
            last=float(value.get("last") or 0.0),
            paused_until=float(value.get("paused_until") or 0.0),
            sent=[float(t) for t in sent] if isinstance(sent, list) else None,
        )


class SharedRateLimiter:
    """The :class:`RateLimiter` interface over a budget kept in the hub's database (SQLite or PostgreSQL).

    Each ``acquire`` books its requests in one short write transaction (the row is locked meanwhile), then sleeps
    until their turn outside it; every process pacing the same ``name`` shares the budget. Clocks are wall
    clocks: the processes run on one machine or on machines kept in time by NTP.
    """

    def __init__(
        self,
        store: Store,
        name: str,
        spec: RateSpec | str,
        *,
        clock: Callable[[], float] = time.time,
        on_acquire: Callable[[int, float], None] | None = None,
    ) -> None:
        self.store, self.name = store, name
        self.spec = RateSpec.parse(spec) if isinstance(spec, str) else spec
        self._clock = clock
        self.on_acquire = on_acquire
        self.waited = 0.0

    def _update(self, change: Callable[[_Budget, float], float]) -> float:
        with self.store.write() as conn:
            where = (s.state.c.scope == LIMITS_SCOPE, s.state.c.key == self.name)
            row = conn.execute(select(s.state.c.value).where(*where).with_for_update()).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        fresh = _Budget().to_dict()
                        conn.execute(
                            insert(s.state).values(
                                scope=LIMITS_SCOPE, key=self.name, value=fresh, updated_at=datetime.now(UTC)
                            )
                        )
                except IntegrityError:  # another process created it first: lock theirs
                    pass
                row = conn.execute(select(s.state.c.value).where(*where).with_for_update()).first()
            budget = _Budget.from_dict(row.value if row is not None else None)
            now = self._clock()
            result = change(budget, now)
            conn.execute(update(s.state).where(*where).values(value=budget.to_dict(), updated_at=datetime.now(UTC)))
        return result

    def delay(self, n: int = 1) -> float:
        """Seconds until ``n`` requests would fit (0 when they fit now). Books nothing."""
        with self.store.read() as conn:
            row = conn.execute(
                select(s.state.c.value).where(s.state.c.scope == LIMITS_SCOPE, s.state.c.key == self.name)
            ).first()
        budget = _Budget.from_dict(row.value if row is not None else None)
        now = self._clock()
        return max(0.0, budget.reserve(self.spec, n, now) - now)

    def acquire(self, n: int = 1, *, stop: threading.Event | None = None) -> float:
        """Book ``n`` requests, wait for their turn and return the seconds waited."""
        if n > self.spec.burst:
            raise ValueError(f"{n} requests can never fit a bucket of {self.spec.burst}")
        total = 0.0
        while True:
            at = self._update(lambda budget, now: budget.reserve(self.spec, n, now))
            wait = max(0.0, at - self._clock())
            if wait:
                if stop is not None:
                    if stop.wait(wait):
                        raise InterruptedError("stopping")
                else:
                    time.sleep(wait)
            total += wait
            # Woken late (a busy machine): requests booked after this one may already be on their way, so going
            # now could put too many in one window. The late slot stays booked (harmless); book a new one.
            if not self.spec.window or self._clock() - at <= LATE_WAKE:
                break
        wait = total
        self.waited += wait
        if self.on_acquire is not None:
            self.on_acquire(n, wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Stop every process's requests for ``seconds`` (a 429 with Retry-After, a ban)."""

        def change(budget: _Budget, now: float) -> float:
            budget.paused_until = max(budget.paused_until, now + seconds)
            return budget.paused_until

        self._update(change)

    def fill(self) -> None:
        """Treat the budget as spent (the remote said it is): the next requests wait for it to drain."""

        def change(budget: _Budget, now: float) -> float:
            if self.spec.window:
                budget.sent = [max(now, *(budget.sent or [now]))] * self.spec.burst
            else:
                budget.level, budget.last = float(max(self.spec.burst, budget.level)), max(now, budget.last)
            return now

        self._update(change)
