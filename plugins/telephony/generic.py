"""The generic call-event form: how any PBX without a dedicated adapter reports its calls to the hub.

POST one JSON object per event to ``/webhooks/telephony/generic``. Send ``ringing`` when a call starts ringing
(screen pop), ``answered`` when it is picked up, and ``ended`` when it is over; only ``ended`` is required for
the call to reach the timeline. Repeats and out-of-order events are fine: the call is keyed by ``call_id``.

Example::

    {"call_id": "1700000000.42", "event": "ended", "direction": "in",
     "from": "+7 916 123-45-67", "to": "+7 495 123-45-67", "extension": "101",
     "started_at": "2025-11-17T10:00:00+03:00", "answered_at": "2025-11-17T10:00:12+03:00",
     "ended_at": "2025-11-17T10:03:05+03:00", "status": "answered",
     "recording_url": "https://pbx.example.com/rec/1700000000.42.mp3"}
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugins.telephony.calls import CallRecord, CallStatus, CallUpdate, RingingNotice, parse_number


class GenericCallEvent(BaseModel):
    """One event of one call, as any PBX can send it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True)

    call_id: str = Field(min_length=1, max_length=255, description="The PBX's id of the call, the same in every event.")
    event: Literal["ringing", "answered", "ended"]
    direction: Literal["in", "out", "internal"] = Field(description="in: a customer calls; out: we call them.")
    from_: str | None = Field(None, alias="from", description="Calling number (the customer's, for 'in').")
    to: str | None = Field(None, description="Called number (the customer's, for 'out').")
    extension: str | None = Field(None, description="The operator's extension that rang or talked.")
    started_at: datetime | None = Field(None, description="When the call began (ISO 8601 with offset).")
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: CallStatus | None = Field(
        None, description="For 'ended': answered, missed, busy, no_answer, cancelled, rejected or failed."
    )
    duration_s: float | None = Field(None, ge=0, description="Talk time in seconds, if the times are not given.")
    recording_url: str | None = None
    queue: str | None = None
    transferred_to: str | None = None
    line_number: str | None = Field(None, description="Our number the customer dialled (for 'in').")
    account: str = Field("", max_length=255, description="Which PBX sent it, when there are several.")

    @field_validator("call_id", "from_", "to", "extension", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    def resolved_status(self, answered_at: datetime | None = None) -> CallStatus:
        """The status given, or, when left out: answered if the call was picked up or talked, else missed."""
        if self.status is not None:
            return self.status
        picked_up = self.answered_at is not None or answered_at is not None or (self.duration_s or 0) > 0
        return "answered" if picked_up else "missed"

    @property
    def customer_number(self) -> str | None:
        return self.to if self.direction == "out" else self.from_


class GenericCallAssembler:
    """Ringing events become screen-pop notices (once per call); ``ended`` becomes the ``CallRecord``."""

    def __init__(self, *, region: str = "RU", remember: int = 10_000) -> None:
        self.region = region
        self.remember = remember
        self._rang: OrderedDict[str, None] = OrderedDict()
        self._answered: dict[str, datetime] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    def feed(self, event: GenericCallEvent) -> list[CallUpdate]:
        if event.call_id in self._finished:
            return []
        if event.event == "ringing":
            if event.call_id in self._rang:
                return []
            self._remember(self._rang, event.call_id)
            return [
                RingingNotice(
                    call_id=event.call_id,
                    system="generic",
                    account=event.account,
                    direction=event.direction,
                    number=parse_number(event.customer_number, self.region),
                    extension=event.extension,
                    at=event.started_at or datetime.now().astimezone(),
                )
            ]
        if event.event == "answered":
            self._answered[event.call_id] = event.answered_at or datetime.now().astimezone()
            return []
        self._remember(self._finished, event.call_id)
        self._rang.pop(event.call_id, None)
        return [to_call_record(event, region=self.region, answered_at=self._answered.pop(event.call_id, None))]

    def _remember(self, seen: OrderedDict[str, None], call_id: str) -> None:
        seen[call_id] = None
        while len(seen) > self.remember:
            seen.popitem(last=False)


def to_call_record(event: GenericCallEvent, *, region: str = "RU", answered_at: datetime | None = None) -> CallRecord:
    """The call an ``ended`` event describes."""
    status = event.resolved_status(answered_at)
    return CallRecord(
        call_id=event.call_id,
        system="generic",
        account=event.account,
        direction=event.direction,
        number=None if event.direction == "internal" else parse_number(event.customer_number, region),
        extension=event.extension,
        status=status,
        started_at=event.started_at,
        answered_at=(event.answered_at or answered_at) if status == "answered" else None,
        ended_at=event.ended_at,
        talk_s=event.duration_s if status == "answered" and event.answered_at is None and answered_at is None else None,
        queue=event.queue,
        transferred_to=event.transferred_to,
        recording=event.recording_url,
        line_number=event.line_number,
    ).with_durations()
