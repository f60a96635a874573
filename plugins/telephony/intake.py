"""How finished calls reach the hub: a ``CallRecord`` becomes its timeline entry (and call-back task).

Webhook events are stored durably first (``hub.inbox``); the inbox handler files each event under its call in
``hub.state`` and rebuilds the call from every event filed so far, in a fixed order, with a fresh assembler.
The result depends only on which events arrived, never on their order, their repeats or which process handled
them, and the core keeps one timeline entry per call id: nothing is lost across restarts, nothing doubles.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from hub.core.errors import BadInput
from hub.core.events import InteractionObservation, TaskObservation
from hub.core.hub import Hub

from .calls import CallRecord, CallUpdate, call_observations
from .generic import GenericCallAssembler, GenericCallEvent
from .mango import MangoCallAssembler
from .settings import TelephonySettings
from .zadarma import ZadarmaCallAssembler

if TYPE_CHECKING:
    from .live import LiveCalls

log = structlog.get_logger("hub.telephony.intake")

EVENT_KIND = "telephony.call_event"
OBSERVATIONS_KIND = "telephony.observations"
INDEX_SCOPE = "telephony.calls"
_ZADARMA_ORDER = {
    "NOTIFY_START": 0,
    "NOTIFY_IVR": 1,
    "NOTIFY_INTERNAL": 2,
    "NOTIFY_OUT_START": 2,
    "NOTIFY_ANSWER": 3,
    "NOTIFY_END": 4,
    "NOTIFY_OUT_END": 4,
    "NOTIFY_RECORD": 5,
}
_MANGO_ORDER = {"call": 0, "summary": 1, "recording": 2}
_GENERIC_ORDER = {"ringing": 0, "answered": 1, "ended": 2}


def _short(text: str, limit: int = 255) -> str:
    """Keys are at most 255 characters: long ones keep their head and gain a hash of the whole."""
    if len(text) <= limit:
        return text
    return text[: limit - 41] + "#" + hashlib.sha1(text.encode()).hexdigest()


def call_scope(system: str, account: str, call_id: str) -> str:
    return _short(f"telephony.call:{system}:{account}:{call_id}")


class CallIntake:
    """Applies finished calls to the hub, and files and replays webhook events per call."""

    def __init__(self, hub: Hub, settings: TelephonySettings, live: LiveCalls | None = None) -> None:
        self.hub = hub
        self.settings = settings
        self.live = live
        self.region = settings.region or hub.settings.default_region
        self._forgotten_at = time.monotonic()

    # --- finished calls ---------------------------------------------------------------------------------------
    def observations(self, record: CallRecord) -> list[InteractionObservation | TaskObservation]:
        return call_observations(
            record,
            operators=self.settings.extensions,
            create_callback_tasks=self.settings.create_callback_tasks,
            callback_due=timedelta(minutes=self.settings.callback_due_minutes),
        )

    def apply(self, record: CallRecord, *, observed_at: datetime | None = None, durable: bool = False) -> int | None:
        """Ingest a finished call; return its timeline item id (``None`` when it names no customer).

        With ``durable`` (the AMI listener, whose events are not stored anywhere else), a failure other than bad
        input parks the observations in the inbox, which retries them, instead of losing the call.
        """
        if self.live is not None:
            self.live.end(record.system, record.account, record.call_id)
        try:
            observations = self.observations(record)
        except BadInput as exc:
            log.warning("call_not_stored", system=record.system, call_id=record.call_id[:80], problem=str(exc))
            return None
        if not observations:
            log.info(
                "call_not_on_timeline",
                system=record.system,
                call_id=record.call_id,
                direction=record.direction,
                reason="internal call or no customer phone number",
                number=record.number.raw if record.number else None,
            )
            return None
        if observed_at is not None:
            observations = [o.model_copy(update={"observed_at": observed_at}) for o in observations]
        try:
            results = self.hub.ingest_many(observations)
        except Exception as exc:
            if not durable:
                raise
            payload = {"observations": [o.model_dump(mode="json") for o in observations]}
            self.hub.inbox.put(OBSERVATIONS_KIND, payload, dedup_key=_short(f"obs:{record.source}"))
            log.warning("call_parked_for_retry", call_id=record.call_id, error=str(exc))
            return None
        item_id = None
        for obs, result in zip(observations, results, strict=True):
            if isinstance(result, BadInput):
                log.warning("call_not_stored", source=str(obs.source), kind=obs.kind, problem=str(result))
            elif obs.kind == "interaction":
                item_id = result.item_id
        return item_id

    def apply_parked(self, payload: Mapping[str, Any]) -> None:
        """Inbox handler for observations parked by :meth:`apply` (idempotent: the core keys them by source)."""
        observations = [Hub.parse_observation(o) for o in payload.get("observations", [])]
        for obs, result in zip(observations, self.hub.ingest_many(observations), strict=True):
            if isinstance(result, BadInput):
                log.warning("call_not_stored", source=str(obs.source), kind=obs.kind, problem=str(result))

    # --- webhook events ------------------------------------------------------------------------------------------
    def already_filed(self, system: str, account: str, call_id: str, key: str) -> bool:
        return self.hub.state.get(call_scope(system, account, call_id), key) is not None

    def accept(self, system: str, account: str, call_id: str, key: str, event: Mapping[str, Any]) -> bool:
        """Store one verified webhook event durably (before the webhook is answered). False for a repeat."""
        payload = {
            "system": system,
            "account": account,
            "call_id": call_id,
            "key": key,
            "event": dict(event),
            "received_at": datetime.now(UTC).isoformat(),
        }
        return self.hub.inbox.put(EVENT_KIND, payload, dedup_key=_short(f"{system}:{account}:{call_id}:{key}"))

    def handle_event(self, payload: Mapping[str, Any]) -> None:
        """Inbox handler: file the event under its call, rebuild the call from all its events, ingest it."""
        system, account, call_id = payload["system"], payload["account"], payload["call_id"]
        scope, key = call_scope(system, account, call_id), _short(payload["key"])
        state = self.hub.state
        if state.get(scope, key) is None:
            state.put(scope, key, {"event": payload["event"], "received_at": payload["received_at"]})
        state.put(INDEX_SCOPE, scope, {"last": payload["received_at"]})
        filed = list(state.items(scope).values())
        if time.monotonic() - self._forgotten_at > 3600:  # wherever events are handled, old ones get cleaned up
            self._forgotten_at = time.monotonic()
            self.forget_old_calls()
        record = rebuild_call(system, account, filed, region=self.region, settings=self.settings)
        if record is None:
            return
        # The newest event filed dates the observation, so a rebuild that saw more events always wins.
        latest = max(datetime.fromisoformat(e["received_at"]) for e in filed)
        self.apply(record, observed_at=latest + timedelta(microseconds=len(filed)))

    def forget_old_calls_now(self) -> None:
        """Poller body."""
        self.forget_old_calls()

    def forget_old_calls(self, now: datetime | None = None) -> int:
        """Delete the filed events of calls quiet for ``call_events_retention_hours``; return how many calls."""
        cutoff = (now or datetime.now(UTC)) - timedelta(hours=self.settings.call_events_retention_hours)
        forgotten = 0
        for scope, mark in self.hub.state.items(INDEX_SCOPE).items():
            try:
                last = datetime.fromisoformat(mark["last"])
            except (KeyError, TypeError, ValueError):
                last = cutoff
            if last > cutoff:
                continue
            for key in self.hub.state.items(scope):
                self.hub.state.delete(scope, key)
            self.hub.state.delete(INDEX_SCOPE, scope)
            forgotten += 1
        if forgotten:
            log.info("call_events_forgotten", calls=forgotten)
        return forgotten


def rebuild_call(
    system: str, account: str, filed: list[Mapping[str, Any]], *, region: str, settings: TelephonySettings
) -> CallRecord | None:
    """The call that these filed events describe, or ``None`` while it is not over yet."""
    if system == "mango":
        return _rebuild_mango(account, filed, region)
    if system == "zadarma":
        return _rebuild_zadarma(account, filed, region, settings.zadarma.timezone)
    if system == "generic":
        return _rebuild_generic(filed, region)
    log.warning("call_event_of_unknown_system", system=system)
    return None


def _last_record(updates: list[CallUpdate]) -> CallRecord | None:
    records = [u for u in updates if isinstance(u, CallRecord)]
    return records[-1] if records else None


def _int(value: Any) -> int:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def _rebuild_mango(account: str, filed: list[Mapping[str, Any]], region: str) -> CallRecord | None:
    def order(e: Mapping[str, Any]) -> tuple[int, int, int, str]:
        kind, data = e["event"]["kind"], e["event"]["payload"]
        return (_MANGO_ORDER.get(kind, 9), _int(data.get("timestamp")), _int(data.get("seq")), e["received_at"])

    assembler = MangoCallAssembler(account=account, region=region)
    updates: list[CallUpdate] = []
    for e in sorted(filed, key=order):
        updates += assembler.feed(e["event"]["kind"], e["event"]["payload"])
    return _last_record(updates)


def _rebuild_zadarma(account: str, filed: list[Mapping[str, Any]], region: str, timezone: str) -> CallRecord | None:
    received = datetime.now(UTC)

    def clock() -> datetime:
        return received

    assembler = ZadarmaCallAssembler(account=account, region=region, timezone=timezone, clock=clock)
    updates: list[CallUpdate] = []
    ordered = sorted(filed, key=lambda e: (_ZADARMA_ORDER.get(e["event"].get("event", ""), 9), e["received_at"]))
    for e in ordered:
        received = datetime.fromisoformat(e["received_at"])  # the assembler reads its clock: make it replayable
        updates += assembler.feed(e["event"])
    return _last_record(updates)


def _rebuild_generic(filed: list[Mapping[str, Any]], region: str) -> CallRecord | None:
    assembler = GenericCallAssembler(region=region)
    updates: list[CallUpdate] = []
    ordered = sorted(filed, key=lambda e: (_GENERIC_ORDER.get(e["event"].get("event", ""), 9), e["received_at"]))
    for e in ordered:
        event = GenericCallEvent.model_validate(e["event"])
        if event.event == "answered" and event.answered_at is None:
            event = event.model_copy(update={"answered_at": datetime.fromisoformat(e["received_at"])})
        if event.event == "ended" and event.ended_at is None:
            event = event.model_copy(update={"ended_at": datetime.fromisoformat(e["received_at"])})
        updates += assembler.feed(event)
    return _last_record(updates)
