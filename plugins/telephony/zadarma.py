"""Zadarma: signed NOTIFY_* webhooks into calls, the ``zd_echo`` URL check, and the signed callback API request.

A webhook's ``Signature`` header is ``base64(hex(HMAC-SHA1(secret, fields)))`` over two or three fields that
depend on the event (official PHP SDK, ``lib/Webhook``). It carries no timestamp, so a replayed notification
verifies: deliveries are deduplicated on (``pbx_call_id``, ``event``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import structlog
from pydantic import SecretStr

from hub.core.bounds import in_time_range
from hub.core.errors import BadInput, ExternalAPIError

from .calls import CallDirection, CallRecord, CallStatus, CallUpdate, RingingNotice, parse_number

log = structlog.get_logger("hub.telephony.zadarma")

SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_IVR": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}
_DISPOSITIONS: dict[str, CallStatus] = {
    "answered": "answered",
    "busy": "busy",
    "cancel": "cancelled",
    "no answer": "no_answer",
    "failed": "failed",
}
CALLBACK_PATH = "/v1/request/callback/"
MAX_CALL_S = 7 * 24 * 3600.0


def _secret(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _hmac_b64(secret: SecretStr | str, message: str) -> str:
    digest = hmac.new(_secret(secret).encode(), message.encode("utf-8"), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def notification_signature(form: Mapping[str, str], secret: SecretStr | str) -> str:
    """The ``Signature`` Zadarma puts on this notification; :class:`BadInput` for an event it does not sign."""
    event = form.get("event", "")
    fields = SIGNED_FIELDS.get(event)
    if fields is None:
        raise BadInput(f"Zadarma event {event or '(none)'!r} has no known signature scheme; ignored")
    return _hmac_b64(secret, "".join(form.get(name, "") for name in fields))


def verify_notification(form: Mapping[str, str], signature: str | None, secret: SecretStr | str) -> None:
    """Raise :class:`BadInput` unless ``signature`` (the ``Signature`` header) matches the notification."""
    if not signature:
        raise BadInput("Zadarma notification without a Signature header; set the API key in Zadarma's settings")
    expected = notification_signature(form, secret)
    if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
        raise BadInput("Zadarma notification signature does not match; check HUB_TELEPHONY__ZADARMA__SECRET")


def zd_echo(query: Mapping[str, str]) -> str | None:
    """Zadarma checks a webhook URL with ``?zd_echo=X`` and expects ``X`` back as the body (plain text)."""
    value = query.get("zd_echo")
    return value if value else None


# --- the callback API ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZadarmaRequest:
    url: str
    params: dict[str, str]
    headers: dict[str, str] = field(repr=False)


def api_signature(method_path: str, params: Mapping[str, str], secret: SecretStr | str) -> str:
    """``base64(hex(HMAC-SHA1(secret, path + query + md5(query))))`` with the query sorted by key."""
    query = urlencode(sorted(params.items()))
    return _hmac_b64(secret, method_path + query + hashlib.md5(query.encode()).hexdigest())


def callback_request(
    *,
    api_url: str,
    key: str,
    secret: SecretStr | str,
    from_: str,
    to: str,
    sip: str | None = None,
    predicted: bool = False,
) -> ZadarmaRequest:
    """``GET /v1/request/callback/``: ring ``from_`` (an extension, SIP id or number), then ``to``."""
    params = {"from": from_, "to": to, "format": "json"}
    if sip:
        params["sip"] = sip
    if predicted:
        params["predicted"] = "predicted"
    params = dict(sorted(params.items()))
    headers = {"Authorization": f"{key}:{api_signature(CALLBACK_PATH, params, secret)}"}
    return ZadarmaRequest(api_url.rstrip("/") + CALLBACK_PATH, params, headers)


def send_callback(http: httpx.Client, request: ZadarmaRequest) -> dict[str, object]:
    """Send it; return Zadarma's answer (``status``, ``from``, ``to``, ``time``) or raise ExternalAPIError."""
    try:
        response = http.get(request.url, params=request.params, headers=request.headers)
    except httpx.HTTPError as exc:
        raise ExternalAPIError(f"Zadarma callback API unreachable: {exc}") from exc
    retriable = response.status_code >= 500 or response.status_code == 429
    try:
        body = response.json()
    except ValueError as exc:
        raise ExternalAPIError(f"Zadarma answered non-JSON ({response.status_code})", retriable=retriable) from exc
    if response.status_code >= 400 or not isinstance(body, dict) or body.get("status") != "success":
        message = body.get("message") if isinstance(body, dict) else None
        raise ExternalAPIError(
            f"Zadarma refused the call-back: {message or response.status_code}; check the key and the numbers",
            retriable=retriable,
            status=response.status_code,
        )
    return body


# --- notifications into calls -------------------------------------------------------------------------------


@dataclass
class _Pending:
    direction: CallDirection
    number: str | None
    extension: str | None = None
    answered_at: datetime | None = None
    line_number: str | None = None
    operators: list[str] = field(default_factory=list)  # who answered, in order: a transfer adds one


class ZadarmaCallAssembler:
    """Turns NOTIFY_* notifications into one ``CallRecord`` per ``pbx_call_id``.

    A notification already seen (same ``pbx_call_id`` and ``event``) is a replay and yields nothing.
    ``call_start`` is in the account's time zone (``timezone``). A NOTIFY_RECORD after the call ended yields
    the same record again with its recording reference.
    """

    def __init__(
        self,
        *,
        account: str = "",
        region: str = "RU",
        timezone: str = "Europe/Moscow",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        remember: int = 20_000,
    ) -> None:
        self.account = account
        self.region = region
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.remember = remember
        self.duplicates = 0
        self._seen: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._finished: OrderedDict[str, CallRecord] = OrderedDict()
        self._recordings: dict[str, str] = {}

    def feed(self, form: Mapping[str, str]) -> list[CallUpdate]:
        event = form.get("event", "")
        call_id = form.get("pbx_call_id", "")
        if not call_id:
            log.warning("zadarma_event_without_call_id", zadarma_event=event)
            return []
        # A transfer answers the same call again with another extension: the signed fields tell a new
        # notification from a replayed one.
        key = (call_id, event, *(form.get(name, "") for name in SIGNED_FIELDS.get(event, ())))
        if key in self._seen:
            self.duplicates += 1
            log.info("zadarma_duplicate_ignored", pbx_call_id=call_id, zadarma_event=event)
            return []
        self._seen[key] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        handler = {
            "NOTIFY_START": self._on_start,
            "NOTIFY_IVR": self._on_start,
            "NOTIFY_INTERNAL": self._on_internal,
            "NOTIFY_ANSWER": self._on_answer,
            "NOTIFY_END": self._on_end,
            "NOTIFY_OUT_START": self._on_out_start,
            "NOTIFY_OUT_END": self._on_end,
            "NOTIFY_RECORD": self._on_record,
        }.get(event)
        if handler is None:
            log.info("zadarma_event_ignored", zadarma_event=event, pbx_call_id=call_id)
            return []
        return handler(call_id, form)

    def _start_time(self, form: Mapping[str, str]) -> datetime | None:
        text = form.get("call_start")
        if not text:
            return None
        try:
            at = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz).astimezone(UTC)
        except (ValueError, OverflowError):
            at = None
        if at is None or not in_time_range(at):
            log.warning("zadarma_bad_call_start", value=text[:40])
            return None
        return at

    def _on_start(self, call_id: str, form: Mapping[str, str]) -> list[CallUpdate]:
        pending = self._pending.setdefault(call_id, _Pending("in", form.get("caller_id")))
        pending.line_number = form.get("called_did") or pending.line_number
        return []

    def _on_internal(self, call_id: str, form: Mapping[str, str]) -> list[CallUpdate]:
        if call_id in self._finished:
            return []
        pending = self._pending.setdefault(call_id, _Pending("in", form.get("caller_id")))
        first_ring = pending.extension is None
        pending.extension = form.get("internal") or pending.extension
        pending.line_number = form.get("called_did") or pending.line_number
        if not first_ring:
            return []
        return [self._notice(call_id, pending)]

    def _on_out_start(self, call_id: str, form: Mapping[str, str]) -> list[CallUpdate]:
        if call_id in self._finished:
            return []
        pending = self._pending.setdefault(call_id, _Pending("out", form.get("destination"), form.get("internal")))
        return [self._notice(call_id, pending)]

    def _on_answer(self, call_id: str, form: Mapping[str, str]) -> list[CallUpdate]:
        pending = self._pending.setdefault(call_id, _Pending("in", form.get("caller_id")))
        pending.answered_at = pending.answered_at or self.clock()
        pending.extension = form.get("internal") or form.get("destination") or pending.extension
        if pending.extension and pending.extension not in pending.operators:
            pending.operators.append(pending.extension)
        return []

    def _notice(self, call_id: str, pending: _Pending) -> RingingNotice:
        return RingingNotice(
            call_id=call_id,
            system="zadarma",
            account=self.account,
            direction=pending.direction,
            number=parse_number(pending.number, self.region),
            extension=pending.extension,
            at=self.clock(),
        )

    def _on_end(self, call_id: str, form: Mapping[str, str]) -> list[CallUpdate]:
        if call_id in self._finished:
            return []
        outbound = form.get("event") == "NOTIFY_OUT_END"
        pending = self._pending.pop(call_id, None)
        number = form.get("destination") if outbound else form.get("caller_id")
        disposition = (form.get("disposition") or "").strip().lower()
        status: CallStatus = _DISPOSITIONS.get(disposition, "failed")
        try:
            duration = float(form.get("duration") or 0)
        except ValueError:
            duration = 0.0
        if not 0 <= duration <= MAX_CALL_S:  # NaN, infinity and nonsense are no talk time
            duration = 0.0
        ended = self.clock()
        started = self._start_time(form)
        talk = duration if status == "answered" else 0.0
        answered_at = None
        if status == "answered":
            answered_at = pending.answered_at if pending and pending.answered_at else ended - timedelta(seconds=talk)
        recording = self._recordings.pop(call_id, None)
        if form.get("is_recorded") == "1" and form.get("call_id_with_rec"):
            recording = recording or form["call_id_with_rec"]
        record = CallRecord(
            call_id=call_id,
            system="zadarma",
            account=self.account,
            direction="out" if outbound else "in",
            number=parse_number(number, self.region),
            extension=(pending.operators[-1] if pending and pending.operators and status == "answered" else None)
            or form.get("internal")
            or (pending.extension if pending else None),
            operators=list(pending.operators) if pending and status == "answered" else [],
            transferred_to=pending.operators[-1]
            if pending and status == "answered" and len(pending.operators) > 1
            else None,
            status=status,
            started_at=started,
            answered_at=answered_at,
            ended_at=ended,
            talk_s=talk,
            recording=recording,
            line_number=(form.get("caller_id") if outbound else form.get("called_did")) or None,
            disconnect_reason=form.get("status_code") or None,
        ).with_durations()
        self._finished[call_id] = record
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)
        log.info("call_finished", system="zadarma", call_id=call_id, direction=record.direction, status=status)
        return [record]

    def _on_record(self, call_id: str, form: Mapping[str, str]) -> list[CallUpdate]:
        recording = form.get("call_id_with_rec")
        if not recording:
            return []
        finished = self._finished.get(call_id)
        if finished is None:
            self._recordings[call_id] = recording
            return []
        if finished.recording == recording:
            return []
        updated = replace(finished, recording=recording)
        self._finished[call_id] = updated
        return [updated]
