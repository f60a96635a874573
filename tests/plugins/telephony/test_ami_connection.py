"""The AMI connection against the sandbox over real loopback TCP: login, events, drops, click-to-call."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from crm_hub_plugins.telephony.ami import AMIConnection, OriginateRequest
from crm_hub_plugins.telephony.asterisk import AsteriskCallTracker
from crm_hub_plugins.telephony.calls import CallRecord, CallUpdate, OriginateResult, RingingNotice
from crm_hub_plugins.telephony.sandbox import AMISandbox, generate_call

from .conftest import ami_session


class Collector:
    def __init__(self, tracker: AsteriskCallTracker) -> None:
        self.tracker = tracker
        self.updates: list[CallUpdate] = []
        self.lock = threading.Lock()

    def __call__(self, packet: dict[str, str]) -> None:
        with self.lock:
            self.updates.extend(self.tracker.feed(packet))

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        with self.lock:
            return [u for u in self.updates if isinstance(u, kind)]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@contextmanager
def running(sandbox: AMISandbox, collector: Collector, secret: str | None = None) -> Iterator[AMIConnection]:
    connection = AMIConnection(
        "127.0.0.1",
        sandbox.port,
        sandbox.username,
        secret if secret is not None else sandbox.secret,
        on_event=collector,
        reconnect_initial=0.05,
        reconnect_max=0.2,
        ping_interval=0.3,
    )
    stop = threading.Event()
    thread = threading.Thread(target=connection.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield connection
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_logs_in_and_turns_a_recorded_session_into_one_call() -> None:
    collector = Collector(AsteriskCallTracker())
    with AMISandbox() as sandbox, running(sandbox, collector) as connection:
        assert sandbox.wait_for_login()
        wait_until(connection.connected.is_set)
        sandbox.send_events(ami_session("simple_ab_success_a_hangup"))
        wait_until(lambda: len(collector.of(CallRecord)) == 1)
    [call] = collector.of(CallRecord)
    assert call.status == "answered"


def test_cyrillic_names_survive_writes_cut_at_every_byte() -> None:
    seen: list[str] = []
    with AMISandbox(chunk_size=1) as sandbox:
        connection = AMIConnection(
            "127.0.0.1",
            sandbox.port,
            sandbox.username,
            sandbox.secret,
            on_event=lambda p: seen.append(p.get("CallerIDName", "")),
        )
        stop = threading.Event()
        thread = threading.Thread(target=connection.run, args=(stop,), daemon=True)
        thread.start()
        sandbox.send_events(generate_call("busy", rng=random.Random(7), caller_name="Щукина Алёна"))
        wait_until(lambda: sandbox.pending() == 0 and "Щукина Алёна" in seen)
        stop.set()
        thread.join(timeout=5)
    assert all("\ufffd" not in name for name in seen)


def test_drop_mid_call_reconnects_and_reports_the_call_once() -> None:
    collector = Collector(AsteriskCallTracker())
    events = generate_call("answered", rng=random.Random(11))
    with AMISandbox() as sandbox, running(sandbox, collector) as connection:
        assert sandbox.wait_for_login()
        sandbox.send_events(events, drop_after=len(events) // 2)
        assert sandbox.wait_for_login(2), "did not reconnect after the drop"
        wait_until(lambda: len(collector.of(CallRecord)) == 1)
        # A PBX that replays the whole call after the reconnect must not double it.
        sandbox.send_events(events)
        wait_until(lambda: sandbox.pending() == 0)
        time.sleep(0.2)
        assert connection.stats.connects >= 2
    assert len(collector.of(CallRecord)) == 1
    assert len(collector.of(RingingNotice)) == 1


def test_wrong_secret_is_refused_and_never_logged(capsys: pytest.CaptureFixture[str]) -> None:
    collector = Collector(AsteriskCallTracker())
    with AMISandbox() as sandbox, running(sandbox, collector, secret="wrong-pass-123") as connection:
        wait_until(lambda: sandbox.failed_logins >= 1)
        assert not connection.connected.is_set()
        assert "wrong-pass-123" not in repr(connection)
    out = capsys.readouterr()
    assert "wrong-pass-123" not in out.out + out.err
    assert "***" in str(sandbox.actions[0]["Secret"])


def test_originate_returns_an_action_id_that_its_response_and_call_carry() -> None:
    collector = Collector(AsteriskCallTracker())
    with AMISandbox() as sandbox, running(sandbox, collector) as connection:
        wait_until(connection.connected.is_set)
        action_id = connection.originate(
            OriginateRequest(channel="PJSIP/101", exten="89161234567", context="from-internal")
        )
        wait_until(lambda: len(collector.of(CallRecord)) == 1)
    [result] = collector.of(OriginateResult)
    assert (result.action_id, result.success, result.reason) == (action_id, True, 4)
    [call] = collector.of(CallRecord)
    assert (call.originate_id, call.direction, call.extension, call.status) == (action_id, "out", "101", "answered")
    assert call.number is not None and call.number.e164 == "+79161234567"


def test_keepalive_pings_while_idle() -> None:
    collector = Collector(AsteriskCallTracker())
    with AMISandbox() as sandbox, running(sandbox, collector):
        wait_until(lambda: any(a.get("Action") == "Ping" for a in sandbox.actions), timeout=5)
