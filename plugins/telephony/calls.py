"""One PBX-neutral shape for a finished call (``CallRecord``), the screen-pop notice, and their hub observations.

Every PBX adapter (Asterisk, Mango Office, Zadarma, the generic form) produces these; only this module knows
how a call becomes an interaction on the timeline and, when missed, a call-back task.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import ValidationError

from hub.core.bounds import impossible_phone
from hub.core.errors import BadInput
from hub.core.events import ClientKey, InteractionObservation, SourceRef, TaskObservation
from hub.core.identity import normalize_phone

PbxSystem = Literal["asterisk", "mango", "zadarma", "generic"]
CallDirection = Literal["in", "out", "internal"]
CallStatus = Literal["answered", "missed", "busy", "no_answer", "cancelled", "rejected", "failed"]
CALL_STATUSES: tuple[CallStatus, ...] = ("answered", "missed", "busy", "no_answer", "cancelled", "rejected", "failed")

_HIDDEN_NUMBERS = frozenset({"", "<unknown>", "anonymous", "unknown", "restricted", "private", "unavailable"})


@dataclass(frozen=True)
class PhoneNumber:
    """A number as the PBX sent it, and in E.164 when it is a real phone number (``e164`` is None otherwise)."""

    raw: str
    e164: str | None

    @property
    def is_phone(self) -> bool:
        return self.e164 is not None


def parse_number(raw: object, region: str = "RU") -> PhoneNumber | None:
    """``'79161234567'``, ``79161234567`` or ``'8 (916) 123-45-67'`` -> E.164; ``'Anonymous'`` keeps raw only."""
    if raw is None:
        return None
    text = str(raw).strip()
    if text.lower() in _HIDDEN_NUMBERS:
        return None
    if impossible_phone(text, region):  # 8 (000) 000-00-00 must not pass for some other country's number
        return PhoneNumber(text, None)
    try:
        return PhoneNumber(text, normalize_phone(text, region))
    except BadInput:
        return PhoneNumber(text, None)


_NOT_NAMES = _HIDDEN_NUMBERS | {"unknown caller", "no name", "none", "null", "caller"}


def caller_name(raw: str | None, number: PhoneNumber | None = None) -> str | None:
    """A caller id name fit to name a client: ``'Пётр Иванов'``; not ``<unknown>``, digits or the number itself."""
    if raw is None:
        return None
    text = " ".join(raw.replace("\u00a0", " ").split()).strip(" \"'")
    if len(text) < 2 or text.casefold() in _NOT_NAMES or not any(ch.isalpha() for ch in text):
        return None  # empty, '<unknown>', 'Anonymous', or only digits and signs ('+7 916 123-45-67', '101')
    if number is not None and re.sub(r"\D", "", text) == re.sub(r"\D", "", number.raw):
        return None
    return text[:200]


def is_extension(number: str | None, extensions: Container[str] = (), max_length: int = 5) -> bool:
    """An internal extension: listed in ``extensions`` or a short run of digits (``101``, ``2001``)."""
    if not number:
        return False
    if number in extensions:
        return True
    return bool(re.fullmatch(rf"\d{{1,{max_length}}}", number))


@dataclass
class CallRecord:
    """A call as the hub keeps it, whatever PBX reported it. ``call_id`` is the PBX's own id of the call."""

    call_id: str
    system: PbxSystem
    account: str = ""
    direction: CallDirection = "in"
    number: PhoneNumber | None = None
    extension: str | None = None
    status: CallStatus = "missed"
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ring_s: float | None = None
    talk_s: float | None = None
    queue: str | None = None
    transferred_to: str | None = None
    recording: str | None = None
    originate_id: str | None = None
    line_number: str | None = None
    disconnect_reason: str | None = None
    rang: list[str] = field(default_factory=list)
    # Who answered for the company, in order: one name is a plain call, more are its transfers.
    operators: list[str] = field(default_factory=list)
    caller_name: str | None = None  # the caller id name the PBX showed (a CNAM, a trunk's name field)

    @property
    def answered(self) -> bool:
        return self.status == "answered"

    @property
    def missed_inbound(self) -> bool:
        return self.direction == "in" and not self.answered

    @property
    def source(self) -> SourceRef:
        return SourceRef(system=self.system, account=self.account, entity="call", id=self.call_id)

    def with_durations(self) -> CallRecord:
        """Fill ``ring_s`` and ``talk_s`` from the three times where the PBX did not give them."""
        ring, talk = self.ring_s, self.talk_s
        if ring is None and self.started_at is not None:
            until = self.answered_at or self.ended_at
            ring = _seconds(self.started_at, until)
        if talk is None:
            talk = _seconds(self.answered_at, self.ended_at) if self.answered_at is not None else 0.0
        return replace(self, ring_s=ring, talk_s=talk)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, round((end - start).total_seconds(), 3))


@dataclass(frozen=True)
class RingingNotice:
    """Screen pop: a call started ringing at an operator's phone (``extension``) from or to ``number``."""

    call_id: str
    system: PbxSystem
    account: str
    direction: CallDirection
    number: PhoneNumber | None
    extension: str | None
    at: datetime


@dataclass(frozen=True)
class OriginateResult:
    """Asterisk's verdict on a click-to-call, matched to the request by ``action_id``.

    ``reason`` is the AMI ``Reason`` code: 4 answered, 5 busy, 3 ringing too long, 1 hung up, 8 congestion,
    0 no such channel or extension.
    """

    action_id: str
    success: bool
    reason: int | None
    call_id: str | None
    channel: str | None

    @property
    def status(self) -> CallStatus:
        if self.success:
            return "answered"
        failures: dict[int, CallStatus] = {5: "busy", 3: "no_answer", 1: "cancelled"}
        return failures.get(self.reason or 0, "failed")


CallUpdate = CallRecord | RingingNotice | OriginateResult


# --- hub observations ----------------------------------------------------------------------------------------


def call_observations(
    record: CallRecord,
    *,
    operators: dict[str, str] | None = None,
    create_callback_tasks: bool = True,
    callback_due: timedelta = timedelta(minutes=15),
) -> list[InteractionObservation | TaskObservation]:
    """The timeline entry for a call and, for a missed inbound call, a call-back task.

    Keys are the PBX's call id (``entity="call"`` and ``entity="callback"``), so the same call reported twice
    is stored once. A call with no customer phone (internal, or a hidden/non-phone caller id) names no client
    and yields nothing: statistics still count it, the timeline cannot. A call whose values are past the
    observations' bounds (an id of 300 characters, say) raises :class:`BadInput`.
    """
    try:
        return _call_observations(record, operators, create_callback_tasks, callback_due)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise BadInput(f"the call {record.call_id[:80]!r} cannot be kept: {problems}") from None


def _call_observations(
    record: CallRecord, operators: dict[str, str] | None, create_callback_tasks: bool, callback_due: timedelta
) -> list[InteractionObservation | TaskObservation]:
    number = record.number
    if record.direction == "internal" or number is None or number.e164 is None:
        return []
    record = record.with_durations()
    operator = _operator(record.extension, operators)
    phone = number.e164
    # The PBX's caller id name names a new (or nameless) client, never renames a known one.
    name = caller_name(record.caller_name, number) if record.direction == "in" else None
    client = ClientKey(phones=[phone], name=name, name_if_empty=name is not None)
    occurred = record.started_at or record.ended_at
    fields: dict[str, str | int | float | bool | None] = {
        "ring_s": record.ring_s,
        "talk_s": record.talk_s,
        "number_raw": number.raw,
        "extension": record.extension,
    }
    optional = {
        "queue": record.queue,
        "transferred_to": record.transferred_to,
        "recording": record.recording,
        "originate_id": record.originate_id,
        "line_number": record.line_number,
        "disconnect_reason": record.disconnect_reason,
        "operators": " → ".join(record.operators) if len(record.operators) > 1 else None,
        "caller_name": name,
    }
    fields.update({key: value for key, value in optional.items() if value})
    interaction = InteractionObservation(
        source=record.source,
        channel="call",
        client=client,
        direction=record.direction,
        occurred_at=occurred,
        # A PBX clock that jumped back must not cost the call: an end before the start is left out.
        ended_at=record.ended_at
        if occurred is None or record.ended_at is None or record.ended_at >= occurred
        else None,
        duration_s=record.talk_s,
        status=record.status,
        subject=_subject(record),
        recording_url=record.recording if record.recording and "://" in record.recording else None,
        operator=operator,
        fields=fields,
    )
    result: list[InteractionObservation | TaskObservation] = [interaction]
    if create_callback_tasks and record.missed_inbound:
        base = record.ended_at or record.started_at or datetime.now(UTC)
        result.append(
            TaskObservation(
                source=SourceRef(system=record.system, account=record.account, entity="callback", id=record.call_id),
                client=client,
                title=f"Перезвонить: {_pretty(phone)} (пропущенный звонок)",
                due_at=base + callback_due,
                assignee=operator,
                fields={"call_id": record.call_id, "status": record.status, "number_raw": number.raw},
            )
        )
    return result


def _operator(extension: str | None, operators: dict[str, str] | None) -> str | None:
    if extension is None:
        return None
    return (operators or {}).get(extension, extension)


_SUBJECTS: dict[str, str] = {
    "answered": "{dir} call",
    "missed": "Missed {dir} call",
    "busy": "{dir} call: busy",
    "no_answer": "{dir} call: no answer",
    "cancelled": "{dir} call: caller hung up",
    "rejected": "{dir} call: rejected",
    "failed": "{dir} call: failed",
}


def _subject(record: CallRecord) -> str:
    word = {"in": "Inbound", "out": "Outbound", "internal": "Internal"}[record.direction]
    text = _SUBJECTS[record.status].format(dir=word)
    return text[0].upper() + text[1:]


def _pretty(e164: str) -> str:
    """``+79161234567`` -> ``+7 916 123-45-67``; other countries as given."""
    match = re.fullmatch(r"\+7(\d{3})(\d{3})(\d{2})(\d{2})", e164)
    return f"+7 {match[1]} {match[2]}-{match[3]}-{match[4]}" if match else e164
