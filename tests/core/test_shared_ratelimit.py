"""One rate budget per external account, kept in the database: processes pacing the same account share it."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from hub.core.ratelimit import RateSpec, SharedRateLimiter, _Budget
from hub.core.store import Store


def test_window_spec_is_parsed() -> None:
    spec = RateSpec.parse("7/s window")
    assert (spec.rate, spec.burst, spec.window, spec.span) == (7.0, 7, True, 1.0)
    assert not RateSpec.parse("2/s burst 50").window


def test_a_window_never_books_more_than_its_limit_in_any_second() -> None:
    budget, spec = _Budget(), RateSpec.parse("7/s window")
    times = [budget.reserve(spec, 1, 100.0) for _ in range(30)]
    assert times == sorted(times)
    for i in range(len(times) - 7):
        assert times[i + 7] - times[i] >= 1.0


def test_a_bucket_books_its_burst_at_once_then_drains_at_its_rate() -> None:
    budget, spec = _Budget(), RateSpec.parse("2/s burst 50")
    times = [budget.reserve(spec, 1, 100.0) for _ in range(60)]
    assert times[49] == 100.0 and times[50] == pytest.approx(100.5) and times[59] == pytest.approx(105.0)


def test_a_pause_holds_every_booking_back(backend: Any) -> None:
    limiter = SharedRateLimiter(backend.hub().store, "test:paused", "100/s burst 100")
    limiter.pause(0.3)
    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started >= 0.25


def _hammer(url: str, name: str, n: int, out: Any) -> None:
    store = Store(url)
    limiter = SharedRateLimiter(store, name, "5/s window")
    for _ in range(n):
        limiter.acquire()
        out.put(time.time())
    store.dispose()


def test_two_processes_on_one_account_share_one_window(backend: Any) -> None:
    backend.hub()  # creates the schema
    url = backend.database_url
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(url, "test:shared", 8, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    sent = sorted(out.get(timeout=60) for _ in range(16))
    for worker in workers:
        worker.join(30)
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 0.98, f"6 requests within {sent[i + 5] - sent[i]:.3f} s"
