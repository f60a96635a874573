"""The Asterisk AMI listener: one manager session that stays up, its events turned into calls for the hub.

Runs in the listener role. After every (re)connect it asks ``CoreShowChannels`` so that calls which ended while
the connection was down are closed; finished call ids are remembered, so events replayed after a reconnect
report nothing twice (and the core keys calls by id besides). Finished calls are written to the hub by a thread
of their own, in order, so that a screen pop never waits behind a database write.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog

from .ami import AMIConnection, OriginateRequest, Packet
from .asterisk import AsteriskCallTracker
from .calls import CallRecord, CallUpdate, OriginateResult, RingingNotice
from .intake import CallIntake
from .live import LiveCalls, live_key
from .settings import AMISettings, TelephonySettings

log = structlog.get_logger("hub.telephony.listener")

OriginateWaiter = Callable[[OriginateResult], None]


def make_tracker(settings: TelephonySettings, region: str) -> AsteriskCallTracker:
    return AsteriskCallTracker(
        account=settings.ami.account,
        region=region,
        extensions=frozenset(settings.extensions),
        max_extension_length=settings.max_extension_length,
        recording_variables=settings.ami.recording_variables,
    )


def make_connection(ami: AMISettings, on_event: Callable[[Packet], None], **kwargs: object) -> AMIConnection:
    assert ami.host is not None
    return AMIConnection(
        ami.host,
        ami.port,
        ami.username,
        ami.secret,
        on_event=on_event,
        events=ami.events,
        reconnect_initial=ami.reconnect_initial,
        reconnect_max=ami.reconnect_max,
        ping_interval=ami.ping_interval,
        connect_timeout=ami.connect_timeout,
        **kwargs,  # type: ignore[arg-type]
    )


class AMIListener:
    """Feeds every AMI event to the call tracker and sends what it completes on: pops, calls, originate results."""

    def __init__(self, settings: TelephonySettings, intake: CallIntake, live: LiveCalls) -> None:
        self.settings = settings
        self.intake = intake
        self.live = live
        self.tracker = make_tracker(settings, intake.region)
        self.connection = make_connection(settings.ami, self._on_event, on_connected=self._on_connected)
        self._lock = threading.Lock()
        self._waiters: dict[str, OriginateWaiter] = {}
        self._ringing: set[str] = set()
        self._finished: queue.Queue[CallRecord | None] = queue.Queue()
        self.calls_reported = 0

    def run(self, stop: threading.Event) -> None:
        writer = threading.Thread(target=self._write_calls, name="telephony:ami-calls", daemon=True)
        writer.start()
        try:
            self.connection.run(stop)
        finally:
            self._finished.put(None)  # the writer drains what is queued, then stops
            writer.join()

    def _write_calls(self) -> None:
        while (record := self._finished.get()) is not None:
            started = time.monotonic()
            try:
                self.intake.apply(record, durable=True)
            except Exception:
                log.exception("ami_call_not_applied", call_id=record.call_id)
                continue
            self.calls_reported += 1
            log.debug("ami_call_applied", call_id=record.call_id, ms=round((time.monotonic() - started) * 1000, 1))

    def expire(self) -> None:
        """Poller: close calls silent for hours (their hangup was lost with a connection)."""
        with self._lock:
            records = self.tracker.expire()
        self._send(list(records))

    def originate(self, request: OriginateRequest, action_id: str, on_result: OriginateWaiter) -> None:
        """Click-to-call through this session; ``on_result`` gets the matching ``OriginateResponse``."""
        self._waiters[action_id] = on_result
        try:
            self.connection.originate(request, action_id)
        except Exception:
            self._waiters.pop(action_id, None)
            raise

    def _on_connected(self) -> None:
        with self._lock:
            self.tracker.start_listing()
        # Sent without waiting: this runs in the thread that reads the answer.
        self.connection.send_action("CoreShowChannels", {}, wait=False)

    def _on_event(self, packet: Packet) -> None:
        with self._lock:
            updates = self.tracker.feed(packet)
            # A bridge with a prompt, voicemail or music on hold is not an answer: ask the tracker.
            talking = []
            if packet.get("Event") in ("BridgeEnter", "AgentConnect", "Bridge"):
                answered = {linkedid: self.tracker.answered_by(linkedid) for linkedid in self._ringing_calls()}
                talking = [(linkedid, who) for linkedid, who in answered.items() if who is not None]
        for linkedid, who in talking:
            self._ringing.discard(live_key("asterisk", self.settings.ami.account, linkedid))
            self.live.answered("asterisk", self.settings.ami.account, linkedid, who or None)
        self._send(updates)

    def _ringing_calls(self) -> list[str]:
        prefix = live_key("asterisk", self.settings.ami.account, "")
        return [key[len(prefix) :] for key in list(self._ringing) if key.startswith(prefix)]

    def _send(self, updates: list[CallUpdate]) -> None:
        for update in updates:
            if isinstance(update, RingingNotice):
                self._ringing.add(live_key(update.system, update.account, update.call_id))
                self.live.ring(update)
            elif isinstance(update, CallRecord):
                self._ringing.discard(live_key(update.system, update.account, update.call_id))
                self.live.end(update.system, update.account, update.call_id)
                self._finished.put(update)
            elif isinstance(update, OriginateResult):
                waiter = self._waiters.pop(update.action_id, None)
                if waiter is not None:
                    waiter(update)
