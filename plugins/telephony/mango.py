"""Mango Office VPBX: signed webhooks (events/call, events/summary, events/recording) and commands/callback.

Every request either way is a form POST of ``vpbx_api_key``, ``sign`` and ``json`` where
``sign = sha256(vpbx_api_key + json + vpbx_api_salt)`` in lower-case hex, computed on the raw ``json`` text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import structlog
from pydantic import SecretStr

from hub.core.bounds import in_time_range
from hub.core.errors import BadInput, ExternalAPIError
from hub.core.jsontext import parse_json

from .calls import CallDirection, CallRecord, CallUpdate, RingingNotice, parse_number

log = structlog.get_logger("hub.telephony.mango")

MangoEventKind = Literal["call", "summary", "recording"]
MANGO_EVENT_PATHS: dict[str, MangoEventKind] = {
    "events/call": "call",
    "events/summary": "summary",
    "events/recording": "recording",
}
_DIRECTIONS: dict[str, CallDirection] = {"0": "internal", "1": "in", "2": "out"}
# Mango answers {"result": 1000} when a command is accepted; 2xxx-5xxx codes say why not.
MANGO_OK = 1000


def _secret(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def mango_sign(api_key: str, json_text: str, api_salt: SecretStr | str) -> str:
    return hashlib.sha256((api_key + json_text + _secret(api_salt)).encode("utf-8")).hexdigest()


def verify_mango_form(form: Mapping[str, str], *, api_key: str, api_salt: SecretStr | str) -> dict[str, Any]:
    """Check a webhook's ``vpbx_api_key`` and ``sign`` and return its parsed ``json``; :class:`BadInput` if not."""
    json_text = form.get("json")
    sign = form.get("sign") or ""
    if json_text is None:
        raise BadInput("Mango webhook without a 'json' field; is this URL configured as a VPBX API endpoint?")
    if not hmac.compare_digest(str(form.get("vpbx_api_key") or "").encode(), api_key.encode()):
        raise BadInput("Mango webhook for another VPBX API key; check HUB_TELEPHONY__MANGO__API_KEY")
    expected = mango_sign(api_key, json_text, api_salt)
    if not hmac.compare_digest(sign.lower().encode(), expected.encode()):
        raise BadInput("Mango webhook signature does not match; check HUB_TELEPHONY__MANGO__API_SALT")
    payload = parse_json(json_text, what="Mango webhook 'json'")
    if not isinstance(payload, dict):
        raise BadInput("Mango webhook 'json' is not an object")
    return payload


def signed_form(payload: Mapping[str, Any] | str, *, api_key: str, api_salt: SecretStr | str) -> dict[str, str]:
    """The three form fields of a request to or from the VPBX, the ``json`` text exactly as signed."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return {"vpbx_api_key": api_key, "sign": mango_sign(api_key, text, api_salt), "json": text}


# --- click-to-call -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MangoCallbackRequest:
    url: str
    form: dict[str, str]
    command_id: str

    def __repr__(self) -> str:
        return f"MangoCallbackRequest(url={self.url!r}, command_id={self.command_id!r})"


def callback_request(
    *,
    api_url: str,
    api_key: str,
    api_salt: SecretStr | str,
    extension: str,
    to_number: str,
    line_number: str | None = None,
    command_id: str | None = None,
) -> MangoCallbackRequest:
    """``commands/callback``: ring the operator's ``extension``, then dial ``to_number``."""
    command_id = command_id or f"hub-{uuid.uuid4().hex}"
    payload: dict[str, Any] = {"command_id": command_id, "from": {"extension": str(extension)}, "to_number": to_number}
    if line_number:
        payload["line_number"] = line_number
    url = api_url.rstrip("/") + "/commands/callback"
    return MangoCallbackRequest(url, signed_form(payload, api_key=api_key, api_salt=api_salt), command_id)


def send_callback(http: httpx.Client, request: MangoCallbackRequest) -> str:
    """POST the command; return its ``command_id`` (later events carry it). Raise :class:`ExternalAPIError`."""
    try:
        response = http.post(request.url, data=request.form)
    except httpx.HTTPError as exc:
        raise ExternalAPIError(f"Mango commands/callback unreachable: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise ExternalAPIError(f"Mango commands/callback answered {response.status_code}", status=response.status_code)
    try:
        result = int(response.json().get("result", 0))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExternalAPIError(f"Mango commands/callback answered non-JSON ({response.status_code})") from exc
    if result != MANGO_OK:
        raise ExternalAPIError(
            f"Mango refused the call-back (result {result}); check the extension and the number",
            retriable=False,
            status=response.status_code,
        )
    return request.command_id


# --- assembling calls -----------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """Mango sends numbers as strings in its docs and as integers in real life: take both."""
    if value is None or value == "":
        return None
    return str(value)


def _time(value: Any) -> datetime | None:
    text = _text(value)
    if text is None or text == "0":
        return None
    try:
        at = datetime.fromtimestamp(int(float(text)), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return at if in_time_range(at) else None


def _party(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


@dataclass
class _Entry:
    entry_id: str
    legs: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    recording: str | None = None
    rang_notified: bool = False


class MangoCallAssembler:
    """Turns Mango events, in any order and however repeated, into one ``CallRecord`` per ``entry_id``.

    ``events/summary`` closes a call. A recording reported after that yields the same record again with its
    ``recording`` set (the same key, so the timeline keeps one entry and gains the link).
    """

    def __init__(self, *, account: str = "", region: str = "RU", remember: int = 10_000) -> None:
        self.account = account
        self.region = region
        self.remember = remember
        self._entries: dict[str, _Entry] = {}
        self._finished: OrderedDict[str, CallRecord] = OrderedDict()

    def feed(self, kind: MangoEventKind | str, payload: Mapping[str, Any]) -> list[CallUpdate]:
        entry_id = _text(payload.get("entry_id"))
        if entry_id is None:
            log.warning("mango_event_without_entry_id", kind=kind)
            return []
        if kind == "call":
            return self._on_call(entry_id, payload)
        if kind == "summary":
            return self._on_summary(entry_id, payload)
        if kind == "recording":
            return self._on_recording(entry_id, payload)
        log.info("mango_event_ignored", kind=kind, entry_id=entry_id)
        return []

    def _entry(self, entry_id: str) -> _Entry:
        entry = self._entries.get(entry_id)
        if entry is None:
            entry = self._entries[entry_id] = _Entry(entry_id)
        return entry

    def _on_call(self, entry_id: str, payload: Mapping[str, Any]) -> list[CallUpdate]:
        if entry_id in self._finished:
            return []
        entry = self._entry(entry_id)
        leg_id = _text(payload.get("call_id")) or entry_id
        try:
            seq = int(_text(payload.get("seq")) or 0)
        except ValueError:
            seq = 0
        entry.legs.setdefault(leg_id, {})[seq] = dict(payload)
        if payload.get("call_state") != "Appeared" or entry.rang_notified:
            return []
        source, target = _party(payload, "from"), _party(payload, "to")
        if _text(target.get("extension")) and not _text(source.get("extension")):
            direction: CallDirection = "in"
            number, extension = _text(source.get("number")), _text(target.get("extension"))
        elif _text(source.get("extension")) and not _text(target.get("extension")) and _text(target.get("number")):
            direction, number, extension = "out", _text(target.get("number")), _text(source.get("extension"))
        else:
            return []
        entry.rang_notified = True
        return [
            RingingNotice(
                call_id=entry_id,
                system="mango",
                account=self.account,
                direction=direction,
                number=parse_number(number, self.region),
                extension=extension,
                at=_time(payload.get("timestamp")) or datetime.now(UTC),
            )
        ]

    def _on_summary(self, entry_id: str, payload: Mapping[str, Any]) -> list[CallUpdate]:
        if entry_id in self._finished:
            return []
        entry = self._entries.pop(entry_id, None) or _Entry(entry_id)
        source, target = _party(payload, "from"), _party(payload, "to")
        direction = _DIRECTIONS.get(_text(payload.get("call_direction")) or "")
        if direction is None:
            direction = "out" if _text(source.get("extension")) and not _text(target.get("extension")) else "in"
        if direction == "out":
            number, extension = _text(target.get("number")), _text(source.get("extension"))
        elif direction == "in":
            number, extension = _text(source.get("number")), _text(target.get("extension"))
        else:
            number, extension = None, _text(source.get("extension"))
        operators = _operators(entry, direction)
        extension = operators[-1] if operators else extension
        answered = _text(payload.get("entry_result")) == "1"
        talk = _time(payload.get("talk_time"))
        record = CallRecord(
            call_id=entry_id,
            system="mango",
            account=self.account,
            direction=direction,
            number=parse_number(number, self.region),
            extension=extension,
            status="answered" if answered else ("missed" if direction == "in" else "no_answer"),
            started_at=_time(payload.get("create_time")),
            answered_at=talk if answered else None,
            ended_at=_time(payload.get("end_time")),
            queue=_queue(entry),
            recording=entry.recording,
            line_number=_text(payload.get("line_number")) or _text(target.get("line_number")),
            disconnect_reason=_text(payload.get("disconnect_reason")),
            originate_id=_command_id(entry),
            operators=operators if answered else [],
            transferred_to=operators[-1] if answered and len(operators) > 1 else None,
        ).with_durations()
        self._remember(record)
        log.info("call_finished", system="mango", call_id=entry_id, direction=direction, status=record.status)
        return [record]

    def _on_recording(self, entry_id: str, payload: Mapping[str, Any]) -> list[CallUpdate]:
        recording = _text(payload.get("recording_id"))
        if recording is None:
            return []
        finished = self._finished.get(entry_id)
        if finished is None:
            self._entry(entry_id).recording = recording
            return []
        if finished.recording == recording:
            return []
        updated = replace(finished, recording=recording)
        self._finished[entry_id] = updated
        return [updated]

    def _remember(self, record: CallRecord) -> None:
        self._finished[record.call_id] = record
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)


def _legs(entry: _Entry) -> list[dict[str, Any]]:
    return [state for leg in entry.legs.values() for _, state in sorted(leg.items())]


def _operators(entry: _Entry, direction: CallDirection) -> list[str]:
    """The employees who talked to the customer, in order (a transfer adds one); the last is the operator.

    A leg between two employees (the consultation before an attended transfer) is not a conversation with
    the customer and is left out.
    """
    if direction not in ("in", "out"):
        return []
    employee, customer = ("to", "from") if direction == "in" else ("from", "to")
    connected = []
    for state in _legs(entry):
        if state.get("call_state") != "Connected":
            continue
        extension = _text(_party(state, employee).get("extension"))
        if extension is None or _text(_party(state, customer).get("extension")):
            continue
        connected.append((_int(state.get("timestamp")), _int(state.get("seq")), extension))
    chain: list[str] = []
    for _, _, extension in sorted(connected):
        if not chain or chain[-1] != extension:
            chain.append(extension)
    return list(reversed(dict.fromkeys(reversed(chain))))  # each once, where it last talked


def _int(value: Any) -> int:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def _queue(entry: _Entry) -> str | None:
    for state in _legs(entry):
        group = _text(_party(state, "to").get("acd_group"))
        if group:
            return group
    return None


def _command_id(entry: _Entry) -> str | None:
    for state in _legs(entry):
        if _text(state.get("command_id")):
            return _text(state.get("command_id"))
    return None
