"""The Asterisk Manager Interface protocol: packet decoder, action encoder and a reconnecting connection.

AMI is a TCP stream of ``Key: Value`` lines, each packet ending with an empty line (CRLF). Bytes are decoded
only once a whole packet is in, so a multi-byte character split across two reads is never broken.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog
from pydantic import SecretStr

from hub.core.errors import BadInput, ExternalAPIError

log = structlog.get_logger("hub.telephony.ami")

Packet = dict[str, str]
ActionValue = str | int | float | bool | None

BANNER_PREFIX = b"Asterisk Call Manager"
_END_COMMAND = b"--END COMMAND--"
_MAX_PACKET_BYTES = 1_000_000
# Fields that carry credentials: never logged, never echoed in exceptions.
_SECRET_FIELDS = frozenset({"secret", "key", "password"})


class AMIDecoder:
    """Bytes in, whole packets out.

    ``feed`` takes whatever one ``recv`` returned and gives back the packets completed by it, in order. The
    ``Asterisk Call Manager/x.y`` banner is remembered in ``banner``; LF-only line ends are tolerated; an
    old-style ``Response: Follows`` block runs until ``--END COMMAND--`` and its text lands in ``Output``.
    A packet that is not ``Key: Value`` lines is logged and skipped (``malformed`` counts them).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._expect_banner = True
        self.banner: str | None = None
        self.malformed = 0

    def reset(self) -> None:
        """Forget a half-read packet; call after the connection is replaced."""
        self._buffer.clear()
        self._expect_banner = True
        self.banner = None

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        packets: list[Packet] = []
        if self._expect_banner and not self._take_banner():
            return packets
        while True:
            raw = self._take_raw_packet()
            if raw is None:
                break
            packet = self._parse(raw)
            if packet is not None:
                packets.append(packet)
        if len(self._buffer) > _MAX_PACKET_BYTES:
            log.warning("ami_packet_too_large", bytes=len(self._buffer), action="dropped; is this an AMI port?")
            self.malformed += 1
            self._buffer.clear()
        return packets

    def _take_banner(self) -> bool:
        """Strip the banner line if the stream starts with one; False while that cannot be told yet."""
        end = self._buffer.find(b"\n")
        if end < 0 and BANNER_PREFIX.startswith(bytes(self._buffer[: len(BANNER_PREFIX)])):
            return False
        if end < 0 and bytes(self._buffer).startswith(BANNER_PREFIX):
            return False
        if end >= 0 and bytes(self._buffer).startswith(BANNER_PREFIX):
            self.banner = bytes(self._buffer[:end]).rstrip(b"\r").decode("utf-8", "replace")
            del self._buffer[: end + 1]
        # Without a banner (a proxy, a replay) the stream is read as packets straight away.
        self._expect_banner = False
        return True

    def _take_raw_packet(self) -> bytes | None:
        end, sep_len = _find_separator(self._buffer, 0)
        if end < 0:
            return None
        head = bytes(self._buffer[:end]).lstrip(b"\r\n")
        if head.startswith(b"Response: Follows") and _END_COMMAND not in head:
            marker = self._buffer.find(_END_COMMAND)
            if marker < 0:
                return None
            end, sep_len = _find_separator(self._buffer, marker)
            if end < 0:
                return None
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + sep_len]
        return raw

    def _parse(self, raw: bytes) -> Packet | None:
        text = _decode(raw).strip("\r\n")
        if not text.strip():
            return None
        packet: Packet = {}
        output: list[str] = []
        bad_lines = 0
        for line in text.replace("\r\n", "\n").split("\n"):
            key, sep, value = line.partition(":")
            if sep and key and " " not in key.strip() and key == key.strip():
                packet[key] = value[1:] if value.startswith(" ") else value
            elif line.strip() and line.strip() != _END_COMMAND.decode():
                output.append(line)
                bad_lines += 1
        if output:
            packet["Output"] = "\n".join([packet["Output"], *output]) if "Output" in packet else "\n".join(output)
        if not {"Event", "Response", "Action"} & packet.keys():
            self.malformed += 1
            log.warning("ami_malformed_packet", preview=_preview(text), action="skipped")
            return None
        if bad_lines and packet.get("Response") != "Follows":
            log.warning("ami_malformed_lines", lines=bad_lines, ami_event=packet.get("Event") or packet.get("Response"))
        return packet


def _find_separator(buffer: bytearray, start: int) -> tuple[int, int]:
    crlf = buffer.find(b"\r\n\r\n", start)
    lf = buffer.find(b"\n\n", start)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return crlf, 4 if crlf >= 0 else 0


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Old Asterisk installs in Russia often carry caller names in Windows-1251.
        return raw.decode("cp1251", "replace")


def _preview(text: str, limit: int = 120) -> str:
    lines = []
    for line in text.splitlines():
        key, sep, _ = line.partition(":")
        lines.append(f"{key}: ***" if sep and key.strip().lower() in _SECRET_FIELDS else line)
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else joined[:limit] + "…"


# --- actions --------------------------------------------------------------------------------------------------


def encode_action(action: str, fields: Mapping[str, ActionValue] | Iterable[tuple[str, ActionValue]] = ()) -> bytes:
    """One action packet. ``fields`` may repeat a key (``Variable``) when given as pairs; ``None`` is left out.

    A value with a line break would let it smuggle another header in: :class:`BadInput` is raised instead.
    """
    pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    lines = [f"Action: {action}"]
    for key, value in pairs:
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if any(ch in text or ch in key for ch in "\r\n"):
            shown = "***" if key.lower() in _SECRET_FIELDS else repr(text)
            raise BadInput(f"AMI action {action}: field {key} holds a line break ({shown}); remove it")
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def new_action_id() -> str:
    return uuid.uuid4().hex


def login_action(username: str, secret: str, action_id: str, events: str = "call,agent") -> bytes:
    return encode_action("Login", {"ActionID": action_id, "Username": username, "Secret": secret, "Events": events})


def ping_action(action_id: str) -> bytes:
    return encode_action("Ping", {"ActionID": action_id})


def logoff_action(action_id: str | None = None) -> bytes:
    return encode_action("Logoff", {"ActionID": action_id})


@dataclass(frozen=True)
class OriginateRequest:
    """Click-to-call: ring ``channel`` (the operator's phone), then dial ``exten`` in ``context``."""

    channel: str
    exten: str
    context: str
    priority: int = 1
    caller_id: str | None = None
    timeout_s: float = 30.0
    variables: Mapping[str, str] = field(default_factory=dict)
    account_code: str | None = None


def originate_action(request: OriginateRequest, action_id: str) -> bytes:
    """``Originate`` with ``Async: true``: Asterisk answers at once and reports with ``OriginateResponse``."""
    pairs: list[tuple[str, ActionValue]] = [
        ("ActionID", action_id),
        ("Channel", request.channel),
        ("Exten", request.exten),
        ("Context", request.context),
        ("Priority", request.priority),
        ("Timeout", int(request.timeout_s * 1000)),
        ("CallerID", request.caller_id),
        ("Account", request.account_code),
        ("Async", True),
    ]
    pairs += [("Variable", f"{name}={value}") for name, value in request.variables.items()]
    return encode_action("Originate", pairs)


# --- the connection ------------------------------------------------------------------------------------------


class AMILoginError(ExternalAPIError):
    """Asterisk refused the login: the username or secret in ``HUB_TELEPHONY__AMI__*`` is wrong."""


@dataclass
class ConnectionStats:
    connects: int = 0
    disconnects: int = 0
    packets: int = 0
    malformed: int = 0
    last_error: str | None = None


class AMIConnection:
    """A manager session that stays up: log in, read events, reconnect with exponential backoff after a drop.

    ``run(stop)`` is the listener body (it returns soon after ``stop`` is set). Every event packet is passed to
    ``on_event`` in the reading thread; responses to our own actions are matched by ``ActionID``.
    ``originate`` may be called from any thread while connected.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: SecretStr | str,
        *,
        on_event: Callable[[Packet], None],
        on_connected: Callable[[], None] | None = None,
        events: str = "call,agent",
        reconnect_initial: float = 1.0,
        reconnect_max: float = 60.0,
        ping_interval: float = 20.0,
        connect_timeout: float = 10.0,
        response_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
        self.on_event = on_event
        self.on_connected = on_connected
        self.events = events
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.ping_interval = ping_interval
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.stats = ConnectionStats()
        self.connected = threading.Event()
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._responses: dict[str, Packet] = {}
        self._waiting: dict[str, threading.Event] = {}
        self._state_lock = threading.Lock()
        self._counter = itertools.count(1)

    def __repr__(self) -> str:
        return f"AMIConnection({self.username}@{self.host}:{self.port}, connected={self.connected.is_set()})"

    # The listener body ---------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        delay = self.reconnect_initial
        while not stop.is_set():
            try:
                self._session(stop)
                delay = self.reconnect_initial
            except AMILoginError as exc:
                self.stats.last_error = str(exc)
                log.error("ami_login_refused", host=self.host, port=self.port, username=self.username, error=str(exc))
                delay = max(delay, self.reconnect_max / 4)
            except (OSError, ExternalAPIError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("ami_connection_lost", host=self.host, port=self.port, error=self.stats.last_error)
            finally:
                self._close()
            if stop.is_set():
                break
            wait = delay * random.uniform(0.8, 1.2)
            log.info("ami_reconnecting", host=self.host, port=self.port, in_s=round(wait, 2))
            stop.wait(wait)
            delay = min(delay * 2, self.reconnect_max)

    def _session(self, stop: threading.Event) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.settimeout(0.2)
        self._sock = sock
        self.stats.connects += 1
        decoder = AMIDecoder()
        login_id = f"login-{next(self._counter)}"
        self._expect(login_id)
        self._send(login_action(self.username, self._secret.get_secret_value(), login_id, self.events))
        logged_in = False
        login_deadline = time.monotonic() + self.response_timeout
        last_received = last_sent = time.monotonic()
        ping_pending = False
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            except OSError as exc:
                raise ExternalAPIError(f"AMI read failed: {exc}") from exc
            now = time.monotonic()
            if data == b"":
                raise ExternalAPIError("Asterisk closed the AMI connection")
            if data:
                last_received = now
                ping_pending = False
                packets = decoder.feed(data)
                self.stats.malformed = decoder.malformed
                for packet in packets:
                    self._dispatch(packet)
            if not logged_in:
                answer = self._responses.pop(login_id, None)
                if answer is not None:
                    if answer.get("Response") != "Success":
                        raise AMILoginError(
                            f"Asterisk refused login of {self.username!r}: {answer.get('Message', 'no reason given')}; "
                            "check HUB_TELEPHONY__AMI__USERNAME and HUB_TELEPHONY__AMI__SECRET",
                            retriable=False,
                        )
                    logged_in = True
                    self._waiting.pop(login_id, None)
                    self.connected.set()
                    log.info("ami_connected", host=self.host, port=self.port, banner=decoder.banner)
                    if self.on_connected is not None:
                        self.on_connected()
                elif now > login_deadline:
                    raise ExternalAPIError(f"no answer to AMI Login within {self.response_timeout:.0f} s")
                continue
            idle = now - max(last_received, last_sent)
            if idle > self.ping_interval and not ping_pending:
                self._send(ping_action(f"ping-{next(self._counter)}"))
                last_sent = now
                ping_pending = True
            elif ping_pending and now - last_received > 2 * self.ping_interval:
                raise ExternalAPIError(f"Asterisk silent for {now - last_received:.0f} s after a Ping")
        if logged_in:
            with contextlib.suppress(OSError):
                self._send(logoff_action())

    def _dispatch(self, packet: Packet) -> None:
        self.stats.packets += 1
        if "Event" in packet:
            try:
                self.on_event(packet)
            except Exception:
                # One bad event must not take the connection (and every later call) down with it.
                log.exception(
                    "ami_event_handler_failed", ami_event=packet.get("Event"), linkedid=packet.get("Linkedid")
                )
            return
        action_id = packet.get("ActionID")
        if action_id:
            with self._state_lock:
                waiter = self._waiting.get(action_id)
                if waiter is not None:
                    self._responses[action_id] = packet
                    waiter.set()

    def _expect(self, action_id: str) -> threading.Event:
        waiter = threading.Event()
        with self._state_lock:
            self._waiting[action_id] = waiter
        return waiter

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise ExternalAPIError("not connected to Asterisk AMI; the call can be retried once it reconnects")
        with self._send_lock:
            sock.sendall(data)

    def _close(self) -> None:
        if self.connected.is_set():
            self.stats.disconnects += 1
        self.connected.clear()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        with self._state_lock:
            for waiter in self._waiting.values():
                waiter.set()
            self._waiting.clear()

    # Actions from other threads ----------------------------------------------------------------------------

    def send_action(self, action: str, fields: Mapping[str, ActionValue], *, wait: bool = True) -> Packet | None:
        """Send an action and, with ``wait``, return Asterisk's response (``Response: Success|Error``)."""
        if not self.connected.is_set():
            raise ExternalAPIError("not connected to Asterisk AMI; try again when the connection is back")
        action_id = str(fields.get("ActionID") or new_action_id())
        if not wait:
            # From ``on_connected`` (the reading thread) waiting would block the very thread that reads the answer.
            self._send(encode_action(action, {**fields, "ActionID": action_id}))
            return None
        waiter = self._expect(action_id)
        self._send(encode_action(action, {**fields, "ActionID": action_id}))
        if not waiter.wait(self.response_timeout):
            raise ExternalAPIError(f"no response to AMI {action} within {self.response_timeout:.0f} s")
        with self._state_lock:
            self._waiting.pop(action_id, None)
            answer = self._responses.pop(action_id, None)
        if answer is None:
            raise ExternalAPIError(f"AMI connection dropped before {action} was answered; try again")
        return answer

    def originate(self, request: OriginateRequest, action_id: str | None = None) -> str:
        """Start a click-to-call; return the ``ActionID`` its ``OriginateResponse`` event will carry.

        Raises :class:`ExternalAPIError` when Asterisk refuses the action (the message says why).
        """
        if not self.connected.is_set():
            raise ExternalAPIError("not connected to Asterisk AMI; try the call again when it reconnects")
        action_id = action_id or new_action_id()
        waiter = self._expect(action_id)
        self._send(originate_action(request, action_id))
        if not waiter.wait(self.response_timeout):
            raise ExternalAPIError(f"no response to AMI Originate within {self.response_timeout:.0f} s")
        with self._state_lock:
            self._waiting.pop(action_id, None)
            answer = self._responses.pop(action_id, None)
        if answer is None:
            raise ExternalAPIError("AMI connection dropped before Originate was answered; try again")
        if answer.get("Response") != "Success":
            raise ExternalAPIError(
                f"Asterisk refused Originate to {request.exten}: {answer.get('Message', 'no reason given')}",
                retriable=False,
            )
        log.info("ami_originate_sent", action_id=action_id, channel=request.channel, exten=request.exten)
        return action_id
