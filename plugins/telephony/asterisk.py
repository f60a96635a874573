"""Follow Asterisk calls through their AMI events and report each one once: ringing, then finished.

Events are grouped by ``Linkedid`` (one customer call, however many channels it spawns); ``Local/`` channels
are internal plumbing and never a party. Feeding the same events twice, or again after a reconnect, reports
nothing new: finished call ids are remembered.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from hub.core.bounds import in_time_range
from plugins.telephony.calls import (
    CallDirection,
    CallRecord,
    CallStatus,
    CallUpdate,
    OriginateResult,
    PhoneNumber,
    RingingNotice,
    is_extension,
    parse_number,
)

log = structlog.get_logger("hub.telephony.asterisk")

_DIAL_STATUS: dict[str, CallStatus] = {
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "cancelled",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
    "INVALIDARGS": "failed",
    "DONTCALL": "rejected",
    "TORTURE": "rejected",
}
# Q.850 hangup causes that say more than the dial status does.
_CAUSE_STATUS: dict[str, CallStatus] = {"17": "busy", "18": "no_answer", "19": "no_answer", "21": "rejected"}
# Events that carry nothing a call record needs; they are expected and skipped quietly.
_QUIET_EVENTS = frozenset(
    {
        "FullyBooted",
        "NewAccountCode",
        "NewConnectedLine",
        "NewExten",
        "LocalBridge",
        "LocalOptimizationBegin",
        "LocalOptimizationEnd",
        "BridgeCreate",
        "BridgeLeave",
        "BridgeDestroy",
        "BridgeMerge",
        "SoftHangupRequest",
        "HangupRequest",
        "RTCPSent",
        "RTCPReceived",
        "DeviceStateChange",
        "ExtensionStatus",
        "PeerStatus",
        "ContactStatus",
        "Registry",
        "SuccessfulAuth",
        "ChallengeSent",
        "Cdr",
        "CEL",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
        "Hold",
        "Unhold",
        "DTMFBegin",
        "DTMFEnd",
        "QueueCallerLeave",
        "QueueMemberStatus",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AgentDump",
        "MixMonitorStart",
        "MixMonitorStop",
        "Newexten",
        "DialState",
    }
)
_MISSING = frozenset({"", "<unknown>"})


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Channel:
    name: str
    uniqueid: str
    created_at: datetime
    number: str | None = None
    first_exten: str | None = None
    dial_exten: str | None = None
    dialed: bool = False
    rang: bool = False
    answered_at: datetime | None = None
    up_at: datetime | None = None
    hungup: bool = False
    cause: str | None = None

    @property
    def local(self) -> bool:
        return self.name.startswith("Local/")

    @property
    def peer(self) -> str:
        """``PJSIP/101-0000002a`` -> ``101``; ``SIP/trunk-00000001`` -> ``trunk``."""
        resource = self.name.split("/", 1)[-1]
        head, sep, _ = resource.rpartition("-")
        return head if sep else resource


@dataclass
class _DialResult:
    source: str | None
    dest: str
    status: str


@dataclass
class _Call:
    linkedid: str
    first_at: datetime
    last_at: datetime
    channels: dict[str, _Channel] = field(default_factory=dict)
    dial_results: list[_DialResult] = field(default_factory=list)
    queue: str | None = None
    abandoned: bool = False
    transferred_to: str | None = None
    recording: str | None = None
    originate_id: str | None = None
    rang_notified: bool = False
    last_cause: str | None = None


@dataclass
class _Parties:
    direction: CallDirection
    number: str | None
    operator: _Channel | None
    answered: _Channel | None
    caller: _Channel | None
    rang: list[_Channel]


class AsteriskCallTracker:
    """Feed AMI events one at a time with :meth:`feed`; get back ``RingingNotice``, ``CallRecord`` and
    ``OriginateResult`` values.

    ``extensions`` lists operator extensions (or endpoint names) known to be internal; besides them, a digit
    string up to ``max_extension_length`` long is an extension. Event times come from the ``Timestamp``
    header (``timestampevents = yes`` in ``manager.conf``) or, without it, from ``clock``.
    """

    def __init__(
        self,
        *,
        account: str = "",
        region: str = "RU",
        extensions: Container[str] = (),
        max_extension_length: int = 5,
        recording_variables: Iterable[str] = ("MIXMONITOR_FILENAME", "RECORDING_FILE", "CALLFILENAME"),
        clock: Callable[[], datetime] = _utcnow,
        remember: int = 10_000,
        stale_after: timedelta = timedelta(hours=4),
    ) -> None:
        self.account = account
        self.region = region
        self.extensions = extensions
        self.max_extension_length = max_extension_length
        self.recording_variables = frozenset(recording_variables)
        self.clock = clock
        self.remember = remember
        self.stale_after = stale_after
        self.ignored: Counter[str] = Counter()
        self._calls: dict[str, _Call] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._by_uniqueid: dict[str, str] = {}
        self._listing: set[str] | None = None
        self._listing_started: datetime | None = None
        self._handlers: dict[str, Callable[[Mapping[str, str], datetime], list[CallUpdate]]] = {
            "Newchannel": self._on_channel,
            "Newstate": self._on_channel,
            "NewCallerid": self._on_channel,
            "Rename": self._on_channel,
            "Hangup": self._on_hangup,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_channel,
            "VarSet": self._on_varset,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_queue_abandon,
            "AgentCalled": self._on_agent_called,
            "AgentConnect": self._on_agent_connect,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "OriginateResponse": self._on_originate_response,
            "CoreShowChannel": self._on_listed_channel,
            "CoreShowChannelsComplete": self._on_listing_complete,
        }

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def is_finished(self, linkedid: str) -> bool:
        return linkedid in self._finished

    # --- entry points ----------------------------------------------------------------------------------------

    def feed(self, event: Mapping[str, str]) -> list[CallUpdate]:
        """Apply one event; return what it completed. Never raises: a bad event is logged and skipped."""
        name = event.get("Event")
        handler = self._handlers.get(name or "")
        if handler is None:
            if name not in _QUIET_EVENTS:
                if not self.ignored[name or ""]:
                    log.debug("ami_event_ignored", ami_event=name)
                self.ignored[name or ""] += 1
            return []
        try:
            return handler(event, self._time(event))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ami_event_skipped", ami_event=name, linkedid=event.get("Linkedid"), error=repr(exc))
            return []

    def feed_all(self, events: Iterable[Mapping[str, str]]) -> list[CallUpdate]:
        updates: list[CallUpdate] = []
        for event in events:
            updates.extend(self.feed(event))
        return updates

    def expire(self, now: datetime | None = None) -> list[CallRecord]:
        """Close calls silent for ``stale_after`` (their hangup was lost with a dropped connection)."""
        now = now or self.clock()
        stale = [call for call in self._calls.values() if now - call.last_at >= self.stale_after]
        records = []
        for call in stale:
            log.warning("ami_call_closed_stale", linkedid=call.linkedid, silent_s=(now - call.last_at).total_seconds())
            records.append(self._finish(call, call.last_at))
        return records

    def start_listing(self) -> None:
        """Call right before sending ``CoreShowChannels`` after a (re)connect: when the list completes, calls
        that Asterisk no longer has are closed (they ended while the connection was down)."""
        self._listing = set()
        self._listing_started = self.clock()

    # --- event handlers --------------------------------------------------------------------------------------

    def _time(self, event: Mapping[str, str]) -> datetime:
        stamp = event.get("Timestamp")
        if stamp:
            try:
                at = datetime.fromtimestamp(float(stamp), UTC)
                if in_time_range(at):
                    return at
            except (ValueError, OverflowError, OSError):
                pass
            log.debug("ami_bad_timestamp", value=stamp[:40])
        return self.clock()

    def _call_for(self, linkedid: str | None, at: datetime) -> _Call | None:
        if not linkedid or linkedid in self._finished:
            return None
        call = self._calls.get(linkedid)
        if call is None:
            call = self._calls[linkedid] = _Call(linkedid, at, at)
        call.last_at = max(call.last_at, at)
        return call

    def _channel(self, call: _Call, event: Mapping[str, str], at: datetime, prefix: str = "") -> _Channel | None:
        uniqueid = event.get(prefix + "Uniqueid")
        name = event.get(prefix + "Channel")
        if not uniqueid or not name:
            return None
        channel = call.channels.get(uniqueid)
        if channel is None:
            channel = call.channels[uniqueid] = _Channel(name=name, uniqueid=uniqueid, created_at=at)
            channel.first_exten = _present(event.get(prefix + "Exten"))
            self._by_uniqueid[uniqueid] = call.linkedid
        channel.name = name
        number = event.get(prefix + "CallerIDNum")
        if number is not None and number not in _MISSING:
            channel.number = number
        state = event.get(prefix + "ChannelStateDesc")
        if state == "Up" and channel.up_at is None:
            channel.up_at = at
        elif state == "Ringing":
            channel.rang = True
        return channel

    def _on_channel(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid"), at)
        if call is None:
            return []
        channel = self._channel(call, event, at)
        if channel is not None and channel.rang and not channel.local and not call.rang_notified:
            return self._ringing(call, channel, at)
        return []

    def _on_hangup(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid"), at)
        if call is None:
            return []
        channel = self._channel(call, event, at)
        if channel is None:
            return []
        channel.hungup = True
        channel.cause = event.get("Cause")
        if not channel.local and channel.cause:
            call.last_cause = channel.cause
        if all(c.hungup for c in call.channels.values()):
            return [self._finish(call, at)]
        return []

    def _on_dial_begin(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("DestLinkedid") or event.get("Linkedid"), at)
        if call is None:
            return []
        dest = self._channel(call, event, at, prefix="Dest")
        if dest is not None:
            dest.dialed = True
        source = self._channel(call, event, at)
        if source is not None and source.dial_exten is None:
            source.dial_exten = _present(event.get("DestExten")) or _present(event.get("Exten"))
        return []

    def _on_dial_end(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("DestLinkedid") or event.get("Linkedid"), at)
        if call is None:
            return []
        dest = self._channel(call, event, at, prefix="Dest")
        status = event.get("DialStatus", "")
        if dest is None:
            return []
        if status == "ANSWER" and dest.answered_at is None:
            dest.answered_at = dest.up_at or at
        source = event.get("Uniqueid") if event.get("Channel") else None
        call.dial_results.append(_DialResult(source, dest.uniqueid, status))
        return []

    def _on_varset(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        if event.get("Variable") not in self.recording_variables or not _present(event.get("Value")):
            return []
        call = self._call_for(event.get("Linkedid"), at)
        if call is not None:
            call.recording = event["Value"]
        return []

    def _on_queue_join(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid"), at)
        if call is not None:
            self._channel(call, event, at)
            call.queue = event.get("Queue") or call.queue
        return []

    def _on_queue_abandon(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid"), at)
        if call is not None:
            call.abandoned = True
            call.queue = event.get("Queue") or call.queue
        return []

    def _on_agent_called(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid") or event.get("DestLinkedid"), at)
        if call is None:
            return []
        call.queue = event.get("Queue") or call.queue
        self._channel(call, event, at)
        dest = self._channel(call, event, at, prefix="Dest")
        if dest is None:
            return []
        dest.dialed = True
        dest.rang = True
        return [] if call.rang_notified else self._ringing(call, dest, at)

    def _on_agent_connect(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid") or event.get("DestLinkedid"), at)
        if call is None:
            return []
        call.queue = event.get("Queue") or call.queue
        dest = self._channel(call, event, at, prefix="Dest")
        if dest is not None:
            dest.dialed = True
            dest.answered_at = dest.answered_at or dest.up_at or at
        return []

    def _on_blind_transfer(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("TransfereeLinkedid") or event.get("TransfererLinkedid"), at)
        if call is not None and event.get("Result") == "Success":
            call.transferred_to = _present(event.get("Extension")) or call.transferred_to
        return []

    def _on_attended_transfer(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("TransfereeLinkedid") or event.get("OrigTransfererLinkedid"), at)
        if call is not None and event.get("Result") == "Success":
            target = _present(event.get("TransferTargetCallerIDNum")) or _present(
                event.get("SecondTransfererConnectedLineNum")
            )
            call.transferred_to = target or call.transferred_to
        return []

    def _on_originate_response(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        action_id = event.get("ActionID")
        if not action_id:
            log.warning("ami_originate_response_without_action_id", channel=event.get("Channel"))
            return []
        uniqueid = _present(event.get("Uniqueid"))
        linkedid = self._by_uniqueid.get(uniqueid or "")
        call = self._calls.get(linkedid or "")
        if call is not None:
            call.originate_id = action_id
        reason = event.get("Reason")
        success = event.get("Response") == "Success" and reason in (None, "4")
        return [
            OriginateResult(
                action_id=action_id,
                success=success,
                reason=int(reason) if reason and reason.isdigit() else None,
                call_id=linkedid,
                channel=_present(event.get("Channel")),
            )
        ]

    def _on_listed_channel(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        if self._listing is not None and event.get("Linkedid"):
            self._listing.add(event["Linkedid"])
        return []

    def _on_listing_complete(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        listed, started = self._listing, self._listing_started
        self._listing = self._listing_started = None
        if listed is None or started is None:
            return []
        gone = [c for c in self._calls.values() if c.linkedid not in listed and c.last_at <= started]
        for call in gone:
            log.info("ami_call_ended_while_disconnected", linkedid=call.linkedid)
        return [self._finish(call, call.last_at) for call in gone]

    # --- who is who --------------------------------------------------------------------------------------------

    def _internal(self, channel: _Channel) -> bool:
        return is_extension(channel.number, self.extensions, self.max_extension_length) or (
            channel.peer in self.extensions
        )

    def _extension_of(self, channel: _Channel | None) -> str | None:
        if channel is None:
            return None
        if is_extension(channel.number, self.extensions, self.max_extension_length):
            return channel.number
        return channel.peer

    def _parties(self, call: _Call) -> _Parties:
        real = sorted((c for c in call.channels.values() if not c.local), key=lambda c: c.created_at)
        if not real:
            return _Parties("internal", None, None, None, None, [])
        # An originated call (click-to-call) has no caller: its first real channel was dialed by Asterisk.
        caller = real[0] if not real[0].dialed else None
        others = [c for c in real if c is not caller]
        if caller is not None and not self._internal(caller):
            agents = [c for c in others if c.dialed or c.rang]
            answered = _first_answered(agents)
            rang = [c for c in agents if c.rang or c.dialed]
            operator = answered or (rang[-1] if len({self._extension_of(c) for c in rang}) == 1 else None)
            return _Parties("in", caller.number, operator, answered, caller, rang)
        inside = caller or next((c for c in real if self._internal(c)), real[0])
        externals = [c for c in real if c is not inside and c.number and not self._internal(c)]
        if externals:
            answered = _first_answered(externals)
            party = answered or externals[0]
            return _Parties("out", party.number, inside, answered, caller, [])
        dialled = inside.dial_exten
        if dialled and not is_extension(dialled, self.extensions, self.max_extension_length) and not others:
            return _Parties("out", dialled, inside, None, caller, [])
        answered = _first_answered(others)
        return _Parties("internal", None, inside, answered, caller, [c for c in others if c.rang or c.dialed])

    def _ringing(self, call: _Call, channel: _Channel, at: datetime) -> list[CallUpdate]:
        parties = self._parties(call)
        if parties.direction == "internal" or parties.number is None:
            return []
        if parties.direction == "in" and not self._internal(channel) and not channel.dialed:
            return []
        call.rang_notified = True
        operator = channel if parties.direction == "in" else parties.operator
        return [
            RingingNotice(
                call_id=call.linkedid,
                system="asterisk",
                account=self.account,
                direction=parties.direction,
                number=self._number(parties.number),
                extension=self._extension_of(operator),
                at=at,
            )
        ]

    def _number(self, raw: str | None) -> PhoneNumber | None:
        return parse_number(raw, self.region)

    # --- finishing ---------------------------------------------------------------------------------------------

    def _finish(self, call: _Call, at: datetime) -> CallRecord:
        parties = self._parties(call)
        answered = parties.answered
        status: CallStatus = "answered" if answered is not None else self._failure(call, parties)
        answered_at = None
        if answered is not None:
            answered_at = answered.answered_at or answered.up_at
        record = CallRecord(
            call_id=call.linkedid,
            system="asterisk",
            account=self.account,
            direction=parties.direction,
            number=self._number(parties.number),
            extension=self._extension_of(parties.operator),
            status=status,
            started_at=call.first_at,
            answered_at=answered_at,
            ended_at=at,
            queue=call.queue,
            transferred_to=call.transferred_to,
            recording=call.recording,
            originate_id=call.originate_id,
            line_number=parties.caller.first_exten
            if parties.caller is not None and parties.direction == "in"
            else None,
            disconnect_reason=call.last_cause,
            rang=[e for e in dict.fromkeys(self._extension_of(c) for c in parties.rang) if e],
        ).with_durations()
        del self._calls[call.linkedid]
        for uniqueid in call.channels:
            self._by_uniqueid.pop(uniqueid, None)
        self._finished[call.linkedid] = None
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)
        log.info(
            "call_finished",
            system="asterisk",
            call_id=record.call_id,
            direction=record.direction,
            status=record.status,
            extension=record.extension,
        )
        return record

    def _failure(self, call: _Call, parties: _Parties) -> CallStatus:
        if call.abandoned:
            return "cancelled"
        failed = [r for r in call.dial_results if r.status and r.status != "ANSWER"]
        from_caller = [r for r in failed if parties.caller is not None and r.source == parties.caller.uniqueid]
        dialled = [c for c in call.channels.values() if c.dialed and not c.local]
        if any(c.cause == "21" for c in dialled):
            return "rejected"
        chosen = (from_caller or failed)[-1:] if failed else []
        if chosen and chosen[0].status in _DIAL_STATUS:
            return _DIAL_STATUS[chosen[0].status]
        for channel in reversed(dialled):
            if channel.cause in _CAUSE_STATUS:
                return _CAUSE_STATUS[channel.cause]
        return "missed" if parties.direction == "in" else "failed"


def _first_answered(channels: list[_Channel]) -> _Channel | None:
    confirmed = [c for c in channels if c.answered_at is not None]
    if confirmed:
        return min(confirmed, key=lambda c: c.answered_at or c.created_at)
    up = [c for c in channels if c.up_at is not None]
    return min(up, key=lambda c: c.up_at or c.created_at) if up else None


def _present(value: str | None) -> str | None:
    return None if value is None or value in _MISSING else value
