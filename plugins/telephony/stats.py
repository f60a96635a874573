"""Call statistics: per day, operator and direction, from finished ``CallRecord`` values or the hub's timeline."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.core.errors import BadInput
from hub.core.events import ItemView

from .calls import CALL_STATUSES, CallDirection, CallRecord, PhoneNumber

CallKey = tuple[str, str, str]


@dataclass
class CallStats:
    day: date
    extension: str | None
    direction: CallDirection
    total: int = 0
    answered: int = 0
    missed: int = 0
    talk_s: float = 0.0
    ring_s: float = 0.0
    not_called_back: int = 0

    @property
    def answer_rate(self) -> float:
        return self.answered / self.total if self.total else 0.0

    @property
    def average_talk_s(self) -> float:
        return self.talk_s / self.answered if self.answered else 0.0

    @property
    def average_ring_s(self) -> float:
        return self.ring_s / self.total if self.total else 0.0


def call_key(record: CallRecord) -> CallKey:
    return (record.system, record.account, record.call_id)


def call_stats(
    records: Iterable[CallRecord], tz: tzinfo = UTC, *, not_called_back: Collection[CallKey] = ()
) -> list[CallStats]:
    """One row per (local day, extension, direction), sorted; a call reported twice counts once.

    ``not_called_back`` holds the keys of missed calls nobody returned (see :func:`missed_not_called_back`).
    """
    rows: dict[tuple[date, str | None, CallDirection], CallStats] = {}
    seen: set[CallKey] = set()
    for record in records:
        key_seen = call_key(record)
        if key_seen in seen:
            continue
        seen.add(key_seen)
        when = record.started_at or record.ended_at
        if when is None:
            continue
        record = record.with_durations()
        key = (when.astimezone(tz).date(), record.extension, record.direction)
        row = rows.setdefault(key, CallStats(*key))
        row.total += 1
        if record.answered:
            row.answered += 1
            row.talk_s += record.talk_s or 0.0
        else:
            row.missed += 1
            if key_seen in not_called_back:
                row.not_called_back += 1
        row.ring_s += record.ring_s or 0.0
    return sorted(rows.values(), key=lambda r: (r.day, r.extension or "", r.direction))


def missed_not_called_back(calls: Iterable[tuple[CallRecord, Hashable]]) -> set[CallKey]:
    """Missed inbound calls with no later answered call, either way, with the same party (a client, a number).

    ``calls`` pairs each call with its party; give every call up to now, not only the reported period, so
    that a call returned the next day counts as returned.
    """
    ordered = sorted(calls, key=lambda c: c[0].started_at or c[0].ended_at or datetime.min.replace(tzinfo=UTC))
    open_missed: dict[Hashable, list[CallKey]] = {}
    for record, party in ordered:
        if record.missed_inbound:
            open_missed.setdefault(party, []).append(call_key(record))
        elif record.answered:
            open_missed.pop(party, None)
    return {key for keys in open_missed.values() for key in keys}


def record_from_item(item: ItemView) -> CallRecord | None:
    """The call a timeline entry (``channel == "call"``) describes, as statistics need it."""
    fields: dict[str, Any] = item.fields
    direction = fields.get("direction")
    status = fields.get("status")
    if direction not in ("in", "out", "internal") or status not in CALL_STATUSES:
        return None
    raw = fields.get("number_raw")
    return CallRecord(
        call_id=item.source.id,
        system=item.source.system,  # type: ignore[arg-type]
        account=item.source.account,
        direction=direction,
        number=PhoneNumber(str(raw), None) if raw else None,
        extension=fields.get("operator") or fields.get("extension"),
        status=status,
        started_at=item.occurred_at,
        ended_at=_time(fields.get("ended_at")),
        ring_s=_float(fields.get("ring_s")),
        talk_s=_float(fields.get("talk_s", fields.get("duration_s"))),
    )


def timeline_call_stats(
    items: Iterable[ItemView], tz: tzinfo = UTC, *, since: datetime | None = None, until: datetime | None = None
) -> list[CallStats]:
    """Statistics of the calls on the timeline that started in [``since``, ``until``); items may run past
    ``until`` (they tell which missed calls were returned later)."""
    calls = [(record, item.client_id) for item in items if (record := record_from_item(item)) is not None]
    unanswered = missed_not_called_back(calls)
    in_period = [
        r
        for r, _ in calls
        if r.started_at is not None
        and (since is None or r.started_at >= since)
        and (until is None or r.started_at < until)
    ]
    return call_stats(in_period, tz, not_called_back=unanswered)


def _float(value: Any) -> float | None:
    try:
        number = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    # Stored before durations were bounded, an Infinity or NaN would make every report unanswerable.
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- the report the API and the CLI show -------------------------------------------------------------------------


def parse_period(
    since: str | None, until: str | None, tz_name: str | None, *, default_days: int = 7
) -> tuple[datetime, datetime, tzinfo]:
    """``since``/``until`` as ISO dates (whole local days) or datetimes; by default the last ``default_days``."""
    try:
        tz: tzinfo = ZoneInfo(tz_name) if tz_name else UTC
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadInput(f"unknown time zone {tz_name!r}; use a name such as Europe/Moscow") from exc
    now = datetime.now(tz)
    end = _bound(until, tz, end=True) if until else now
    start = (
        _bound(since, tz, end=False)
        if since
        else datetime.combine((end - timedelta(days=default_days)).date() + timedelta(days=1), time.min, tz)
    )
    if start >= end:
        raise BadInput("'since' must be before 'until'")
    return start, end, tz


def _bound(text: str, tz: tzinfo, *, end: bool) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end else day, time.min, tz)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadInput(f"{text!r} is not a date (2025-11-17) or a date and time (2025-11-17T09:00:00+03:00)") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def stats_rows(rows: list[CallStats]) -> list[dict[str, Any]]:
    return [
        {
            "day": r.day.isoformat(),
            "operator": r.extension,
            "direction": r.direction,
            "calls": r.total,
            "answered": r.answered,
            "missed": r.missed,
            "missed_not_called_back": r.not_called_back,
            "talk_s": round(r.talk_s, 1),
            "answer_rate": round(r.answer_rate, 3),
            "average_talk_s": round(r.average_talk_s, 1),
        }
        for r in rows
    ]


def calls_report(
    items_since: Callable[[datetime], Iterable[ItemView]], start: datetime, end: datetime, tz: tzinfo
) -> dict[str, Any]:
    """Statistics of calls that started in [``start``, ``end``), with totals. ``items_since(start)`` streams the
    call entries of the timeline from ``start`` on (later ones tell which missed calls were returned)."""
    rows = stats_rows(timeline_call_stats(items_since(start), tz, since=start, until=end))
    totals = {
        key: sum(r[key] for r in rows) for key in ("calls", "answered", "missed", "missed_not_called_back", "talk_s")
    }
    totals["talk_s"] = round(totals["talk_s"], 1)
    return {"since": start.isoformat(), "until": end.isoformat(), "tz": str(tz), "rows": rows, "totals": totals}
