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

import itertools
from collections import OrderedDict
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.core.bounds import Url, Word, aware_in_range

from .calls import CallRecord, CallStatus, CallUpdate, RingingNotice, parse_number


class GenericCallEvent(BaseModel):
    """One event of one call, as any PBX can send it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True, allow_inf_nan=False)

    call_id: Word = Field(min_length=1, description="The PBX's id of the call, the same in every event.")
    event: Literal["ringing", "answered", "ended"]
    direction: Literal["in", "out", "internal"] = Field(description="in: a customer calls; out: we call them.")
    from_: Word | None = Field(
        None, alias="from", max_length=64, description="Calling number (the customer's, for 'in')."
    )
    to: Word | None = Field(None, max_length=64, description="Called number (the customer's, for 'out').")
    extension: Word | None = Field(None, max_length=64, description="The operator's extension that rang or talked.")
    started_at: datetime | None = Field(None, description="When the call began (ISO 8601 with offset).")
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: CallStatus | None = Field(
        None, description="For 'ended': answered, missed, busy, no_answer, cancelled, rejected or failed."
    )
    duration_s: float | None = Field(
        None, ge=0, le=7 * 24 * 3600, description="Talk time in seconds, if the times are not given."
    )
    recording_url: Url | None = None
    queue: Word | None = None
    transferred_to: Word | None = None
    line_number: Word | None = Field(None, max_length=64, description="Our number the customer dialled (for 'in').")
    account: Word = Field("", description="Which PBX sent it, when there are several.")

    @field_validator("call_id", "from_", "to", "extension", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("started_at", "answered_at", "ended_at")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else aware_in_range(value)

    @model_validator(mode="after")
    def _in_order(self) -> GenericCallEvent:
        times = [(name, at) for name, at in self._times() if at is not None]
        for (earlier, a), (later, b) in itertools.pairwise(times):
            if b < a:
                raise ValueError(f"{later} ({b.isoformat()}) is before {earlier} ({a.isoformat()})")
        return self

    def _times(self) -> list[tuple[str, datetime | None]]:
        return [("started_at", self.started_at), ("answered_at", self.answered_at), ("ended_at", self.ended_at)]

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
