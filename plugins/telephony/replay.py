"""Zadarma replay protection keyed on what the signature covers.

A Zadarma ``Signature`` covers two or three fields per event (``zadarma.SIGNED_FIELDS``), concatenated, and
never ``pbx_call_id``, the event name or a delivery time. So the first notification seen with a given signed
message binds it to its ``pbx_call_id``; the same signed message under another ``pbx_call_id`` is a captured
notification replayed (or re-split across fields) and is refused. The signed ``call_start`` also dates each
message: one older than the retention window is refused as stale, so marks can be forgotten after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import structlog

from hub.core.errors import BadInput
from hub.core.state import StateStore

from .zadarma import SIGNED_FIELDS

log = structlog.get_logger("hub.telephony.replay")

SCOPE = "telephony.zadarma.signed"
INDEX_SCOPE = "telephony.zadarma.signed-days"
FUTURE_SKEW = timedelta(days=1)  # call_start is in the account's zone; a misconfigured zone is hours off, not days

Verdict = Literal["fresh", "replay", "stale"]


def signed_message(form: Mapping[str, str]) -> str:
    """Exactly what Zadarma signed for this notification (its fields concatenated, no separator)."""
    fields = SIGNED_FIELDS.get(form.get("event", ""), ())
    return "".join(form.get(name, "") for name in fields)


class ZadarmaReplayGuard:
    def __init__(
        self,
        state: StateStore,
        *,
        account: str,
        timezone: str,
        retention: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.state = state
        self.account = account
        self.tz = ZoneInfo(timezone)
        self.retention = retention
        self.clock = clock

    def _signed_day(self, form: Mapping[str, str]) -> date | None:
        if "call_start" not in SIGNED_FIELDS.get(form.get("event", ""), ()):
            return None  # NOTIFY_RECORD signs pbx_call_id itself: nothing to date it by
        text = form.get("call_start", "")
        try:
            started = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz).astimezone(UTC)
        except ValueError:
            raise BadInput("the notification's call_start is not a 'YYYY-MM-DD HH:MM:SS' time") from None
        now = self.clock()
        if started < now - self.retention or started > now + FUTURE_SKEW:
            raise _Stale
        return started.date()

    def check(self, form: Mapping[str, str]) -> Verdict:
        """``fresh`` (first time, or a retry of the same call), ``replay`` or ``stale``; BadInput if garbled."""
        call_id = form.get("pbx_call_id", "")
        try:
            day = self._signed_day(form) or self.clock().date()
        except _Stale:
            return "stale"
        scope = f"{SCOPE}:{self.account}:{day.isoformat()}"
        key = hashlib.sha256(signed_message(form).encode()).hexdigest()
        if self.state.get(INDEX_SCOPE, f"{self.account}:{day.isoformat()}") is None:
            self.state.put(INDEX_SCOPE, f"{self.account}:{day.isoformat()}", day.isoformat())
        return "fresh" if self.state.claim(scope, key, call_id) else "replay"

    def forget_old_now(self) -> None:
        """Poller body."""
        self.forget_old()

    def forget_old(self) -> int:
        """Delete the marks of days no fresh notification can come from any more; return how many days."""
        cutoff = (self.clock() - self.retention - timedelta(days=1)).date()
        forgotten = 0
        for index_key, day in self.state.items(INDEX_SCOPE).items():
            if not index_key.startswith(f"{self.account}:") or date.fromisoformat(str(day)) >= cutoff:
                continue
            scope = f"{SCOPE}:{index_key}"
            for key in self.state.items(scope):
                self.state.delete(scope, key)
            self.state.delete(INDEX_SCOPE, index_key)
            forgotten += 1
        if forgotten:
            log.info("zadarma_replay_marks_forgotten", days=forgotten)
        return forgotten


class _Stale(Exception):
    pass
