"""Reminder rules: tasks the hub puts on the timeline by itself, which the CRM sinks replicate as to-dos.

- a missed inbound call not returned within N minutes -> "call back" (done once the client is called back);
- a client with an open deal and no contact for N days -> "follow up";
- a deal stuck in one stage for N days -> "check the deal".

Each task is keyed by what caused it (``hub/reminders/<rule>/<cause>``), so evaluating the rules again, in any
process, changes nothing: the same observation twice is stored once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.events import ClientKey, ItemView, SourceRef, TaskObservation
from hub.core.record import as_utc

if TYPE_CHECKING:
    from hub.core.hub import Hub

ACCOUNT = "reminders"


class ReminderSettings(BaseModel):
    """``HUB_REMINDERS__*`` (or ``[reminders]`` in hub.toml); a rule set to 0 is off."""

    interval_s: float = Field(60.0, gt=0, description="How often the rules are evaluated.")
    missed_call_minutes: int = Field(20, ge=0, description="A missed call not returned within this -> call back.")
    no_contact_days: int = Field(14, ge=0, description="An open deal's client not contacted this long -> follow up.")
    stuck_deal_days: int = Field(7, ge=0, description="A deal in one stage this long -> check it.")
    lookback_days: int = Field(7, ge=1, description="Missed calls older than this are left alone.")
    assignee: str | None = Field(None, description="Who gets a reminder nobody else is known for.")


@dataclass
class Outcome:
    created: int = 0
    closed: int = 0


def _ref(rule: str, cause: str) -> SourceRef:
    return SourceRef(system="hub", account=ACCOUNT, entity=rule, id=cause)


def _existing(hub: Hub, refs: list[SourceRef]) -> dict[SourceRef, ItemView]:
    found = {}
    for ref in refs:
        item = hub.find_item(ref)
        if item is not None:
            found[ref] = item
    return found


def missed_calls(hub: Hub, cfg: ReminderSettings, now: datetime) -> list[TaskObservation]:
    """Call-back tasks for missed inbound calls; the task is closed once the client was called back."""
    if not cfg.missed_call_minutes:
        return []
    calls = sorted(
        hub.iter_items(kind="interaction", channel="call", since=now - timedelta(days=cfg.lookback_days)),
        key=lambda c: c.occurred_at,
    )
    by_client: dict[int, list[ItemView]] = defaultdict(list)
    for call in calls:
        by_client[call.client_id].append(call)
    wanted: list[TaskObservation] = []
    limit = timedelta(minutes=cfg.missed_call_minutes)
    for call in calls:
        f = call.fields
        if f.get("direction") != "in" or f.get("status") == "answered":
            continue
        later = [c for c in by_client[call.client_id] if c.occurred_at > call.occurred_at]
        returned = any(c.fields.get("direction") == "out" or c.fields.get("status") == "answered" for c in later)
        ref = _ref("callback", str(call.id))
        existing = hub.find_item(ref)
        if returned:
            if existing is not None and not existing.fields.get("done"):
                wanted.append(_task(ref, call.client_id, existing.fields.get("title"), None, None, done=True))
            continue
        if existing is not None or now - call.occurred_at < limit:
            continue
        who = f.get("operator") or f.get("extension") or cfg.assignee
        number = f.get("number_raw") or ""
        wanted.append(_task(ref, call.client_id, f"Перезвонить клиенту {number}".strip(), now, who, call_item=call.id))
    return wanted


def _task(
    ref: SourceRef,
    client_id: int,
    title: Any,
    due: datetime | None,
    assignee: Any,
    *,
    done: bool = False,
    **fields: Any,
) -> TaskObservation:
    return TaskObservation(
        source=ref,
        client=ClientKey(client_id=client_id, create=False),
        title=str(title) if title else None,
        due_at=due,
        assignee=str(assignee) if assignee else None,
        done=done,
        fields={"rule": ref.entity, **fields},
    )


def _open_deals(hub: Hub) -> list[ItemView]:
    return [d for d in hub.iter_items(kind="deal") if d.fields.get("status") not in ("won", "lost")]


def _last_contacts(hub: Hub, client_ids: set[int]) -> dict[int, datetime]:
    if not client_ids:
        return {}
    i = s.items.c
    with hub.store.read() as conn:
        rows = conn.execute(
            select(i.client_id, func.max(i.occurred_at))
            .where(i.client_id.in_(sorted(client_ids)), i.kind == "interaction")
            .group_by(i.client_id)
        ).all()
    return {r[0]: as_utc(r[1]) for r in rows if r[1] is not None}


def no_contact(hub: Hub, cfg: ReminderSettings, now: datetime, deals: list[ItemView]) -> list[TaskObservation]:
    """Follow-up tasks for clients with an open deal and no call, email, note or message for N days."""
    if not cfg.no_contact_days:
        return []
    clients = {d.client_id: d for d in deals}
    last = _last_contacts(hub, set(clients))
    cutoff = now - timedelta(days=cfg.no_contact_days)
    wanted = []
    for client_id, deal in clients.items():
        seen = last.get(client_id)
        if seen is not None and seen >= cutoff:
            continue
        # one reminder per silence: a new contact and a new silence make a new one
        ref = _ref("follow-up", f"{client_id}:{seen.date().isoformat() if seen else 'never'}")
        who = deal.fields.get("manager") or deal.fields.get("assignee") or cfg.assignee
        wanted.append(_task(ref, client_id, f"Связаться с клиентом: нет контакта {cfg.no_contact_days} дн.", now, who))
    return wanted


def stuck_deals(hub: Hub, cfg: ReminderSettings, now: datetime, deals: list[ItemView]) -> list[TaskObservation]:
    """Check-the-deal tasks for open deals that stayed in one stage for N days."""
    if not cfg.stuck_deal_days:
        return []
    wanted = []
    for deal in deals:
        history = [h for h in deal.fields.get("stages") or [] if isinstance(h, dict)]
        stage = deal.fields.get("stage")
        since = max((h.get("at") for h in history if h.get("stage") == stage), default=None, key=str)
        entered = as_utc(datetime.fromisoformat(str(since))) if since else deal.occurred_at
        if now - entered < timedelta(days=cfg.stuck_deal_days):
            continue
        ref = _ref("stuck-deal", f"{deal.id}:{stage}:{entered.date().isoformat()}")
        title = (
            f"Проверить сделку «{deal.fields.get('title') or deal.id}»: {cfg.stuck_deal_days}+ дн. на стадии {stage}"
        )
        who = deal.fields.get("manager") or deal.fields.get("assignee") or cfg.assignee
        wanted.append(_task(ref, deal.client_id, title, now, who, deal_item=deal.id))
    return wanted


def evaluate(hub: Hub, cfg: ReminderSettings, now: datetime | None = None) -> Outcome:
    """Run every rule once and apply the tasks they ask for; return how many were created and closed."""
    now = now or datetime.now(UTC)
    deals = _open_deals(hub) if (cfg.no_contact_days or cfg.stuck_deal_days) else []
    tasks = [*missed_calls(hub, cfg, now), *no_contact(hub, cfg, now, deals), *stuck_deals(hub, cfg, now, deals)]
    outcome = Outcome()
    if not tasks:
        return outcome
    for task, result in zip(tasks, hub.ingest_many(tasks, strict=False), strict=True):
        if isinstance(result, Exception) or not result.events:
            continue
        if task.done:
            outcome.closed += 1
        else:
            outcome.created += 1
    return outcome
