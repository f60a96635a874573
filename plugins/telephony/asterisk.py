"""Follow Asterisk calls through their AMI events and report each one once: ringing, then finished.

Events are grouped by ``Linkedid`` (one customer call, however many channels it spawns); ``Local/`` channels
are internal plumbing and never a party. Feeding the same events twice, or again after a reconnect, reports
nothing new: finished call ids are remembered.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from hub.core.bounds import in_time_range

from .calls import (
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


@dataclass(eq=False)
class _Channel:
    name: str
    uniqueid: str
    linkedid: str
    created_at: datetime
    order: int
    number: str | None = None
    caller_name: str | None = None
    first_exten: str | None = None
    dial_exten: str | None = None
    dialed: bool = False
    dialed_number: str | None = None  # the outside number a trunk leg was dialled to (a mobile user, a customer)
    rang: bool = False
    answered_at: datetime | None = None
    up_at: datetime | None = None
    hungup: bool = False
    cause: str | None = None
    bridge: str | None = None
    # Real channels this one has talked to (joined through bridges and Local pairs), first contact first.
    connected: list[tuple[_Channel, datetime]] = field(default_factory=list)
    calls: set[str] = field(default_factory=set)

    @property
    def local(self) -> bool:
        return self.name.startswith("Local/")

    @property
    def local_pair(self) -> str:
        """``Local/101@ctx-0000002d;1`` and ``;2`` are the two halves of one Local channel."""
        return self.name.rsplit(";", 1)[0]

    @property
    def peer(self) -> str:
        """``PJSIP/101-0000002a`` -> ``101``; ``SIP/trunk-00000001`` -> ``trunk``."""
        resource = self.name.split("/", 1)[-1]
        head, sep, _ = resource.rpartition("-")
        return head if sep else resource

    def connect(self, other: _Channel, at: datetime) -> None:
        if all(seen is not other for seen, _ in self.connected):
            self.connected.append((other, at))


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
    bridged: bool = False  # Asterisk reported bridges for this call: they, not dial results, say who talked
    leg_of: str | None = None  # a consultation or pickup line, part of that customer call: not a call of its own


@dataclass
class _Parties:
    direction: CallDirection
    number: str | None
    customer: _Channel | None  # the outside party's leg (inbound caller, outbound callee); None when internal
    inside: _Channel | None  # the internal party that placed the call (outbound, internal), or None
    talked: list[tuple[_Channel, datetime]]  # who the customer (or the inside caller) talked to, in order
    rang: list[_Channel]


class AsteriskCallTracker:
    """Feed AMI events one at a time with :meth:`feed`; get back ``RingingNotice``, ``CallRecord`` and
    ``OriginateResult`` values.

    ``extensions`` lists operator extensions (or endpoint names) known to be internal; besides them, a digit
    string up to ``max_extension_length`` long is an extension. Event times come from the ``Timestamp``
    header (``timestampevents = yes`` in ``manager.conf``) or, without it, from ``clock``.

    A call is answered when its outside party is joined with another real party: through ``BridgeEnter``
    into one bridge, following ``Local/...;1`` to ``;2``. A leg that answers only to play a prompt ("press 1
    to accept"), voicemail or an IVR is never bridged with the caller, so it does not count. The operator is
    the last internal party the customer talked to; the parties before it make the transfer chain.
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
        self._channels: dict[str, _Channel] = {}
        self._bridges: dict[str, set[_Channel]] = {}
        self._local_pairs: dict[str, set[_Channel]] = {}
        self._order = itertools.count()
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
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "Bridge": self._on_bridge_link,
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

    def answered_by(self, linkedid: str) -> str | None:
        """For a call in progress that has reached a conversation: who answered for the company so far (the
        operator's extension, or ``""`` when it cannot be named); None while nobody talks to the customer."""
        call = self._calls.get(linkedid)
        if call is None:
            return None
        parties = self._parties(call)
        if not parties.talked:
            return None
        operators = self._operators(parties)
        return operators[-1] if operators and parties.direction == "in" else (self._label(parties.inside) or "")

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
        records: list[CallRecord] = []
        for call in stale:
            log.warning("ami_call_closed_stale", linkedid=call.linkedid, silent_s=(now - call.last_at).total_seconds())
            records += self._finish(call, call.last_at)
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
        channel = self._channels.get(uniqueid)
        if channel is None:
            channel = self._channels[uniqueid] = _Channel(
                name=name, uniqueid=uniqueid, linkedid=call.linkedid, created_at=at, order=next(self._order)
            )
            channel.first_exten = _present(event.get(prefix + "Exten"))
            if channel.local:
                self._local_pairs.setdefault(channel.local_pair, set()).add(channel)
        if call.linkedid not in channel.calls:
            channel.calls.add(call.linkedid)
            call.channels[uniqueid] = channel
        channel.name = name
        number = event.get(prefix + "CallerIDNum")
        if number is not None and number not in _MISSING:
            channel.number = number
        caller_name = _present(event.get(prefix + "CallerIDName"))
        if caller_name is not None and caller_name.strip():
            channel.caller_name = caller_name.strip()
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
        self._leave_bridge(channel)
        if channel.local:
            self._local_pairs.get(channel.local_pair, set()).discard(channel)
        if not channel.local and channel.cause:
            call.last_cause = channel.cause
        # A channel can belong to more calls than its own (its Linkedid changed, or it was bridged across).
        done: list[CallUpdate] = []
        for linkedid in sorted(channel.calls):
            other = self._calls.get(linkedid)
            if other is not None and all(c.hungup for c in other.channels.values()):
                done += self._finish(other, at)
        return done

    def _on_dial_begin(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("DestLinkedid") or event.get("Linkedid"), at)
        if call is None:
            return []
        dest = self._channel(call, event, at, prefix="Dest")
        if dest is not None:
            dest.dialed = True
            dest.dialed_number = dest.dialed_number or self._outside_number(event.get("DialString"), dest.peer)
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

    # --- bridges: who talks to whom --------------------------------------------------------------------------

    def _on_bridge_enter(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        call = self._call_for(event.get("Linkedid"), at)
        bridge = event.get("BridgeUniqueid")
        if call is None or not bridge:
            return []
        channel = self._channel(call, event, at)
        if channel is None:
            return []
        self._leave_bridge(channel)
        channel.bridge = bridge
        self._bridges.setdefault(bridge, set()).add(channel)
        for linkedid in channel.calls:
            if linkedid in self._calls:
                self._calls[linkedid].bridged = True
        self._join(self._talking_with(channel), at)
        return []

    def _on_bridge_leave(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        channel = self._channels.get(event.get("Uniqueid") or "")
        if channel is not None and channel.bridge == event.get("BridgeUniqueid"):
            self._leave_bridge(channel)
        return []

    def _on_bridge_link(self, event: Mapping[str, str], at: datetime) -> list[CallUpdate]:
        """Asterisk 11 and older: ``Bridge`` with ``Bridgestate: Link`` joins ``Channel1`` and ``Channel2``."""
        if event.get("Bridgestate") != "Link":
            return []
        first = self._channels.get(event.get("Uniqueid1") or "")
        second = self._channels.get(event.get("Uniqueid2") or "")
        if first is None or second is None:
            return []
        group = self._talking_with(first) + [
            c for c in self._talking_with(second) if c not in self._talking_with(first)
        ]
        self._join(group, at)
        return []

    def _leg_of(self, call: _Call, channel: _Channel, group: list[_Channel]) -> str | None:
        """A line of an operator that picked up an outside caller's call: that call is where it belongs."""
        if channel.dialed or self._is_trunk(channel) or any(self._is_trunk(c) for c in call.channels.values()):
            return None
        outside = [c for c in group if self._is_trunk(c) and call.linkedid not in c.calls]
        return outside[0].linkedid if outside else None

    def _leave_bridge(self, channel: _Channel) -> None:
        if channel.bridge is not None:
            members = self._bridges.get(channel.bridge)
            if members is not None:
                members.discard(channel)
                if not members:
                    del self._bridges[channel.bridge]
            channel.bridge = None

    def _talking_with(self, start: _Channel) -> list[_Channel]:
        """The real channels joined with ``start`` now: through bridges and both halves of Local channels."""
        seen = {start}
        stack = [start]
        while stack:
            channel = stack.pop()
            near: set[_Channel] = set()
            if channel.bridge is not None:
                near |= self._bridges.get(channel.bridge, set())
            if channel.local:
                near |= self._local_pairs.get(channel.local_pair, set())
            for other in near:
                if other not in seen and not other.hungup:
                    seen.add(other)
                    stack.append(other)
        return sorted((c for c in seen if not c.local), key=lambda c: c.order)

    def _join(self, group: list[_Channel], at: datetime) -> None:
        if len(group) < 2:
            return
        for channel in group:
            for linkedid in channel.calls:
                call = self._calls.get(linkedid)
                if call is not None:
                    call.bridged = True
                    call.leg_of = call.leg_of or self._leg_of(call, channel, group)
            for other in group:
                if other is not channel:
                    channel.connect(other, at)

    # --- the rest of a call's story ----------------------------------------------------------------------------

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
        consult = self._calls.get(event.get("SecondTransfererLinkedid") or "")
        if call is not None and consult is not None and consult is not call and event.get("Result") == "Success":
            consult.leg_of = call.linkedid  # the consultation line is part of the transferred call
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
        channel = self._channels.get(uniqueid or "")
        linkedid = channel.linkedid if channel is not None else None
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
        return [record for call in gone for record in self._finish(call, call.last_at)]

    # --- who is who --------------------------------------------------------------------------------------------

    def _is_extension(self, number: str | None) -> bool:
        return is_extension(number, self.extensions, self.max_extension_length)

    def _outside_number(self, dial_string: str | None, peer: str) -> str | None:
        """The outside number in a dial string: ``trunk/89161234567``, ``+79161234567@trunk`` -> the number;
        ``101`` or ``150010002/150010002/10.0.0.1!!201`` (a phone) -> None."""
        head = (dial_string or "").split("!", 1)[0]
        for token in re.split(r"[/@,]", head):
            token = token.strip()
            if token and token != peer and _PHONE_LIKE.fullmatch(token) and not self._is_extension(token):
                return token
        return None

    def _is_trunk(self, channel: _Channel) -> bool:
        """A leg to the outside world: a caller from outside, or a leg dialled to an outside number."""
        if channel.local or channel.peer in self.extensions:
            return False
        if channel.dialed:
            return channel.dialed_number is not None
        return not self._is_extension(channel.number)

    def _label(self, channel: _Channel | None) -> str | None:
        """How an operator is named: the extension, the endpoint, or the outside number of a mobile user;
        never a trunk's endpoint name."""
        if channel is None:
            return None
        if channel.peer in self.extensions:
            return channel.peer
        if self._is_trunk(channel):
            return channel.dialed_number or channel.number
        if self._is_extension(channel.number) and not self._group_number(channel):
            return channel.number
        return channel.peer

    def _group_number(self, channel: _Channel) -> bool:
        """A dialled phone shows the number that was dialled (its CallerIDNum): for a ring group that is the
        group's number, shared by every phone it rang, so it does not name the phone that answered."""
        if not channel.dialed or channel.number is None:
            return False
        for linkedid in channel.calls:
            call = self._calls.get(linkedid)
            for other in call.channels.values() if call is not None else ():
                shared = other.dialed and not other.local and other.number == channel.number
                if shared and other is not channel and other.peer != channel.peer:
                    return True
        return False

    def _parties(self, call: _Call) -> _Parties:
        real = sorted((c for c in call.channels.values() if not c.local), key=lambda c: c.order)
        if not real:
            return _Parties("internal", None, None, None, [], [])
        first = real[0]
        if not first.dialed and self._is_trunk(first):
            agents = [c for c in real[1:] if c.dialed or c.rang]
            return _Parties("in", first.number, first, None, self._talked(call, first, agents), agents)
        # Placed inside: by an operator's phone, or by Originate (click-to-call), which rings the phone first.
        inside = next((c for c in real if not self._is_trunk(c)), None)
        outside = [c for c in real if c is not inside and self._is_trunk(c)]
        if outside:
            talks = {c: self._talked(call, c, [], dialled_by=inside or first) for c in outside}
            customer = next((c for c in outside if talks[c]), outside[0])
            number = customer.dialed_number or customer.number
            return _Parties("out", number, customer, inside, talks[customer], [])
        caller = inside or first
        others = [c for c in real if c is not caller]
        dialled = caller.dial_exten
        if dialled and not self._is_extension(dialled) and _PHONE_LIKE.fullmatch(dialled):
            # An outside number dialled through a trunk whose dial string hides it (or no channel at all).
            callee = next((c for c in others if c.dialed), None)
            talked = self._talked(call, callee, [], dialled_by=caller) if callee is not None else []
            return _Parties("out", dialled, callee, caller, talked, [])
        rang = [c for c in others if c.rang or c.dialed]
        return _Parties("internal", None, None, caller, self._talked(call, caller, others), rang)

    def _talked(
        self, call: _Call, party: _Channel, candidates: list[_Channel], *, dialled_by: _Channel | None = None
    ) -> list[tuple[_Channel, datetime]]:
        """Who ``party`` talked to, first contact first.

        Without bridge events (filtered out, or an Asterisk before 12) an answered dial stands in: the first
        of ``candidates`` that answered, or, for a dialled ``party``, ``dialled_by`` once ``party`` answered.
        """
        talked = [(c, at) for c, at in party.connected if not c.local]
        if talked or call.bridged:
            return talked
        if dialled_by is not None:
            when = party.answered_at or party.up_at
            return [(dialled_by, when)] if when is not None else []
        answered = [c for c in candidates if c.answered_at is not None] or [c for c in candidates if c.up_at]
        answered.sort(key=lambda c: c.answered_at or c.up_at or c.created_at)
        return [(c, c.answered_at or c.up_at or c.created_at) for c in answered[:1]]

    def _operators(self, parties: _Parties) -> list[str]:
        """Who answered for the company, in order, each once (the last is the operator of the call)."""
        labels: list[str] = []
        for channel, _ in parties.talked:
            if parties.direction == "out" and self._is_trunk(channel):
                continue
            label = self._label(channel)
            if label and label not in labels:
                labels.append(label)
        return labels

    def _ringing(self, call: _Call, channel: _Channel, at: datetime) -> list[CallUpdate]:
        parties = self._parties(call)
        if parties.direction == "internal" or parties.number is None:
            return []
        if parties.direction == "in" and (channel is parties.customer or not channel.dialed):
            return []
        call.rang_notified = True
        operator = channel if parties.direction == "in" else parties.inside
        return [
            RingingNotice(
                call_id=call.linkedid,
                system="asterisk",
                account=self.account,
                direction=parties.direction,
                number=self._number(parties.number),
                extension=self._label(operator),
                at=at,
            )
        ]

    def _number(self, raw: str | None) -> PhoneNumber | None:
        return parse_number(raw, self.region)

    # --- finishing ---------------------------------------------------------------------------------------------

    def _finish(self, call: _Call, at: datetime) -> list[CallRecord]:
        """The finished call (none for a line that was only part of another call)."""
        parties = self._parties(call)
        if call.leg_of is not None and parties.direction == "internal":
            self._forget(call)
            log.info("call_leg_finished", system="asterisk", call_id=call.linkedid, part_of=call.leg_of)
            return []
        operators = self._operators(parties)
        answered = bool(parties.talked)
        status: CallStatus = "answered" if answered else self._failure(call, parties)
        if parties.direction == "in":
            extension = operators[-1] if operators else self._only_one(parties.rang)
        elif parties.direction == "out":
            extension = operators[-1] if operators else self._label(parties.inside)
        else:
            extension = self._label(parties.inside)
        customer = parties.customer
        record = CallRecord(
            call_id=call.linkedid,
            system="asterisk",
            account=self.account,
            direction=parties.direction,
            number=self._number(parties.number),
            extension=extension,
            status=status,
            started_at=call.first_at,
            answered_at=parties.talked[0][1] if answered else None,
            ended_at=at,
            queue=call.queue,
            transferred_to=operators[-1] if len(operators) > 1 else call.transferred_to,
            recording=call.recording,
            originate_id=call.originate_id,
            line_number=customer.first_exten if customer is not None and parties.direction == "in" else None,
            disconnect_reason=call.last_cause,
            rang=[e for e in dict.fromkeys(self._label(c) for c in parties.rang) if e],
            operators=operators,
            caller_name=customer.caller_name if customer is not None and parties.direction == "in" else None,
        ).with_durations()
        self._forget(call)
        log.info(
            "call_finished",
            system="asterisk",
            call_id=record.call_id,
            direction=record.direction,
            status=record.status,
            extension=record.extension,
        )
        return [record]

    def _only_one(self, rang: list[_Channel]) -> str | None:
        """An unanswered call names an operator only when it rang just one."""
        labels = {self._label(c) for c in rang}
        return labels.pop() if len(labels) == 1 else None

    def _forget(self, call: _Call) -> None:
        del self._calls[call.linkedid]
        for uniqueid, channel in call.channels.items():
            channel.calls.discard(call.linkedid)
            if not channel.calls and self._channels.get(uniqueid) is channel:
                del self._channels[uniqueid]
                self._leave_bridge(channel)
                pair = self._local_pairs.get(channel.local_pair)
                if pair is not None:
                    pair.discard(channel)
                    if not pair:
                        del self._local_pairs[channel.local_pair]
        self._finished[call.linkedid] = None
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)

    def _failure(self, call: _Call, parties: _Parties) -> CallStatus:
        if call.abandoned:
            return "cancelled"
        failed = [r for r in call.dial_results if r.status and r.status != "ANSWER"]
        caller = parties.customer if parties.direction == "in" else parties.inside
        from_caller = [r for r in failed if caller is not None and r.source == caller.uniqueid]
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


_PHONE_LIKE = re.compile(r"\+?\d{6,}")


def _present(value: str | None) -> str | None:
    return None if value is None or value in _MISSING else value
