"""Asterisk call flows as AMI sessions, each with the outcome it must give: for the sandbox, tests and the replay.

Built the way Asterisk 16+ reports them (the recorded sessions in ``tests/fixtures/telephony/ami`` are the
model): every dial to a group, a forward or a mobile goes through a ``Local/...;1``/``;2`` pair, a party is
talking only once ``BridgeEnter`` puts it in a bridge with the other side (directly or through a Local pair),
and a leg that answers to play a prompt ("press 1 to accept") is bridged only with its own Local half until the
callee accepts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from .calls import CallRecord, caller_name

AmiEvent = dict[str, str]
TRUNK_DID = "74951234567"


@dataclass
class Leg:
    """One channel of a session and what its events say about it."""

    channel: str
    uniqueid: str
    linkedid: str
    number: str
    name: str = "<unknown>"
    exten: str = "s"
    state: str = "Down"

    def fields(self, prefix: str = "") -> dict[str, str]:
        codes = {"Down": "0", "Ring": "4", "Ringing": "5", "Up": "6"}
        values = {
            "Channel": self.channel,
            "ChannelState": codes[self.state],
            "ChannelStateDesc": self.state,
            "CallerIDNum": self.number,
            "CallerIDName": self.name,
            "ConnectedLineNum": "<unknown>",
            "ConnectedLineName": "<unknown>",
            "Context": "from-internal",
            "Exten": self.exten,
            "Priority": "1",
            "Uniqueid": self.uniqueid,
            "Linkedid": self.linkedid,
        }
        return {prefix + key: value for key, value in values.items()}


@dataclass
class Session:
    """Writes the events of one AMI session, with ``Timestamp`` headers that advance with :meth:`wait`."""

    start: float = 1_763_362_800.0
    events: list[AmiEvent] = field(default_factory=list)
    now: float = 0.0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _channels: itertools.count[int] = field(default_factory=lambda: itertools.count(0x20))
    _bridges: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.now = self.start

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def emit(self, event: str, **fields: str) -> None:
        self.events.append({"Event": event, "Privilege": "call,all", "Timestamp": f"{self.now:.6f}", **fields})

    def _uid(self) -> str:
        return f"{int(self.start)}.{next(self._ids)}"

    def new(self, endpoint: str, number: str, *, linkedid: str | None = None, name: str = "<unknown>",
            exten: str = "s", state: str = "Down") -> Leg:  # fmt: skip
        """A real channel (``PJSIP/101``, ``PJSIP/trunk``) appears."""
        uid = self._uid()
        leg = Leg(f"{endpoint}-{next(self._channels):08x}", uid, linkedid or uid, number, name, exten, state)
        self.emit("Newchannel", **leg.fields())
        return leg

    def local(self, exten: str, context: str, linkedid: str) -> tuple[Leg, Leg]:
        """A Local channel: its ``;1`` half is dialled, its ``;2`` half runs ``exten@context`` and dials on."""
        base = f"Local/{exten}@{context}-{next(self._channels):08x}"
        one = Leg(base + ";1", self._uid(), linkedid, "<unknown>", exten=exten)
        two = Leg(base + ";2", self._uid(), linkedid, "<unknown>", exten=exten, state="Ring")
        self.emit("Newchannel", **one.fields())
        self.emit("Newchannel", **two.fields())
        return one, two

    def state(self, leg: Leg, state: str) -> None:
        leg.state = state
        self.emit("Newstate", **leg.fields())

    def dial(self, source: Leg | None, dest: Leg, dial_string: str) -> None:
        fields = source.fields() if source is not None else {}  # Originate dials with no source channel
        self.emit("DialBegin", **fields, **dest.fields("Dest"), DialString=dial_string)

    def dial_end(self, source: Leg | None, dest: Leg, status: str) -> None:
        fields = source.fields() if source is not None else {}
        self.emit("DialEnd", **fields, **dest.fields("Dest"), DialStatus=status)

    def ring(self, source: Leg | None, dest: Leg, dial_string: str) -> None:
        self.dial(source, dest, dial_string)
        self.state(dest, "Ringing")

    def answer(self, source: Leg | None, dest: Leg) -> None:
        self.state(dest, "Up")
        self.dial_end(source, dest, "ANSWER")

    def bridge(self, *legs: Leg) -> str:
        bridge = f"bridge-{next(self._bridges):04d}"
        for count, leg in enumerate(legs, 1):
            self.emit("BridgeEnter", **leg.fields(), BridgeUniqueid=bridge, BridgeNumChannels=str(count))
        return bridge

    def move(self, leg: Leg, old: str, new: str) -> None:
        self.emit("BridgeLeave", **leg.fields(), BridgeUniqueid=old)
        self.emit("BridgeEnter", **leg.fields(), BridgeUniqueid=new)

    def hangup(self, *legs: Leg, cause: str = "16", bridge: str | None = None) -> None:
        for leg in legs:
            if bridge is not None:
                self.emit("BridgeLeave", **leg.fields(), BridgeUniqueid=bridge)
            text = {"16": "Normal Clearing", "17": "User busy", "19": "No answer", "21": "Call Rejected"}
            self.emit("Hangup", **leg.fields(), Cause=cause, **{"Cause-txt": text.get(cause, "Unknown")})


@dataclass(frozen=True)
class Expected:
    """The outcome a flow must give for one outside number: how many calls, how many answered, by whom."""

    number: str
    calls: int = 1
    answered: int = 1
    operator: str | None = None
    operators: tuple[str, ...] = ()
    direction: str = "in"
    name: str | None = None  # the name a new client gets from the caller id


@dataclass(frozen=True)
class Flow:
    name: str
    what: str
    events: list[AmiEvent]
    expected: tuple[Expected, ...]


# --- the flows -----------------------------------------------------------------------------------------------

CUSTOMER = "79161234567"
MOBILE_USER = "79035556677"


def _inbound(s: Session, number: str = CUSTOMER, name: str = "<unknown>") -> Leg:
    caller = s.new("PJSIP/trunk", number, name=name, exten=TRUNK_DID)
    s.state(caller, "Ring")
    return caller


def _answered_by(s: Session, caller: Leg, extension: str, *, talk: float = 30) -> tuple[Leg, str]:
    phone = s.new(f"PJSIP/{extension}", extension, linkedid=caller.linkedid)
    s.ring(caller, phone, extension)
    s.wait(4)
    s.answer(caller, phone)
    s.state(caller, "Up")
    bridge = s.bridge(caller, phone)
    s.wait(talk)
    return phone, bridge


def acceptance(outcome: str) -> list[AmiEvent]:
    """A caller is routed to a mobile user; the mobile leg answers to play "press 1 to accept"."""
    s = Session()
    caller = _inbound(s)
    one, two = s.local("600", "fixed-destination", caller.linkedid)
    s.dial(caller, one, "600@fixed-destination")
    out_one, out_two = s.local(MOBILE_USER, "world-out", caller.linkedid)
    s.dial(two, out_one, f"{MOBILE_USER}@world-out")
    mobile = s.new("PJSIP/trunk", MOBILE_USER, linkedid=caller.linkedid)
    s.ring(out_two, mobile, f"{MOBILE_USER}@trunk")
    s.state(out_one, "Ringing")
    s.state(one, "Ringing")
    s.wait(5)
    s.answer(out_two, mobile)  # the mobile network answers: the prompt plays on this leg only
    s.state(out_two, "Up")
    prompt = s.bridge(mobile, out_two)
    s.wait(6)
    if outcome == "accepted":
        s.emit("DTMFEnd", **mobile.fields(), Digit="1", Direction="Received", DurationMs="120")
        s.answer(two, out_one)
        s.state(two, "Up")
        inner = s.bridge(out_one, two)
        s.answer(caller, one)
        s.state(caller, "Up")
        outer = s.bridge(one, caller)
        s.wait(40)
        s.hangup(mobile, bridge=prompt)
        s.hangup(out_two, out_one, bridge=inner)
        s.hangup(two, one, caller, bridge=outer)
        return s.events
    if outcome == "rejected":
        s.emit("DTMFEnd", **mobile.fields(), Digit="2", Direction="Received", DurationMs="120")
    else:
        s.wait(10)  # nobody presses anything: the prompt times out
    s.hangup(mobile, bridge=prompt)
    s.hangup(out_two, out_one)
    s.dial_end(two, out_one, "NOANSWER")
    s.dial_end(caller, one, "NOANSWER")
    s.hangup(two, one)
    s.wait(1)
    s.hangup(caller)
    return s.events


def click_to_dial(outcome: str) -> list[AmiEvent]:
    """Originate: the operator's phone (101) rings first; once it answers, the customer is dialled."""
    s = Session()
    one, two = s.local("ctd", "click-to-dial", linkedid=f"{int(s.start)}.1")
    s.dial(None, one, "ctd@click-to-dial/n")
    phone = s.new("PJSIP/101", "101", linkedid=one.linkedid, exten="s")
    s.ring(two, phone, "101")
    s.state(one, "Ringing")
    s.wait(3)
    s.answer(two, phone)
    s.state(two, "Up")
    operator_side = s.bridge(phone, two)
    s.dial_end(None, one, "ANSWER")
    s.state(one, "Up")
    s.emit("OriginateResponse", ActionID="ctd-1", Response="Success", Channel=one.channel, Context="click-to-dial",
           Exten="ctd", Reason="4", Uniqueid=one.uniqueid, CallerIDNum="101", CallerIDName="<unknown>")  # fmt: skip
    trunk = s.new("PJSIP/trunk", CUSTOMER, linkedid=one.linkedid)
    s.ring(one, trunk, f"trunk/{CUSTOMER}")
    s.wait(6)
    if outcome == "answered":
        s.answer(one, trunk)
        customer_side = s.bridge(one, trunk)
        s.wait(50)
        s.hangup(trunk, bridge=customer_side)
        s.hangup(one, bridge=customer_side)
    else:
        status, cause = ("BUSY", "17") if outcome == "busy" else ("NOANSWER", "19")
        s.hangup(trunk, cause=cause)
        s.dial_end(one, trunk, status)
        s.hangup(one)
    s.hangup(two, phone, bridge=operator_side)
    return s.events


def attended_transfer() -> list[AmiEvent]:
    """101 answers, calls 102 on a second line, talks to 102, then joins the caller with 102."""
    s = Session()
    caller = _inbound(s)
    phone, first = _answered_by(s, caller, "101")
    s.emit("Hold", **phone.fields())
    consult = s.new("PJSIP/101", "101", exten="102")
    s.state(consult, "Ring")
    target = s.new("PJSIP/102", "102", linkedid=consult.linkedid)
    s.ring(consult, target, "102")
    s.wait(3)
    s.answer(consult, target)
    s.state(consult, "Up")
    second = s.bridge(consult, target)
    s.wait(10)
    s.emit("AttendedTransfer", Result="Success", OrigTransfererChannel=phone.channel,
           OrigTransfererUniqueid=phone.uniqueid, OrigTransfererLinkedid=phone.linkedid,
           SecondTransfererChannel=consult.channel, SecondTransfererUniqueid=consult.uniqueid,
           SecondTransfererLinkedid=consult.linkedid, TransfereeChannel=caller.channel,
           TransfereeUniqueid=caller.uniqueid, TransfereeLinkedid=caller.linkedid,
           TransferTargetChannel=target.channel, TransferTargetUniqueid=target.uniqueid,
           TransferTargetLinkedid=target.linkedid, TransferTargetCallerIDNum="102",
           DestType="Bridge", DestBridgeUniqueid=first, IsExternal="No")  # fmt: skip
    s.hangup(phone, bridge=first)
    s.move(target, second, first)
    s.hangup(consult, bridge=second)
    s.wait(60)
    s.hangup(target, caller, bridge=first)
    return s.events


def blind_transfer_to_group() -> list[AmiEvent]:
    """101 answers and sends the caller to ring group 600 (102 and 103); 103 picks up."""
    s = Session()
    caller = _inbound(s)
    phone, first = _answered_by(s, caller, "101")
    s.emit("BlindTransfer", Result="Success", TransfererChannel=phone.channel, TransfererUniqueid=phone.uniqueid,
           TransfererLinkedid=phone.linkedid, TransfereeChannel=caller.channel,
           TransfereeUniqueid=caller.uniqueid, TransfereeLinkedid=caller.linkedid, Extension="600",
           Context="from-internal", IsExternal="No", BridgeUniqueid=first)  # fmt: skip
    s.emit("BridgeLeave", **phone.fields(), BridgeUniqueid=first)
    s.hangup(phone)
    s.emit("BridgeLeave", **caller.fields(), BridgeUniqueid=first)
    one, two = s.local("600", "ring-group", caller.linkedid)
    s.dial(caller, one, "600@ring-group")
    a = s.new("PJSIP/102", "102", linkedid=caller.linkedid)
    b = s.new("PJSIP/103", "103", linkedid=caller.linkedid)
    s.ring(two, a, "102")
    s.ring(two, b, "103")
    s.state(one, "Ringing")
    s.wait(5)
    s.answer(two, b)
    s.dial_end(two, a, "CANCEL")
    s.hangup(a, cause="26")
    s.state(two, "Up")
    inner = s.bridge(b, two)
    s.answer(caller, one)
    outer = s.bridge(one, caller)
    s.wait(45)
    s.hangup(b, bridge=inner)
    s.hangup(two, bridge=inner)
    s.hangup(one, caller, bridge=outer)
    return s.events


def blonde_transfer() -> list[AmiEvent]:
    """101 answers, dials 102 and completes the transfer while 102 still rings; 102 then answers."""
    s = Session()
    caller = _inbound(s)
    phone, first = _answered_by(s, caller, "101")
    consult = s.new("PJSIP/101", "101", exten="102")
    s.state(consult, "Ring")
    target = s.new("PJSIP/102", "102", linkedid=consult.linkedid)
    s.ring(consult, target, "102")
    s.wait(2)
    s.emit("AttendedTransfer", Result="Success", OrigTransfererChannel=phone.channel,
           OrigTransfererUniqueid=phone.uniqueid, OrigTransfererLinkedid=phone.linkedid,
           SecondTransfererChannel=consult.channel, SecondTransfererUniqueid=consult.uniqueid,
           SecondTransfererLinkedid=consult.linkedid, TransfereeChannel=caller.channel,
           TransfereeUniqueid=caller.uniqueid, TransfereeLinkedid=caller.linkedid, DestType="Link",
           IsExternal="No")  # fmt: skip
    s.hangup(phone, bridge=first)
    s.wait(4)
    s.answer(consult, target)
    s.emit("BridgeEnter", **target.fields(), BridgeUniqueid=first)
    s.hangup(consult)
    s.wait(50)
    s.hangup(target, caller, bridge=first)
    return s.events


def transfer_to_queue() -> list[AmiEvent]:
    """101 answers and sends the caller to queue ``sales`` (extension 700); agent 104 answers there."""
    s = Session()
    caller = _inbound(s)
    phone, first = _answered_by(s, caller, "101")
    s.emit("BlindTransfer", Result="Success", TransfererChannel=phone.channel, TransfererUniqueid=phone.uniqueid,
           TransfererLinkedid=phone.linkedid, TransfereeChannel=caller.channel,
           TransfereeUniqueid=caller.uniqueid, TransfereeLinkedid=caller.linkedid, Extension="700",
           Context="from-internal", IsExternal="No", BridgeUniqueid=first)  # fmt: skip
    s.emit("BridgeLeave", **phone.fields(), BridgeUniqueid=first)
    s.hangup(phone)
    s.emit("BridgeLeave", **caller.fields(), BridgeUniqueid=first)
    s.emit("QueueCallerJoin", **caller.fields(), Queue="sales", Position="1", Count="1")
    agent = s.new("PJSIP/104", "104", linkedid=caller.linkedid)
    s.emit("AgentCalled", **caller.fields(), **agent.fields("Dest"), Queue="sales", Interface="PJSIP/104",
           MemberName="Agent 104")  # fmt: skip
    s.state(agent, "Ringing")
    s.wait(6)
    s.state(agent, "Up")
    s.emit("AgentConnect", **caller.fields(), **agent.fields("Dest"), Queue="sales", Interface="PJSIP/104",
           MemberName="Agent 104", HoldTime="7", RingTime="6")  # fmt: skip
    s.emit("QueueCallerLeave", **caller.fields(), Queue="sales", Count="0", Position="1")
    second = s.bridge(caller, agent)
    s.wait(80)
    s.hangup(agent, caller, bridge=second)
    return s.events


def queue_abandoned() -> list[AmiEvent]:
    """The caller waits in queue ``support`` while agents 101 and 102 ring, then hangs up."""
    s = Session()
    caller = _inbound(s)
    s.state(caller, "Up")  # the queue answers to play music on hold
    s.emit("QueueCallerJoin", **caller.fields(), Queue="support", Position="1", Count="1")
    agents = []
    for extension in ("101", "102"):
        agent = s.new(f"PJSIP/{extension}", extension, linkedid=caller.linkedid)
        s.emit("AgentCalled", **caller.fields(), **agent.fields("Dest"), Queue="support",
               Interface=f"PJSIP/{extension}", MemberName=f"Agent {extension}")  # fmt: skip
        s.state(agent, "Ringing")
        agents.append(agent)
    s.wait(25)
    s.emit("QueueCallerAbandon", **caller.fields(), Queue="support", Position="1", OriginalPosition="1",
           HoldTime="25")  # fmt: skip
    s.hangup(*agents, cause="0")
    s.hangup(caller)
    return s.events


def queue_answered(name: str = "<unknown>") -> list[AmiEvent]:
    """Queue ``support`` rings 101 and 102; 102 answers."""
    s = Session()
    caller = _inbound(s, name=name)
    s.state(caller, "Up")
    s.emit("QueueCallerJoin", **caller.fields(), Queue="support", Position="1", Count="1")
    agents = {}
    for extension in ("101", "102"):
        agent = s.new(f"PJSIP/{extension}", extension, linkedid=caller.linkedid)
        s.emit("AgentCalled", **caller.fields(), **agent.fields("Dest"), Queue="support",
               Interface=f"PJSIP/{extension}", MemberName=f"Agent {extension}")  # fmt: skip
        s.state(agent, "Ringing")
        agents[extension] = agent
    s.wait(8)
    s.state(agents["102"], "Up")
    s.emit("AgentConnect", **caller.fields(), **agents["102"].fields("Dest"), Queue="support",
           Interface="PJSIP/102", MemberName="Agent 102", HoldTime="8", RingTime="8")  # fmt: skip
    s.hangup(agents["101"], cause="26")
    bridge = s.bridge(caller, agents["102"])
    s.wait(70)
    s.hangup(agents["102"], caller, bridge=bridge)
    return s.events


def forwarded_to_phone() -> list[AmiEvent]:
    """101 forwards its calls to 102 (a 302 from the phone, or a follow-me rule); 102 answers."""
    s = Session()
    caller = _inbound(s)
    first = s.new("PJSIP/101", "101", linkedid=caller.linkedid)
    s.ring(caller, first, "101")
    s.wait(1)
    s.emit("DialState", **caller.fields(), **first.fields("Dest"), DialStatus="PROGRESS", Forward="102")
    s.hangup(first, cause="16")
    s.dial_end(caller, first, "CANCEL")
    one, two = s.local("102", "forward", caller.linkedid)
    s.dial(caller, one, "102@forward")
    second = s.new("PJSIP/102", "102", linkedid=caller.linkedid)
    s.ring(two, second, "102")
    s.state(one, "Ringing")
    s.wait(4)
    s.answer(two, second)
    s.state(two, "Up")
    inner = s.bridge(second, two)
    s.answer(caller, one)
    s.state(caller, "Up")
    outer = s.bridge(one, caller)
    s.wait(35)
    s.hangup(second, two, bridge=inner)
    s.hangup(one, caller, bridge=outer)
    return s.events


def forwarded_to_mobile() -> list[AmiEvent]:
    """101 forwards to its user's mobile; the mobile answers (no acceptance prompt)."""
    s = Session()
    caller = _inbound(s)
    one, two = s.local(MOBILE_USER, "follow-me", caller.linkedid)
    s.dial(caller, one, f"{MOBILE_USER}@follow-me")
    mobile = s.new("PJSIP/trunk", MOBILE_USER, linkedid=caller.linkedid)
    s.ring(two, mobile, f"trunk/{MOBILE_USER}")
    s.state(one, "Ringing")
    s.wait(7)
    s.answer(two, mobile)
    s.state(two, "Up")
    inner = s.bridge(mobile, two)
    s.answer(caller, one)
    s.state(caller, "Up")
    outer = s.bridge(one, caller)
    s.wait(25)
    s.hangup(mobile, two, bridge=inner)
    s.hangup(one, caller, bridge=outer)
    return s.events


def group_pickup() -> list[AmiEvent]:
    """The caller rings 101; 102 dials ``*8`` (Pickup) on its own line and takes the call."""
    s = Session()
    caller = _inbound(s)
    first = s.new("PJSIP/101", "101", linkedid=caller.linkedid)
    s.ring(caller, first, "101")
    s.wait(6)
    picker = s.new("PJSIP/102", "102", exten="*8")
    s.state(picker, "Ring")
    s.emit("Pickup", **picker.fields(), **first.fields("Target"))
    s.dial_end(caller, first, "ANSWER")
    s.hangup(first, cause="26")
    s.state(picker, "Up")
    s.state(caller, "Up")
    bridge = s.bridge(caller, picker)
    s.wait(40)
    s.hangup(picker, caller, bridge=bridge)
    return s.events


def named_caller(name: str, number: str) -> list[AmiEvent]:
    """An answered call from ``number`` whose trunk sends the caller id name ``name``."""
    s = Session()
    caller = _inbound(s, number=number, name=name)
    phone, bridge = _answered_by(s, caller, "101")
    s.hangup(phone, caller, bridge=bridge)
    return s.events


def _shifted(events: Iterable[Mapping[str, str]], tag: str) -> list[AmiEvent]:
    """The same session with its ids renamed, so several flows can be replayed to one tracker or hub."""
    shifted = []
    for event in events:
        copy = dict(event)
        for key, value in event.items():
            if key.endswith(("Uniqueid", "Linkedid")) and value:
                copy[key] = f"{tag}-{value}"
        shifted.append(copy)
    return shifted


_FLOWS: list[tuple[str, str, Callable[[], list[AmiEvent]], tuple[Expected, ...]]] = [
    ("acceptance_accepted", "to a mobile with 'press 1 to accept', accepted", lambda: acceptance("accepted"),
     (Expected(CUSTOMER, operator=MOBILE_USER, operators=(MOBILE_USER,)),)),
    ("acceptance_rejected", "to a mobile with an acceptance prompt, rejected", lambda: acceptance("rejected"),
     (Expected(CUSTOMER, answered=0, operator=MOBILE_USER),)),
    ("acceptance_timeout", "to a mobile with an acceptance prompt, nobody pressed", lambda: acceptance("timeout"),
     (Expected(CUSTOMER, answered=0, operator=MOBILE_USER),)),
    ("click_to_dial_answered", "Originate: 101 rings, then the customer answers", lambda: click_to_dial("answered"),
     (Expected(CUSTOMER, operator="101", operators=("101",), direction="out"),)),
    ("click_to_dial_no_answer", "Originate: 101 answers, the customer does not", lambda: click_to_dial("no_answer"),
     (Expected(CUSTOMER, answered=0, operator="101", direction="out"),)),
    ("click_to_dial_busy", "Originate: 101 answers, the customer is busy", lambda: click_to_dial("busy"),
     (Expected(CUSTOMER, answered=0, operator="101", direction="out"),)),
    ("attended_transfer", "101 consults 102, then transfers", attended_transfer,
     (Expected(CUSTOMER, operator="102", operators=("101", "102")),)),
    ("blind_transfer_group", "101 blind-transfers to ring group 600, 103 answers", blind_transfer_to_group,
     (Expected(CUSTOMER, operator="103", operators=("101", "103")),)),
    ("blonde_transfer", "101 transfers while 102 still rings", blonde_transfer,
     (Expected(CUSTOMER, operator="102", operators=("101", "102")),)),
    ("transfer_to_queue", "101 blind-transfers to queue sales, agent 104 answers", transfer_to_queue,
     (Expected(CUSTOMER, operator="104", operators=("101", "104")),)),
    ("queue_abandoned", "the caller leaves the queue before an agent answers", queue_abandoned,
     (Expected(CUSTOMER, answered=0),)),
    ("queue_answered", "queue rings 101 and 102, 102 answers", queue_answered,
     (Expected(CUSTOMER, operator="102", operators=("102",)),)),
    ("forward_to_phone", "101 forwards to 102", forwarded_to_phone,
     (Expected(CUSTOMER, operator="102", operators=("102",)),)),
    ("forward_to_mobile", "forwarded to the user's mobile, answered", forwarded_to_mobile,
     (Expected(CUSTOMER, operator=MOBILE_USER, operators=(MOBILE_USER,)),)),
    ("group_pickup", "rings 101, 102 picks it up with *8", group_pickup,
     (Expected(CUSTOMER, operator="102", operators=("102",)),)),
    ("caller_name_cyrillic", "an unknown caller whose trunk sends 'Пётр Иванов'",
     lambda: named_caller("Пётр Иванов", CUSTOMER),
     (Expected(CUSTOMER, operator="101", operators=("101",), name="Пётр Иванов"),)),
    ("caller_name_unknown", "caller id name '<unknown>' is no name", lambda: named_caller("<unknown>", CUSTOMER),
     (Expected(CUSTOMER, operator="101", operators=("101",)),)),
    ("caller_name_is_number", "caller id name that is the number itself", lambda: named_caller(CUSTOMER, CUSTOMER),
     (Expected(CUSTOMER, operator="101", operators=("101",)),)),
]  # fmt: skip


def _renumbered(events: list[AmiEvent], number: str) -> list[AmiEvent]:
    return [{key: value.replace(CUSTOMER, number) for key, value in event.items()} for event in events]


def flows() -> list[Flow]:
    """Every constructed flow, each with its own customer number and ids, so that all can share one replay."""
    built = []
    for index, (name, what, build, expected) in enumerate(_FLOWS):
        number = f"7916100{index:04d}"
        events = _shifted(_renumbered(build(), number), name)
        built.append(Flow(name, what, events, tuple(replace(e, number=number) for e in expected)))
    return built


@dataclass(frozen=True)
class Outcome:
    """What a replay gave for one outside number (or what it should give)."""

    calls: int
    answered: int
    operator: str | None
    operators: tuple[str, ...]
    direction: str | None
    name: str | None = None


def expected_outcome(expected: Expected) -> Outcome:
    operators = expected.operators
    return Outcome(expected.calls, expected.answered, expected.operator, operators, expected.direction, expected.name)


def outcomes(records: Iterable[CallRecord]) -> dict[str, Outcome]:
    """Per outside number (as the PBX sent it): calls, answered calls, the last call's operator and chain."""
    by_number: dict[str, list[CallRecord]] = {}
    for record in records:
        if record.direction != "internal" and record.number is not None:
            by_number.setdefault(record.number.raw, []).append(record)
    found = {}
    for number, calls in by_number.items():
        last = calls[-1]
        found[number] = Outcome(
            calls=len(calls),
            answered=sum(c.answered for c in calls),
            operator=last.extension,
            operators=tuple(last.operators),
            direction=last.direction,
            name=caller_name(last.caller_name, last.number),
        )
    return found
