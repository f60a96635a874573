"""Local stand-ins for the PBXs: an AMI server on loopback, signed Mango/Zadarma webhook senders, and an ASGI app
emulating Mango ``commands/callback`` and Zadarma ``/v1/request/callback/`` for click-to-call.

For tests, demos and ``hub sandbox telephony``; nothing here talks to a real PBX.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import random
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.core.errors import BadInput

from . import mango, zadarma
from .ami import AMIDecoder, Packet

AmiEvent = dict[str, str]
CallKind = Literal["answered", "busy", "no_answer", "cancelled", "rejected", "queue", "transfer", "outbound"]
BANNER = b"Asterisk Call Manager/5.0.1\r\n"


def load_ami_session(path: Path | str) -> list[AmiEvent]:
    """A recorded session (a JSON list of events); the recorder's empty ``content`` key is dropped."""
    events = json.loads(Path(path).read_text(encoding="utf-8"))
    return [{k: str(v) for k, v in event.items() if k != "content"} for event in events]


def encode_packet(fields: Mapping[str, str]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in fields.items()) + "\r\n").encode("utf-8")


# --- realistic generated calls -----------------------------------------------------------------------------

_MOBILE_PREFIXES = ("916", "903", "926", "985", "999", "915", "977")
_NAMES = ("Иванов Пётр", "Смирнова Анна", "Кузнецов Илья", "Попова Мария", "Соколов Дмитрий", "Лебедева Ольга")


def random_russian_number(rng: random.Random) -> str:
    """A Russian mobile number as Russian trunks send it: ``79161234567``."""
    return "7" + rng.choice(_MOBILE_PREFIXES) + "".join(str(rng.randrange(10)) for _ in range(7))


@dataclass
class CallScript:
    """Builds the AMI events of one call the way Asterisk 16+ with PJSIP reports them."""

    linkedid: str
    start: float
    trunk_number: str = "74951234567"
    events: list[AmiEvent] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    now: float = 0.0

    def __post_init__(self) -> None:
        self.now = self.start

    def uid(self) -> str:
        base = self.linkedid.rsplit(".", 1)[0]
        return f"{base}.{int(self.linkedid.rsplit('.', 1)[1]) + next(self._seq)}"

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def emit(self, event: str, **fields: str) -> None:
        self.events.append({"Event": event, "Privilege": "call,all", "Timestamp": f"{self.now:.6f}", **fields})

    def channel(self, name: str, uniqueid: str, number: str, cid_name: str, state: str, exten: str) -> dict[str, str]:
        codes = {"Down": "0", "Ring": "4", "Ringing": "5", "Up": "6"}
        return {
            "Channel": name,
            "ChannelState": codes[state],
            "ChannelStateDesc": state,
            "CallerIDNum": number,
            "CallerIDName": cid_name,
            "ConnectedLineNum": "<unknown>",
            "ConnectedLineName": "<unknown>",
            "Language": "ru",
            "AccountCode": "",
            "Context": "from-trunk",
            "Exten": exten,
            "Priority": "1",
            "Uniqueid": uniqueid,
            "Linkedid": self.linkedid,
        }

    def dest(self, fields: Mapping[str, str]) -> dict[str, str]:
        return {"Dest" + key: value for key, value in fields.items()}


def generate_call(
    kind: CallKind,
    *,
    rng: random.Random | None = None,
    linkedid: str | None = None,
    start: float | None = None,
    extension: str = "101",
    second_extension: str = "102",
    number: str | None = None,
    caller_name: str | None = None,
    queue_name: str = "support",
    record: bool = True,
) -> list[AmiEvent]:
    """The events of one realistic call: inbound (answered, busy, no answer, cancelled, rejected, queue,
    transfer) or outbound, with a Russian customer number, a Cyrillic caller name and ``Timestamp`` headers."""
    rng = rng or random.Random()
    start = start if start is not None else time.time()
    linkedid = linkedid or f"{int(start)}.{rng.randrange(1000, 9999)}"
    number = number or random_russian_number(rng)
    cid_name = caller_name or rng.choice(_NAMES)
    s = CallScript(linkedid, start)
    if kind == "outbound":
        return _outbound(s, extension, number, rng, record)
    trunk = s.channel(f"PJSIP/trunk-{rng.randrange(16**8):08x}", linkedid, number, cid_name, "Down", s.trunk_number)
    s.emit("Newchannel", **trunk)
    s.emit("Newstate", **{**trunk, "ChannelState": "4", "ChannelStateDesc": "Ring"})
    agent_ext = extension
    if kind == "queue":
        s.wait(1)
        s.emit("Newstate", **{**trunk, "ChannelState": "6", "ChannelStateDesc": "Up"})
        s.emit("QueueCallerJoin", **trunk, Queue=queue_name, Position="1", Count="1")
    agent = s.channel(
        f"PJSIP/{agent_ext}-{rng.randrange(16**8):08x}", s.uid(), agent_ext, "<unknown>", "Down", agent_ext
    )
    s.wait(0.5)
    s.emit("Newchannel", **agent)
    if kind == "queue":
        s.emit("AgentCalled", **trunk, **s.dest(agent), Queue=queue_name, Interface=f"PJSIP/{agent_ext}")
    else:
        s.emit("DialBegin", **trunk, **s.dest(agent), DialString=agent_ext)
    s.emit("Newstate", **{**agent, "ChannelState": "5", "ChannelStateDesc": "Ringing"})
    ring = {"answered": 6, "busy": 2, "no_answer": 30, "cancelled": 9, "rejected": 3, "queue": 5, "transfer": 4}[kind]
    s.wait(ring)
    if kind in ("busy", "no_answer", "rejected", "cancelled"):
        status, cause, text = {
            "busy": ("BUSY", "17", "User busy"),
            "no_answer": ("NOANSWER", "19", "User alerting, no answer"),
            "rejected": ("BUSY", "21", "Call Rejected"),
            "cancelled": ("CANCEL", "16", "Normal Clearing"),
        }[kind]
        if kind == "cancelled":
            s.emit("DialEnd", **trunk, **s.dest(agent), DialStatus="CANCEL")
            s.emit(
                "Hangup",
                **{**agent, "ChannelState": "5", "ChannelStateDesc": "Ringing"},
                Cause="0",
                **{"Cause-txt": "Unknown"},
            )
            s.emit("Hangup", **trunk, Cause=cause, **{"Cause-txt": text})
            return s.events
        s.emit(
            "Hangup",
            **{**agent, "ChannelState": "5", "ChannelStateDesc": "Ringing"},
            Cause=cause,
            **{"Cause-txt": text},
        )
        s.emit("DialEnd", **trunk, **s.dest(agent), DialStatus=status)
        s.wait(1)
        s.emit("Hangup", **trunk, Cause=cause, **{"Cause-txt": text})
        return s.events
    up_agent = {**agent, "ChannelState": "6", "ChannelStateDesc": "Up"}
    up_trunk = {**trunk, "ChannelState": "6", "ChannelStateDesc": "Up"}
    s.emit("Newstate", **up_agent)
    if kind == "queue":
        s.emit(
            "AgentConnect",
            **up_trunk,
            **s.dest(up_agent),
            Queue=queue_name,
            Interface=f"PJSIP/{agent_ext}",
            MemberName=f"Operator {agent_ext}",
            HoldTime=str(ring + 1),
            RingTime=str(ring),
        )
        s.emit("QueueCallerLeave", **up_trunk, Queue=queue_name, Count="0", Position="1")
    else:
        s.emit("DialEnd", **trunk, **s.dest(up_agent), DialStatus="ANSWER")
        s.emit("Newstate", **up_trunk)
    bridge = f"{rng.randrange(16**8):08x}-bridge"
    s.emit("BridgeEnter", **up_trunk, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="1")
    s.emit("BridgeEnter", **up_agent, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="2")
    if record:
        rec = f"/var/spool/asterisk/monitor/{linkedid}.wav"
        s.emit("VarSet", **up_trunk, Variable="MIXMONITOR_FILENAME", Value=rec)
    talk = rng.randint(20, 200)
    if kind == "transfer":
        s.wait(talk / 2)
        s.emit(
            "BlindTransfer",
            Result="Success",
            TransfererChannel=agent["Channel"],
            TransfererLinkedid=linkedid,
            TransfereeChannel=trunk["Channel"],
            TransfereeLinkedid=linkedid,
            Extension=second_extension,
            Context="from-internal",
            IsExternal="No",
            BridgeUniqueid=bridge,
        )
        s.emit("Hangup", **up_agent, Cause="16", **{"Cause-txt": "Normal Clearing"})
        second = s.channel(
            f"PJSIP/{second_extension}-{rng.randrange(16**8):08x}",
            s.uid(),
            second_extension,
            "<unknown>",
            "Down",
            second_extension,
        )
        s.emit("Newchannel", **second)
        s.emit("DialBegin", **up_trunk, **s.dest(second), DialString=second_extension)
        s.emit("Newstate", **{**second, "ChannelState": "5", "ChannelStateDesc": "Ringing"})
        s.wait(3)
        up_second = {**second, "ChannelState": "6", "ChannelStateDesc": "Up"}
        s.emit("Newstate", **up_second)
        s.emit("DialEnd", **up_trunk, **s.dest(up_second), DialStatus="ANSWER")
        s.emit("BridgeEnter", **up_second, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="2")
        s.wait(talk / 2)
        s.emit("Hangup", **up_second, Cause="16", **{"Cause-txt": "Normal Clearing"})
        s.emit("Hangup", **up_trunk, Cause="16", **{"Cause-txt": "Normal Clearing"})
        return s.events
    s.wait(talk)
    s.emit("BridgeLeave", **up_agent, BridgeUniqueid=bridge)
    s.emit("Hangup", **up_agent, Cause="16", **{"Cause-txt": "Normal Clearing"})
    s.emit("Hangup", **up_trunk, Cause="16", **{"Cause-txt": "Normal Clearing"})
    return s.events


def _outbound(s: CallScript, extension: str, number: str, rng: random.Random, record: bool) -> list[AmiEvent]:
    dialled = "8" + number[1:]
    phone = s.channel(
        f"PJSIP/{extension}-{rng.randrange(16**8):08x}", s.linkedid, extension, "Оператор", "Down", dialled
    )
    s.emit("Newchannel", **{**phone, "Context": "from-internal"})
    s.emit("Newstate", **{**phone, "ChannelState": "4", "ChannelStateDesc": "Ring"})
    trunk = s.channel(f"PJSIP/trunk-{rng.randrange(16**8):08x}", s.uid(), number, "<unknown>", "Down", dialled)
    s.emit("Newchannel", **trunk)
    s.emit("DialBegin", **phone, **s.dest(trunk), DialString=f"trunk/{dialled}")
    s.emit("Newstate", **{**trunk, "ChannelState": "5", "ChannelStateDesc": "Ringing"})
    s.wait(7)
    up_trunk = {**trunk, "ChannelState": "6", "ChannelStateDesc": "Up"}
    s.emit("Newstate", **up_trunk)
    s.emit("DialEnd", **phone, **s.dest(up_trunk), DialStatus="ANSWER")
    bridge = f"{rng.randrange(16**8):08x}-bridge"
    up_phone = {**phone, "ChannelState": "6", "ChannelStateDesc": "Up"}
    s.emit("BridgeEnter", **up_phone, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="1")
    s.emit("BridgeEnter", **up_trunk, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="2")
    if record:
        s.emit("VarSet", **phone, Variable="MIXMONITOR_FILENAME", Value=f"/var/spool/asterisk/monitor/{s.linkedid}.wav")
    s.wait(rng.randint(15, 120))
    s.emit("Hangup", **up_trunk, Cause="16", **{"Cause-txt": "Normal Clearing"})
    s.emit(
        "Hangup",
        **{**phone, "ChannelState": "6", "ChannelStateDesc": "Up"},
        Cause="16",
        **{"Cause-txt": "Normal Clearing"},
    )
    return s.events


def originate_events(
    action_id: str, *, channel: str, exten: str, answer: bool = True, rng: random.Random | None = None
) -> list[AmiEvent]:
    """What Asterisk reports after ``Originate`` (Async): the operator's phone rings; once it answers,
    ``OriginateResponse`` (Reason 4) and the customer leg; if it does not, a failed ``OriginateResponse``."""
    rng = rng or random.Random()
    start = time.time()
    s = CallScript(f"{int(start)}.{rng.randrange(1000, 9999)}", start)
    operator_number = channel.split("/", 1)[-1]
    phone = s.channel(f"{channel}-{rng.randrange(16**8):08x}", s.linkedid, operator_number, "<unknown>", "Down", exten)
    s.emit("Newchannel", **phone)
    s.emit("Newstate", **{**phone, "ChannelState": "5", "ChannelStateDesc": "Ringing"})
    if not answer:
        s.wait(30)
        s.emit("Hangup", **phone, Cause="19", **{"Cause-txt": "User alerting, no answer"})
        s.emit(
            "OriginateResponse",
            ActionID=action_id,
            Response="Failure",
            Channel=channel,
            Context="from-internal",
            Exten=exten,
            Reason="3",
            Uniqueid="<null>",
            CallerIDNum="<unknown>",
            CallerIDName="<unknown>",
        )
        return s.events
    s.wait(2)
    up_phone = {**phone, "ChannelState": "6", "ChannelStateDesc": "Up"}
    s.emit("Newstate", **up_phone)
    s.emit(
        "OriginateResponse",
        ActionID=action_id,
        Response="Success",
        Channel=phone["Channel"],
        Context="from-internal",
        Exten=exten,
        Reason="4",
        Uniqueid=phone["Uniqueid"],
        CallerIDNum=operator_number,
        CallerIDName="<unknown>",
    )
    trunk = s.channel(f"PJSIP/trunk-{rng.randrange(16**8):08x}", s.uid(), exten, "<unknown>", "Down", exten)
    s.emit("Newchannel", **trunk)
    s.emit("DialBegin", **up_phone, **s.dest(trunk), DialString=f"trunk/{exten}")
    s.emit("Newstate", **{**trunk, "ChannelState": "5", "ChannelStateDesc": "Ringing"})
    s.wait(5)
    up_trunk = {**trunk, "ChannelState": "6", "ChannelStateDesc": "Up"}
    s.emit("Newstate", **up_trunk)
    s.emit("DialEnd", **up_phone, **s.dest(up_trunk), DialStatus="ANSWER")
    bridge = f"{rng.randrange(16**8):08x}-bridge"
    s.emit("BridgeEnter", **up_phone, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="1")
    s.emit("BridgeEnter", **up_trunk, BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="2")
    s.wait(rng.randint(10, 60))
    s.emit("Hangup", **up_trunk, Cause="16", **{"Cause-txt": "Normal Clearing"})
    s.emit("Hangup", **up_phone, Cause="16", **{"Cause-txt": "Normal Clearing"})
    return s.events


# --- the AMI server ------------------------------------------------------------------------------------------


@dataclass
class _Client:
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    logged_in: bool = False
    closed: bool = False
    greeted: threading.Event = field(default_factory=threading.Event)


class AMISandbox:
    """An Asterisk Manager Interface on 127.0.0.1 for tests and demos.

    It sends the banner, checks ``Login`` against ``username``/``secret``, answers ``Ping``, ``Logoff``,
    ``CoreShowChannels`` and ``Originate`` (then plays the click-to-call's events). ``send_events`` queues
    events for the logged-in client; ``drop_after`` closes the connection after that many of them, keeping
    the rest for the next login. ``chunk_size`` cuts every write into pieces of that many bytes, at arbitrary
    byte boundaries (inside a UTF-8 character too). ``port`` 0 (the default) picks a free one.
    """

    def __init__(
        self,
        username: str = "hub",
        secret: str = "sandbox-secret",
        *,
        chunk_size: int | None = None,
        originate_answers: bool = True,
        seed: int | None = None,
        port: int = 0,
    ) -> None:
        self.username = username
        self._secret = SecretStr(secret)
        self.chunk_size = chunk_size
        self.originate_answers = originate_answers
        self.rng = random.Random(seed)
        self.logins = 0
        self.failed_logins = 0
        self.actions: list[Packet] = []
        self._outbox: queue.Queue[AmiEvent] = queue.Queue()
        self._drop_after: int | None = None
        self._client: _Client | None = None
        self._live: dict[str, AmiEvent] = {}
        self._stop = threading.Event()
        self._login_event = threading.Condition()
        self._server = socket.create_server(("127.0.0.1", port))
        self._server.settimeout(0.1)
        self.host, self.port = self._server.getsockname()[:2]
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"AMISandbox(127.0.0.1:{self.port}, user={self.username!r})"

    @property
    def secret(self) -> SecretStr:
        return self._secret

    def __enter__(self) -> AMISandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        thread = threading.Thread(target=self._accept_loop, name=f"ami-sandbox:{self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.drop()
        self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait_for_login(self, count: int = 1, timeout: float = 10.0) -> bool:
        with self._login_event:
            return self._login_event.wait_for(lambda: self.logins >= count, timeout)

    def send_events(self, events: Iterable[Mapping[str, str]], *, drop_after: int | None = None) -> None:
        """Queue events; with ``drop_after``, cut the connection once that many more have been sent."""
        if drop_after is not None:
            self._drop_after = drop_after
        for event in events:
            self._outbox.put(dict(event))

    def pending(self) -> int:
        return self._outbox.qsize()

    def drop(self) -> None:
        """Cut the current connection abruptly, as a PBX restart or a network failure would."""
        client, self._client = self._client, None
        if client is not None:
            client.closed = True
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
            client.sock.close()

    # internals ---------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.drop()
            client = _Client(sock)
            self._client = client
            for target in (self._read_loop, self._write_loop):
                thread = threading.Thread(target=target, args=(client,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _write(self, client: _Client, data: bytes) -> None:
        size = self.chunk_size or len(data)
        with client.lock:
            for offset in range(0, len(data), size):
                client.sock.sendall(data[offset : offset + size])
                if self.chunk_size:
                    time.sleep(0.0005)

    def _write_loop(self, client: _Client) -> None:
        try:
            self._write(client, BANNER)
            client.greeted.set()
            while not client.closed and not self._stop.is_set():
                if not client.logged_in:
                    time.sleep(0.01)
                    continue
                try:
                    event = self._outbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                self._track_live(event)
                self._write(client, encode_packet(event))
                if self._drop_after is not None:
                    self._drop_after -= 1
                    if self._drop_after <= 0:
                        self._drop_after = None
                        self.drop()
        except OSError:
            client.closed = True

    def _track_live(self, event: Mapping[str, str]) -> None:
        uniqueid = event.get("Uniqueid")
        if not uniqueid or not event.get("Channel"):
            return
        if event.get("Event") == "Hangup":
            self._live.pop(uniqueid, None)
        else:
            self._live[uniqueid] = dict(event)

    def _read_loop(self, client: _Client) -> None:
        decoder = AMIDecoder()
        decoder.feed(b"")  # actions come without a banner
        client.sock.settimeout(0.1)
        while not client.closed and not self._stop.is_set():
            try:
                data = client.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            client.greeted.wait(5)  # like Asterisk, answer nothing before the banner is out
            for packet in decoder.feed(data):
                try:
                    self._handle(client, packet)
                except OSError:
                    client.closed = True
                    return

    def _reply(self, client: _Client, packet: Packet, **fields: str) -> None:
        action_id = packet.get("ActionID")
        body = {**fields, **({"ActionID": action_id} if action_id else {})}
        self._write(client, encode_packet(body))

    def _handle(self, client: _Client, packet: Packet) -> None:
        action = packet.get("Action", "").lower()
        self.actions.append({k: ("***" if k.lower() == "secret" else v) for k, v in packet.items()})
        if action == "login":
            ok = packet.get("Username") == self.username and packet.get("Secret") == self._secret.get_secret_value()
            if not ok:
                self.failed_logins += 1
                self._reply(client, packet, Response="Error", Message="Authentication failed")
                self.drop()
                return
            self._reply(client, packet, Response="Success", Message="Authentication accepted")
            self._write(
                client, encode_packet({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"})
            )
            client.logged_in = True
            with self._login_event:
                self.logins += 1
                self._login_event.notify_all()
        elif not client.logged_in:
            self._reply(client, packet, Response="Error", Message="Permission denied")
        elif action == "ping":
            self._reply(client, packet, Response="Success", Ping="Pong", Timestamp=f"{time.time():.6f}")
        elif action == "logoff":
            self._reply(client, packet, Response="Goodbye", Message="Thanks for all the fish.")
            self.drop()
        elif action == "originate":
            self._originate(client, packet)
        elif action == "coreshowchannels":
            self._core_show_channels(client, packet)
        else:
            self._reply(client, packet, Response="Error", Message="Invalid/unknown command")

    def _originate(self, client: _Client, packet: Packet) -> None:
        channel, exten, action_id = packet.get("Channel"), packet.get("Exten"), packet.get("ActionID")
        if not channel or not exten or not action_id:
            self._reply(client, packet, Response="Error", Message="Channel and Exten are required")
            return
        self._reply(client, packet, Response="Success", Message="Originate successfully queued")
        self.send_events(
            originate_events(action_id, channel=channel, exten=exten, answer=self.originate_answers, rng=self.rng)
        )

    def _core_show_channels(self, client: _Client, packet: Packet) -> None:
        action_id = packet.get("ActionID", "")
        self._reply(client, packet, Response="Success", EventList="start", Message="Channels will follow")
        live = list(self._live.values())
        for event in live:
            fields = {k: v for k, v in event.items() if k not in ("Event", "Privilege", "Timestamp")}
            self._write(client, encode_packet({"Event": "CoreShowChannel", "ActionID": action_id, **fields}))
        self._write(
            client,
            encode_packet(
                {
                    "Event": "CoreShowChannelsComplete",
                    "ActionID": action_id,
                    "EventList": "Complete",
                    "ListItems": str(len(live)),
                }
            ),
        )


# --- webhook senders -------------------------------------------------------------------------------------------


class MangoSender:
    """Builds Mango VPBX webhooks signed like the real VPBX does, and posts them to a hub."""

    def __init__(self, api_key: str, api_salt: SecretStr | str) -> None:
        self.api_key = api_key
        self._salt = api_salt if isinstance(api_salt, SecretStr) else SecretStr(api_salt)

    def __repr__(self) -> str:
        return f"MangoSender(api_key={self.api_key!r})"

    def form(self, payload: Mapping[str, Any] | str) -> dict[str, str]:
        return mango.signed_form(payload, api_key=self.api_key, api_salt=self._salt)

    def body(self, payload: Mapping[str, Any] | str) -> bytes:
        return urlencode(self.form(payload)).encode()

    def post(self, base_url: str, kind: str, payload: Mapping[str, Any] | str, **kwargs: Any) -> httpx.Response:
        """``kind`` is ``call``, ``summary`` or ``recording``: POST to ``<base_url>/events/<kind>``."""
        return httpx.post(f"{base_url.rstrip('/')}/events/{kind}", data=self.form(payload), **kwargs)


class ZadarmaSender:
    """Builds Zadarma NOTIFY_* form bodies with their ``Signature`` header, and posts them to a hub."""

    def __init__(self, secret: SecretStr | str) -> None:
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)

    def __repr__(self) -> str:
        return "ZadarmaSender(secret=***)"

    def signed(self, form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        fields = dict(form)
        return fields, {"Signature": zadarma.notification_signature(fields, self._secret)}

    def body(self, form: Mapping[str, str]) -> bytes:
        return urlencode(dict(form)).encode()

    def post(self, url: str, form: Mapping[str, str], **kwargs: Any) -> httpx.Response:
        fields, headers = self.signed(form)
        return httpx.post(url, data=fields, headers=headers, **kwargs)


# --- the click-to-call API emulator ------------------------------------------------------------------------------


def create_app(
    *,
    mango_api_key: str = "sandbox-key",
    mango_api_salt: str = "sandbox-salt-0123456789",
    zadarma_key: str = "sandbox-key",
    zadarma_secret: str = "sandbox-secret-0123456789",
) -> Starlette:
    """Mango ``POST /vpbx/commands/callback`` and Zadarma ``GET /v1/request/callback/``, verifying signatures.

    Accepted commands are kept in ``app.state.mango_commands`` and ``app.state.zadarma_callbacks``.
    """
    mango_commands: list[dict[str, Any]] = []
    zadarma_callbacks: list[dict[str, str]] = []

    async def mango_callback(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            payload = mango.verify_mango_form(form, api_key=mango_api_key, api_salt=mango_api_salt)
        except BadInput as exc:
            return JSONResponse({"result": 3102, "message": str(exc)}, status_code=200)
        if not payload.get("to_number") or not isinstance(payload.get("from"), dict):
            return JSONResponse({"result": 3100, "message": "from.extension and to_number are required"})
        mango_commands.append(payload)
        return JSONResponse({"result": mango.MANGO_OK})

    async def zadarma_callback(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        key, _, sign = request.headers.get("Authorization", "").partition(":")
        expected = zadarma.api_signature(zadarma.CALLBACK_PATH, params, zadarma_secret)
        if key != zadarma_key or sign != expected:
            return JSONResponse({"status": "error", "message": "Not authorized"}, status_code=401)
        if not params.get("from") or not params.get("to"):
            return JSONResponse({"status": "error", "message": "from and to are required"}, status_code=400)
        zadarma_callbacks.append(params)
        return JSONResponse(
            {
                "status": "success",
                "from": params["from"],
                "to": params["to"],
                "time": int(datetime.now(UTC).timestamp()),
            }
        )

    app = Starlette(
        routes=[
            Route("/vpbx/commands/callback", mango_callback, methods=["POST"]),
            Route(zadarma.CALLBACK_PATH, zadarma_callback, methods=["GET", "POST"]),
        ]
    )
    app.state.mango_commands = mango_commands
    app.state.zadarma_callbacks = zadarma_callbacks
    return app
