"""Reports across every connected system at once: calls per operator and day, the deal funnel, new clients by
source per week, clients not contacted, stale deals, overdue tasks. Each is a table plus a chart spec, the same
data on screen, in ``hub report`` and in the xlsx export.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.errors import BadInput
from hub.core.events import ItemView
from hub.core.record import as_utc, flatten

if TYPE_CHECKING:
    from hub.core.hub import Hub

CALLBACK_FAST = timedelta(minutes=20)
CALLBACK_DAY = timedelta(hours=24)
MAX_LIST_ROWS = 1000


@dataclass
class Period:
    start: datetime
    end: datetime
    zone: tzinfo = UTC  # the hub's time zone (HUB_CONSOLE__TIMEZONE): the days and weeks of every report

    @classmethod
    def parse(cls, since: str | None, until: str | None, *, zone: tzinfo = UTC, default_days: int = 30) -> Period:
        """ISO dates, whole days in ``zone``, ``until`` included; by default the last ``default_days`` days.
        A call at 01:30 Moscow time (22:30 UTC the day before) belongs to that Moscow day."""
        try:
            end_day = date.fromisoformat(until) if until else datetime.now(zone).date()
            start_day = date.fromisoformat(since) if since else end_day - timedelta(days=default_days - 1)
        except ValueError as exc:
            raise BadInput(f"dates are written 2026-11-17: {exc}") from exc
        if start_day > end_day:
            raise BadInput("'from' must not be after 'to'")
        return cls(
            datetime.combine(start_day, time.min, tzinfo=zone).astimezone(UTC),
            datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC),
            zone,
        )

    def first_day(self) -> date:
        return self.start.astimezone(self.zone).date()

    def last_day(self) -> date:
        return (self.end.astimezone(self.zone) - timedelta(days=1)).date()

    def local(self, moment: datetime) -> datetime:
        """A stored (UTC) time as the hub's people live it."""
        return as_utc(moment).astimezone(self.zone)


@dataclass
class Column:
    key: str
    title: str  # English; the console translates it
    kind: str = "text"  # text, int, float, seconds, money, datetime, link


@dataclass
class Chart:
    label: str  # the column that names each bar group
    series: list[tuple[str, str]]  # (column, css class)
    stacked: bool = True


@dataclass
class Report:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    chart: Chart | None = None
    notes: list[str] = field(default_factory=list)
    sections: list[Report] = field(default_factory=list)  # a report with several tables (the funnel)
    zone: tzinfo = UTC  # the zone its days were counted in; its times are shown and exported in it


@dataclass
class Options:
    period: Period
    days: int = 30  # "not contacted for N days", "stale for N days"
    system: str | None = None


def _system(item: ItemView) -> str:
    return item.source.system


# --- calls -------------------------------------------------------------------------------------------------


def calls_per_operator(hub: Hub, opts: Options) -> Report:
    """Per operator and day: answered, missed, missed returned within 20 min / 24 h / never, the client called
    again, average talk and wait time. Calls after the period still tell whether a missed call was returned."""
    calls = [
        i
        for i in hub.iter_items(kind="interaction", channel="call", since=opts.period.start)
        if opts.system is None or _system(i) == opts.system
    ]
    calls.sort(key=lambda i: i.occurred_at)
    by_client: dict[int, list[ItemView]] = defaultdict(list)
    for call in calls:
        by_client[call.client_id].append(call)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for call in calls:
        if call.occurred_at >= opts.period.end:
            continue
        f = call.fields
        operator = str(f.get("operator") or f.get("extension") or "—")
        day = opts.period.local(call.occurred_at).date().isoformat()
        row = rows.setdefault(
            (day, operator),
            {
                "day": day,
                "operator": operator,
                "calls": 0,
                "answered": 0,
                "missed": 0,
                "back_20m": 0,
                "back_24h": 0,
                "never": 0,
                "called_again": 0,
                "_talk": [],
                "_wait": [],
            },
        )
        row["calls"] += 1
        status = f.get("status")
        if status == "answered":
            row["answered"] += 1
            talk = f.get("talk_s") or f.get("duration_s")
            if talk is not None:
                row["_talk"].append(float(talk))
        if f.get("ring_s") is not None:
            row["_wait"].append(float(f["ring_s"]))
        if status != "answered" and f.get("direction") == "in":
            row["missed"] += 1
            later = [c for c in by_client[call.client_id] if c.occurred_at > call.occurred_at]
            back = next((c for c in later if c.fields.get("direction") == "out"), None)
            delay = back.occurred_at - call.occurred_at if back else None
            if delay is not None and delay <= CALLBACK_FAST:
                row["back_20m"] += 1
            if delay is not None and delay <= CALLBACK_DAY:
                row["back_24h"] += 1
            if back is None:
                row["never"] += 1
            if any(c.fields.get("direction") == "in" for c in later):
                row["called_again"] += 1
    out = []
    for key in sorted(rows):
        row = rows[key]
        talk, wait = row.pop("_talk"), row.pop("_wait")
        row["avg_talk_s"] = round(sum(talk) / len(talk), 1) if talk else None
        row["avg_wait_s"] = round(sum(wait) / len(wait), 1) if wait else None
        out.append(row)
    return Report(
        name="calls",
        title="Calls per operator and day",
        columns=[
            Column("day", "Day"),
            Column("operator", "Operator"),
            Column("calls", "Calls", "int"),
            Column("answered", "Answered", "int"),
            Column("missed", "Missed", "int"),
            Column("back_20m", "Called back ≤ 20 min", "int"),
            Column("back_24h", "Called back ≤ 24 h", "int"),
            Column("never", "Never called back", "int"),
            Column("called_again", "Client called again", "int"),
            Column("avg_talk_s", "Average talk", "seconds"),
            Column("avg_wait_s", "Average wait", "seconds"),
        ],
        rows=out,
        chart=Chart("day", [("answered", "s-ok"), ("missed", "s-bad")]),
    )


# --- deals -------------------------------------------------------------------------------------------------


def _deals(hub: Hub, opts: Options) -> list[ItemView]:
    return [d for d in hub.iter_items(kind="deal") if opts.system is None or _system(d) == opts.system]


def _stage_history(deal: ItemView) -> list[dict[str, Any]]:
    history = deal.fields.get("stages") or []
    return [h for h in history if isinstance(h, dict) and h.get("stage")]


def _in_period(deal: ItemView, period: Period) -> bool:
    history = _stage_history(deal)
    times = [_parse_time(h.get("at")) for h in history] or [deal.occurred_at]
    return any(t is not None and period.start <= t < period.end for t in times)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return None


def funnel(hub: Hub, opts: Options) -> Report:
    """Deals by pipeline and stage across both CRMs, conversion to the next stage, won/lost with reasons, and
    per manager the average deal and cycle length."""
    deals = [d for d in _deals(hub, opts) if _in_period(d, opts.period)]
    reached: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    order: dict[tuple[str, str], list[str]] = defaultdict(list)
    closing: set[tuple[str, str, str]] = set()  # stages deals end in (won, lost): last in the order
    now_in: dict[tuple[str, str, str], int] = defaultdict(int)
    paths: dict[tuple[str, str], list[list[str]]] = defaultdict(list)
    for deal in deals:
        system, pipeline = _system(deal), str(deal.fields.get("pipeline") or "—")
        stages = [h["stage"] for h in _stage_history(deal)] or [str(deal.fields.get("stage") or "—")]
        paths[(system, pipeline)].append(stages)
        for stage in stages:
            reached[(system, pipeline, stage)].add(deal.id)
            if stage not in order[(system, pipeline)]:
                order[(system, pipeline)].append(stage)
        current = str(deal.fields.get("stage") or stages[-1])
        now_in[(system, pipeline, current)] += 1
        if deal.fields.get("status") in ("won", "lost"):
            closing.add((system, pipeline, current))
    stage_rows = []
    for (system, pipeline), stages in sorted(order.items()):
        stages.sort(key=lambda st: (system, pipeline, st) in closing)  # stable: open stages first, as seen
        rank = {st: i for i, st in enumerate(stages)}
        for stage in stages:
            count = len(reached[(system, pipeline, stage)])
            # a deal moved on when a stage after this one (in the pipeline's order) followed it in its history
            moved = sum(
                1
                for path in paths[(system, pipeline)]
                if stage in path and any(rank[later] > rank[stage] for later in path[path.index(stage) + 1 :])
            )
            closed = (system, pipeline, stage) in closing
            stage_rows.append(
                {
                    "system": system,
                    "pipeline": pipeline,
                    "stage": stage,
                    "reached": count,
                    "now": now_in[(system, pipeline, stage)],
                    "conversion": round(100 * moved / count, 1) if count and not closed else None,
                }
            )
    outcome_rows: dict[tuple[str, str], dict[str, Any]] = {}
    managers: dict[str, dict[str, Any]] = {}
    for deal in deals:
        f = deal.fields
        status = f.get("status") or "open"
        if status in ("won", "lost"):
            reason = str(f.get("loss_reason") or "") if status == "lost" else ""
            row = outcome_rows.setdefault(
                (status, reason), {"status": status, "reason": reason or "—", "deals": 0, "amount": 0.0}
            )
            row["deals"] += 1
            row["amount"] += float(f.get("amount") or 0)
        manager = str(f.get("manager") or f.get("assignee") or f.get("responsible") or "—")
        m = managers.setdefault(manager, {"manager": manager, "deals": 0, "won": 0, "_amounts": [], "_cycles": []})
        m["deals"] += 1
        if f.get("amount") is not None:
            m["_amounts"].append(float(f["amount"]))
        if status == "won":
            m["won"] += 1
            history = [_parse_time(h.get("at")) for h in _stage_history(deal)]
            times = [t for t in history if t is not None]
            if len(times) >= 2:
                m["_cycles"].append((max(times) - min(times)).total_seconds() / 86400)
    manager_rows = []
    for m in sorted(managers.values(), key=lambda r: r["manager"]):
        amounts, cycles = m.pop("_amounts"), m.pop("_cycles")
        m["avg_amount"] = round(sum(amounts) / len(amounts), 2) if amounts else None
        m["avg_cycle_days"] = round(sum(cycles) / len(cycles), 1) if cycles else None
        manager_rows.append(m)
    stages_report = Report(
        name="funnel",
        title="Funnel",
        columns=[
            Column("system", "Source"),
            Column("pipeline", "Pipeline"),
            Column("stage", "Stage"),
            Column("reached", "Deals that reached it", "int"),
            Column("now", "Deals in it now", "int"),
            Column("conversion", "Moved on to a later stage, %", "float"),
        ],
        rows=stage_rows,
        chart=Chart("stage", [("reached", "s-main")]),
    )
    stages_report.sections = [
        Report(
            "funnel-outcomes",
            "Won and lost",
            [
                Column("status", "Status", "word"),
                Column("reason", "Reason"),
                Column("deals", "Deals", "int"),
                Column("amount", "Amount", "money"),
            ],
            sorted(outcome_rows.values(), key=lambda r: (r["status"], -r["deals"])),
        ),
        Report(
            "funnel-managers",
            "Per manager",
            [
                Column("manager", "Manager"),
                Column("deals", "Deals", "int"),
                Column("won", "Won", "int"),
                Column("avg_amount", "Average deal", "money"),
                Column("avg_cycle_days", "Average cycle, days", "float"),
            ],
            manager_rows,
        ),
    ]
    return stages_report


# --- clients -----------------------------------------------------------------------------------------------


def _source_of(origin: str | None) -> str:
    """The channel a client came from: the system part of the first contact point's origin."""
    system = (origin or "").split(":", 1)[0].split("/", 1)[0]
    return {"": "api", "hub": "api"}.get(system, system)


def new_clients(hub: Hub, opts: Options) -> Report:
    """New clients by source (Excel, Bitrix24, amoCRM, calls, email, API) per ISO week."""
    c, cp = s.clients.c, s.contact_points.c
    first_origin = (
        select(cp.origin).where(cp.client_id == c.id).order_by(cp.id).limit(1).correlate(s.clients).scalar_subquery()
    )
    first_ref = (
        select(s.refs.c.system)
        .where(s.refs.c.target == "client", s.refs.c.target_id == c.id)
        .order_by(s.refs.c.id)
        .limit(1)
        .correlate(s.clients)
        .scalar_subquery()
    )
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sources: set[str] = set()
    with hub.store.read() as conn:
        rows = conn.execute(
            select(c.created_at, first_ref.label("ref"), first_origin.label("origin")).where(
                c.created_at >= opts.period.start, c.created_at < opts.period.end
            )
        )
        for r in rows:
            source = r.ref or _source_of(r.origin)
            if opts.system and source != opts.system:
                continue
            created = opts.period.local(r.created_at)
            monday = (created.date() - timedelta(days=created.weekday())).isoformat()
            counts[monday][source] += 1
            sources.add(source)
    ordered = sorted(sources)
    out: list[dict[str, Any]] = [
        {"week": week, **{src: counts[week].get(src, 0) for src in ordered}} for week in sorted(counts)
    ]
    for row in out:
        row["total"] = sum(int(row[src]) for src in ordered)
    palette = ["s-main", "s-ok", "s-warn", "s-bad", "s-alt", "s-mute"]
    return Report(
        name="new-clients",
        title="New clients by source per week",
        columns=[
            Column("week", "Week of"),
            *[Column(src, src, "int") for src in ordered],
            Column("total", "Total", "int"),
        ],
        rows=out,
        chart=Chart("week", [(src, palette[i % len(palette)]) for i, src in enumerate(ordered)]),
    )


def not_contacted(hub: Hub, opts: Options) -> Report:
    """Clients with no call, email, note, message or meeting for ``days`` days (the longest silent first)."""
    cutoff = datetime.now(UTC) - timedelta(days=opts.days)
    c, i = s.clients.c, s.items.c
    last = (
        select(func.max(i.occurred_at))
        .where(i.client_id == c.id, i.kind == "interaction")
        .correlate(s.clients)
        .scalar_subquery()
    )
    with hub.store.read() as conn:
        query = (
            select(c.id, c.name, c.kind, last.label("last"))
            .where(c.merged_into.is_(None))
            .where((last < cutoff) | (last.is_(None)))
            .order_by(last.asc().nulls_first(), c.id)
            .limit(MAX_LIST_ROWS)
        )
        if opts.system:
            query = query.where(
                c.id.in_(select(s.refs.c.target_id).where(s.refs.c.target == "client", s.refs.c.system == opts.system))
            )
        rows = [
            {"client_id": r.id, "name": r.name, "kind": r.kind, "last_contact": as_utc(r.last) if r.last else None}
            for r in conn.execute(query)
        ]
    return Report(
        name="not-contacted",
        title="Clients not contacted for N days",
        columns=[
            Column("client_id", "Client", "link"),
            Column("name", "Name"),
            Column("kind", "Kind"),
            Column("last_contact", "Last contact", "datetime"),
        ],
        rows=rows,
    )


def stale_deals(hub: Hub, opts: Options) -> Report:
    """Open deals with no change for ``days`` days, or with no open task for their client."""
    cutoff = datetime.now(UTC) - timedelta(days=opts.days)
    with hub.store.read() as conn:
        open_task_clients = {
            r.client_id
            for r in conn.execute(select(s.items.c.client_id, s.items.c.fields).where(s.items.c.kind == "task"))
            if not flatten(r.fields).get("done")
        }
        rows = conn.execute(select(s.items).where(s.items.c.kind == "deal").order_by(s.items.c.updated_at)).mappings()
        out = []
        for r in rows:
            f = flatten(r["fields"])
            if f.get("status") in ("won", "lost"):
                continue
            if opts.system and r["source"].get("system") != opts.system:
                continue
            changed = as_utc(r["updated_at"])
            no_task = r["client_id"] not in open_task_clients
            if changed >= cutoff and not no_task:
                continue
            out.append(
                {
                    "client_id": r["client_id"],
                    "title": f.get("title"),
                    "system": r["source"].get("system"),
                    "stage": f.get("stage"),
                    "amount": f.get("amount"),
                    "changed": changed,
                    "days": (datetime.now(UTC) - changed).days,
                    "no_task": "✓" if no_task else "",
                }
            )
            if len(out) >= MAX_LIST_ROWS:
                break
    return Report(
        name="stale-deals",
        title="Stale deals",
        columns=[
            Column("client_id", "Client", "link"),
            Column("title", "Deal"),
            Column("system", "Source"),
            Column("stage", "Stage"),
            Column("amount", "Amount", "money"),
            Column("changed", "Last change", "datetime"),
            Column("days", "Days without change", "int"),
            Column("no_task", "No open task"),
        ],
        rows=out,
    )


def open_tasks_by_assignee(hub: Hub, *, assignees: set[str] | None = None) -> list[dict[str, Any]]:
    """Every open task, soonest due first; only those of ``assignees`` when given."""
    with hub.store.read() as conn:
        c = s.clients.c
        rows = conn.execute(
            select(s.items.c.id, s.items.c.client_id, s.items.c.fields, s.items.c.source, c.name)
            .join(s.clients, c.id == s.items.c.client_id)
            .where(s.items.c.kind == "task")
        ).all()
    tasks = []
    for r in rows:
        f = flatten(r.fields)
        if f.get("done"):
            continue
        if assignees is not None and str(f.get("assignee") or "") not in assignees:
            continue
        due = _parse_time(f.get("due_at"))
        tasks.append(
            {
                "id": r.id,
                "client_id": r.client_id,
                "client": r.name,
                "title": f.get("title"),
                "assignee": f.get("assignee"),
                "due_at": due,
                "system": r.source.get("system") if isinstance(r.source, dict) else None,
            }
        )
    tasks.sort(key=lambda t: t["due_at"] or datetime.max.replace(tzinfo=UTC))
    return tasks


def overdue_tasks(hub: Hub, opts: Options) -> Report:
    """Overdue open tasks per manager, with the oldest due date."""
    now = datetime.now(UTC)
    per: dict[str, dict[str, Any]] = {}
    for task in open_tasks_by_assignee(hub):
        if task["due_at"] is None or task["due_at"] >= now:
            continue
        if opts.system and task["system"] != opts.system:
            continue
        who = str(task["assignee"] or "—")
        row = per.setdefault(who, {"assignee": who, "overdue": 0, "oldest_due": task["due_at"]})
        row["overdue"] += 1
        row["oldest_due"] = min(row["oldest_due"], task["due_at"])
    rows = sorted(per.values(), key=lambda r: -r["overdue"])
    return Report(
        name="overdue-tasks",
        title="Overdue tasks per manager",
        columns=[
            Column("assignee", "Assignee"),
            Column("overdue", "Overdue", "int"),
            Column("oldest_due", "Oldest due", "datetime"),
        ],
        rows=rows,
        chart=Chart("assignee", [("overdue", "s-bad")]),
    )


REPORTS: dict[str, Callable[[Hub, Options], Report]] = {
    "calls": calls_per_operator,
    "funnel": funnel,
    "new-clients": new_clients,
    "not-contacted": not_contacted,
    "stale-deals": stale_deals,
    "overdue-tasks": overdue_tasks,
}
TITLES = {
    "calls": "Calls per operator and day",
    "funnel": "Funnel",
    "new-clients": "New clients by source per week",
    "not-contacted": "Clients not contacted for N days",
    "stale-deals": "Stale deals",
    "overdue-tasks": "Overdue tasks per manager",
}


def build(hub: Hub, name: str, opts: Options) -> Report:
    try:
        make = REPORTS[name]
    except KeyError:
        raise BadInput(f"unknown report {name!r}; use one of {', '.join(REPORTS)}") from None
    report = make(hub, opts)
    for part in [report, *report.sections]:
        part.zone = opts.period.zone
    return report


# --- export ------------------------------------------------------------------------------------------------


def _cell(value: Any, zone: tzinfo = UTC) -> Any:
    """A value safe in a spreadsheet: text that looks like a formula stays text (no formula injection); a time is
    written in the hub's zone (a spreadsheet cell has none)."""
    if isinstance(value, datetime):
        return as_utc(value).astimezone(zone).replace(tzinfo=None)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, bool):
        return "✓" if value else ""
    return value


def to_xlsx(report: Report, translate: Callable[[str], str] = lambda t: t) -> bytes:
    """The report (and its sections) as an xlsx workbook, one sheet per table, times in the report's zone."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for part in [report, *report.sections]:
        sheet = book.create_sheet(translate(part.title)[:31])
        sheet.append([translate(c.title) for c in part.columns])
        for row in part.rows:
            sheet.append([_cell(row.get(c.key), part.zone) for c in part.columns])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _text(value: Any, zone: tzinfo) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return as_utc(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return str(value)


def rows_as_text(report: Report) -> Iterable[list[str]]:
    """The rows as text, times in the report's zone."""
    for row in report.rows:
        yield [_text(row.get(c.key), report.zone) for c in report.columns]
