"""Click-to-call: ring an operator's extension, then dial the customer, through AMI, Mango Office or Zadarma.

Each request gets an id that is stored with its progress in ``hub.state`` (scope ``telephony.originate``) and
that the resulting call carries (``originate_id`` in the call's fields): the AMI ``ActionID`` or the Mango
``command_id``. A request is not retried after a failure: a call placed minutes late is worse than none.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import phonenumbers
import structlog

from hub.core.errors import BadInput, ConfigError, ExternalAPIError
from hub.core.identity import normalize_phone

from . import mango, zadarma
from .ami import OriginateRequest
from .asterisk import AsteriskCallTracker
from .calls import OriginateResult
from .dialpolicy import check_dialable
from .listener import make_connection
from .settings import TelephonySettings

if TYPE_CHECKING:
    from hub.core.hub import Hub

    from .listener import AMIListener

log = structlog.get_logger("hub.telephony.clicktocall")

ORIGINATE_SCOPE = "telephony.originate"
FINAL_STATUSES = ("answered", "requested", "failed")


def choose_provider(settings: TelephonySettings) -> str:
    """The configured ``click_to_call``, or the first PBX that has settings (ami, mango, zadarma)."""
    if settings.click_to_call:
        return settings.click_to_call
    if settings.ami.host:
        return "ami"
    if settings.mango.api_key:
        return "mango"
    if settings.zadarma.key:
        return "zadarma"
    raise ConfigError(
        "click-to-call is not configured: set HUB_TELEPHONY__AMI__HOST, HUB_TELEPHONY__MANGO__API_KEY or "
        "HUB_TELEPHONY__ZADARMA__KEY (and HUB_TELEPHONY__CLICK_TO_CALL to choose among them)"
    )


def dial_string(e164: str, template: str) -> str:
    """The number as the PBX dials it, from ``template`` with ``{e164}``, ``{digits}`` and ``{national}``."""
    parsed = phonenumbers.parse(e164)
    national = str(parsed.national_number)
    return template.format(e164=e164, digits=e164.lstrip("+"), national=national)


class ClickToCall:
    def __init__(
        self,
        hub: Hub,
        settings: TelephonySettings,
        listener: Callable[[], AMIListener | None] = lambda: None,
        http: Callable[[], httpx.Client] = lambda: httpx.Client(timeout=10.0),
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.listener = listener
        self.http = http
        self.region = settings.region or hub.settings.default_region

    # --- requests ----------------------------------------------------------------------------------------------
    def request(self, extension: str, phone: str) -> dict[str, Any]:
        """Validate and record a request (status ``pending``); :class:`BadInput` when it cannot be placed."""
        extension = str(extension or "").strip()
        if not extension or len(extension) > 32 or any(ch in extension for ch in "\r\n/ "):
            raise BadInput("give the operator's extension (e.g. '201') as 'extension'")
        e164 = normalize_phone(str(phone or ""), self.region)
        check_dialable(e164, self.settings.dial, self.region)  # before anything is recorded or dialled
        provider = choose_provider(self.settings)
        request_id = uuid.uuid4().hex
        entry = {
            "request_id": request_id,
            "provider": provider,
            "extension": extension,
            "phone": e164,
            "status": "pending",
            "requested_at": datetime.now(UTC).isoformat(),
        }
        self.hub.state.put(ORIGINATE_SCOPE, request_id, entry)
        log.info("click_to_call_requested", request_id=request_id, provider=provider, extension=extension)
        return entry

    def start(self, extension: str, phone: str) -> dict[str, Any]:
        """Record the request and place it in the background; return the pending request at once."""
        entry = self.request(extension, phone)
        threading.Thread(
            target=self.place, args=(entry,), name=f"click-to-call:{entry['request_id']}", daemon=True
        ).start()
        return entry

    def status(self, request_id: str) -> dict[str, Any] | None:
        value = self.hub.state.get(ORIGINATE_SCOPE, request_id)
        return dict(value) if value else None

    def place(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Place a recorded request and store how it ended; never raises (the outcome is in the result)."""
        provider = entry["provider"]
        try:
            if provider == "ami":
                entry = self._via_ami(entry)
            elif provider == "mango":
                entry = self._via_mango(entry)
            else:
                entry = self._via_zadarma(entry)
        except (ExternalAPIError, ConfigError, BadInput, OSError) as exc:
            entry = {**entry, "status": "failed", "error": str(exc)}
            log.warning("click_to_call_failed", request_id=entry["request_id"], provider=provider, error=str(exc))
        entry["finished_at"] = datetime.now(UTC).isoformat()
        self._save(entry)
        return entry

    def _save(self, entry: dict[str, Any]) -> None:
        self.hub.state.put(ORIGINATE_SCOPE, entry["request_id"], entry)

    # --- Asterisk ------------------------------------------------------------------------------------------------
    def _via_ami(self, entry: dict[str, Any]) -> dict[str, Any]:
        ami = self.settings.ami
        if not ami.host:
            raise ConfigError("AMI click-to-call needs HUB_TELEPHONY__AMI__HOST")
        request = OriginateRequest(
            channel=ami.originate_channel.format(extension=entry["extension"]),
            exten=dial_string(entry["phone"], ami.dial_format),
            context=ami.originate_context,
            timeout_s=ami.originate_timeout,
        )
        action_id = entry["request_id"]
        done = threading.Event()
        outcome: list[OriginateResult] = []

        def on_result(result: OriginateResult) -> None:
            outcome.append(result)
            done.set()

        listener = self.listener()
        if listener is not None and listener.connection.connected.is_set():
            entry = {**entry, "session": "listener"}  # this process holds a session already
            listener.originate(request, action_id, on_result)
            self._save({**entry, "status": "ringing"})
            done.wait(self.settings.originate_wait_s)
        else:
            entry = {**entry, "session": "short"}
            self._short_session(request, action_id, on_result, done, entry)
        if not outcome:
            wait = self.settings.originate_wait_s
            raise ExternalAPIError(f"Asterisk accepted the call but sent no OriginateResponse within {wait:.0f} s")
        result = outcome[0]
        log.info("click_to_call_result", request_id=action_id, success=result.success, reason=result.reason)
        return {
            **entry,
            "status": "answered" if result.success else "failed",
            "call_status": result.status,
            "reason": result.reason,
            "call_id": result.call_id,
        }

    def _short_session(
        self,
        request: OriginateRequest,
        action_id: str,
        on_result: Callable[[OriginateResult], None],
        done: threading.Event,
        entry: dict[str, Any],
    ) -> None:
        """Log in, Originate, wait for its OriginateResponse, log off."""
        tracker = AsteriskCallTracker()

        def on_event(packet: dict[str, str]) -> None:
            if packet.get("Event") == "OriginateResponse" and packet.get("ActionID") == action_id:
                for update in tracker.feed(packet):
                    if isinstance(update, OriginateResult):
                        on_result(update)

        ami = self.settings.ami
        connection = make_connection(ami, on_event)
        stop = threading.Event()
        thread = threading.Thread(target=connection.run, args=(stop,), name="ami-originate", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + ami.connect_timeout + connection.response_timeout
            while not connection.connected.wait(0.05):
                if connection.stats.last_error or time.monotonic() > deadline:
                    raise ExternalAPIError(
                        f"could not log in to Asterisk AMI at {ami.host}:{ami.port}: "
                        f"{connection.stats.last_error or 'no answer'}"
                    )
            connection.originate(request, action_id)
            self._save({**entry, "status": "ringing"})
            done.wait(self.settings.originate_wait_s)
        finally:
            stop.set()  # the session logs off on its way out
            thread.join(timeout=5)

    # --- Mango Office and Zadarma ---------------------------------------------------------------------------------
    def _via_mango(self, entry: dict[str, Any]) -> dict[str, Any]:
        cfg = self.settings.mango
        if not cfg.api_key:
            raise ConfigError("Mango click-to-call needs HUB_TELEPHONY__MANGO__API_KEY and __API_SALT")
        request = mango.callback_request(
            api_url=cfg.api_url,
            api_key=cfg.api_key,
            api_salt=cfg.api_salt,
            extension=entry["extension"],
            to_number=entry["phone"].lstrip("+"),
            command_id=entry["request_id"],
        )
        with self.http() as http:
            command_id = mango.send_callback(http, request)
        return {**entry, "status": "requested", "command_id": command_id}

    def _via_zadarma(self, entry: dict[str, Any]) -> dict[str, Any]:
        cfg = self.settings.zadarma
        if not cfg.key:
            raise ConfigError("Zadarma click-to-call needs HUB_TELEPHONY__ZADARMA__KEY and __SECRET")
        request = zadarma.callback_request(
            api_url=cfg.api_url,
            key=cfg.key,
            secret=cfg.secret,
            from_=entry["extension"],
            to=entry["phone"].lstrip("+"),
            sip=cfg.default_sip,
        )
        with self.http() as http:
            answer = zadarma.send_callback(http, request)
        return {**entry, "status": "requested", "answer_time": answer.get("time")}
