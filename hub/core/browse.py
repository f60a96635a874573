"""Finding and listing clients for people: one search box (phone in any format, email, INN, name, company) and a
filtered, paginated list; each row with what a person needs to recognise the client. Every query uses an index.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select, text

from hub.core import schema as s
from hub.core.errors import BadInput
from hub.core.identity import normalize_email, normalize_phone
from hub.core.record import as_utc, flatten

MAX_MATCHES = 200  # a search answers at most this many clients; people refine the query beyond that
OPEN_DEAL = ("won", "lost")


@dataclass
class ClientRow:
    """One line of the client list."""

    id: int
    kind: str
    name: str | None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    inn: str | None = None
    company: str | None = None
    company_id: int | None = None
    systems: list[str] = field(default_factory=list)
    last_contact: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Page:
    rows: list[ClientRow]
    next_cursor: int | None  # keyset: pass as ``after`` for the next page
    total: int | None  # known for searches, not for the whole base (counting a million rows costs a scan)


@dataclass
class Filters:
    system: str | None = None  # known to this source system (a ref exists)
    open_deals: bool = False
    not_contacted_days: int | None = None
    kind: str | None = None


def _digits(q: str) -> str:
    return re.sub(r"\D", "", q)


def match_ids(conn: Connection, q: str, *, region: str = "RU", limit: int = MAX_MATCHES) -> list[int]:
    """Live clients matching ``q``: exact phone, email or INN first, then text in the name, phones and emails."""
    q = q.strip()
    if not q:
        return []
    found: list[int] = []
    points: list[tuple[str, str]] = []
    if "@" in q:
        with contextlib.suppress(BadInput):
            points.append(("email", normalize_email(q)))
    digits = _digits(q)
    if len(digits) >= 7 and len(digits) >= len(re.sub(r"[\s()+\-.]", "", q)):  # only digits and phone punctuation
        with contextlib.suppress(BadInput):
            points.append(("phone", normalize_phone(q, region)))
        if len(digits) in (10, 12):
            points.append(("inn", digits))
    for kind, value in points:
        rows = conn.execute(
            select(s.contact_points.c.client_id)
            .join(s.clients, s.clients.c.id == s.contact_points.c.client_id)
            .where(
                s.contact_points.c.value == value, s.contact_points.c.kind == kind, s.clients.c.merged_into.is_(None)
            )
            .order_by(s.contact_points.c.client_id)
        )
        found += [r.client_id for r in rows if r.client_id not in found]
    if not found:  # an exact phone, email or INN is the answer; text is searched only when none matched
        found = _text_matches(conn, q, limit)
    return found[:limit]


def _text_matches(conn: Connection, q: str, limit: int) -> list[int]:
    needle = q.casefold()
    if conn.dialect.name == "sqlite" and len(needle) >= 3 and _has_search_index(conn):
        # A trigram phrase query is a substring match answered by the index (three characters or more), in
        # ascending rowid order: no scan of the clients, no sort, whatever the size of the base.
        phrase = '"' + needle.replace('"', '""') + '"'
        found = [
            r.rowid
            for r in conn.execute(
                text("SELECT rowid FROM clients_fts WHERE clients_fts MATCH :phrase LIMIT :limit"),
                {"phrase": phrase, "limit": limit + 100},  # room for merged-away clients
            )
        ]
        if not found:
            return []
        live = {
            r.id
            for r in conn.execute(
                select(s.clients.c.id).where(s.clients.c.id.in_(found), s.clients.c.merged_into.is_(None))
            )
        }
        return [i for i in found if i in live][:limit]
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        select(s.clients.c.id)
        .where(s.clients.c.merged_into.is_(None), s.clients.c.search.like(f"%{escaped}%", escape="\\"))
        .order_by(s.clients.c.id)
        .limit(limit)
    )
    return [r.id for r in rows]


def _has_search_index(conn: Connection) -> bool:
    cached = conn.info.get("hub_search_index")
    if cached is None:
        cached = conn.info["hub_search_index"] = bool(
            conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'clients_fts'")).first()
        )
    return bool(cached)


def _filtered(query: Any, filters: Filters, now: datetime) -> Any:
    c = s.clients.c
    if filters.kind:
        query = query.where(c.kind == filters.kind)
    if filters.system:
        query = query.where(
            exists().where(s.refs.c.target == "client", s.refs.c.target_id == c.id, s.refs.c.system == filters.system)
        )
    if filters.open_deals:
        status = func.coalesce(_json_text(s.items.c.fields, "status"), "open")
        query = query.where(
            exists().where(s.items.c.client_id == c.id, s.items.c.kind == "deal", status.not_in(OPEN_DEAL))
        )
    if filters.not_contacted_days is not None:
        cutoff = now - timedelta(days=filters.not_contacted_days)
        query = query.where(
            ~exists().where(
                s.items.c.client_id == c.id, s.items.c.kind == "interaction", s.items.c.occurred_at >= cutoff
            )
        )
    return query


def _json_text(column: Any, key: str) -> Any:
    """The value of a provenance-wrapped JSON field (``{"v": ..}``) as text, on SQLite and PostgreSQL."""
    return column[key]["v"].as_string()


def browse(
    conn: Connection,
    *,
    q: str = "",
    filters: Filters | None = None,
    after: int | None = None,
    offset: int = 0,
    limit: int = 25,
    region: str = "RU",
    now: datetime | None = None,
) -> Page:
    """A page of clients: the matches of ``q`` (paged by offset), or the whole base newest first (keyset)."""
    filters = filters or Filters()
    now = now or datetime.now(UTC)
    if q.strip():
        ids = match_ids(conn, q, region=region)
        if ids and (filters.system or filters.open_deals or filters.not_contacted_days is not None or filters.kind):
            kept = {
                r.id
                for r in conn.execute(_filtered(select(s.clients.c.id).where(s.clients.c.id.in_(ids)), filters, now))
            }
            ids = [i for i in ids if i in kept]
        window = ids[offset : offset + limit]
        return Page(rows=rows_for(conn, window), next_cursor=None, total=len(ids))
    query = select(s.clients.c.id).where(s.clients.c.merged_into.is_(None))
    if after is not None:
        query = query.where(s.clients.c.id < after)
    query = _filtered(query, filters, now).order_by(s.clients.c.id.desc()).limit(limit + 1)
    ids = [r.id for r in conn.execute(query)]
    more = len(ids) > limit
    ids = ids[:limit]
    return Page(rows=rows_for(conn, ids), next_cursor=ids[-1] if more else None, total=None)


def rows_for(conn: Connection, ids: list[int]) -> list[ClientRow]:
    """List rows for these clients, in this order, in five indexed queries whatever the page size."""
    if not ids:
        return []
    c = s.clients.c
    rows = {
        r.id: ClientRow(id=r.id, kind=r.kind, name=r.name, company_id=r.company_id, updated_at=as_utc(r.updated_at))
        for r in conn.execute(select(c.id, c.kind, c.name, c.company_id, c.updated_at).where(c.id.in_(ids)))
    }
    cp = s.contact_points.c
    for r in conn.execute(
        select(cp.client_id, cp.kind, cp.value).where(cp.client_id.in_(ids)).order_by(cp.client_id, cp.id)
    ):
        row = rows.get(r.client_id)
        if row is None:
            continue
        if r.kind == "phone":
            row.phones.append(r.value)
        elif r.kind == "email":
            row.emails.append(r.value)
        elif r.kind == "inn":
            row.inn = r.value
    for ref in conn.execute(
        select(s.refs.c.target_id, s.refs.c.system)
        .where(s.refs.c.target == "client", s.refs.c.target_id.in_(ids))
        .distinct()
    ):
        if ref.target_id in rows and ref.system not in rows[ref.target_id].systems:
            rows[ref.target_id].systems.append(ref.system)
    company_ids = {r.company_id for r in rows.values() if r.company_id}
    if company_ids:
        names = dict(conn.execute(select(c.id, c.name).where(c.id.in_(company_ids))).all())
        for row in rows.values():
            if row.company_id:
                row.company = names.get(row.company_id)
    i = s.items.c
    for last in conn.execute(
        select(i.client_id, func.max(i.occurred_at).label("last"))
        .where(i.client_id.in_(ids), i.kind == "interaction")
        .group_by(i.client_id)
    ):
        if last.client_id in rows and last.last is not None:
            rows[last.client_id].last_contact = as_utc(last.last)
    return [rows[i] for i in ids if i in rows]


# --- the client card ---------------------------------------------------------------------------------------


@dataclass
class TimelinePage:
    items: list[dict[str, Any]]
    page: int
    pages: int
    total: int


def contact_points(conn: Connection, client_id: int) -> list[dict[str, Any]]:
    """A client's phones, emails and identity keys, each with where and when it was seen."""
    cp = s.contact_points.c
    rows = conn.execute(
        select(cp.kind, cp.value, cp.origin, cp.observed_at).where(cp.client_id == client_id).order_by(cp.id)
    )
    return [{"kind": r.kind, "value": r.value, "s": r.origin, "t": as_utc(r.observed_at)} for r in rows]


def people_of(conn: Connection, company_id: int, limit: int = 50) -> list[ClientRow]:
    ids = [
        r.id
        for r in conn.execute(
            select(s.clients.c.id)
            .where(s.clients.c.company_id == company_id, s.clients.c.merged_into.is_(None))
            .order_by(s.clients.c.id)
            .limit(limit)
        )
    ]
    return rows_for(conn, ids)


def timeline_page(
    conn: Connection,
    client_id: int,
    *,
    kinds: list[str] | None = None,
    channels: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 30,
) -> TimelinePage:
    """One page of a client's timeline, newest first, with each item's fields *and* their provenance."""
    i = s.items.c
    where: list[Any] = [i.client_id == client_id]
    if kinds or channels:
        parts: list[Any] = []
        if kinds:
            parts.append(i.kind.in_(kinds))
        if channels:
            parts.append(and_(i.kind == "interaction", i.channel.in_(channels)))
        where.append(parts[0] if len(parts) == 1 else parts[0] | parts[1])
    if since is not None:
        where.append(i.occurred_at >= since)
    if until is not None:
        where.append(i.occurred_at < until)
    total = int(conn.execute(select(func.count()).select_from(s.items).where(*where)).scalar() or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = conn.execute(
        select(s.items)
        .where(*where)
        .order_by(i.occurred_at.desc(), i.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).mappings()
    items = [
        {
            "id": r["id"],
            "kind": r["kind"],
            "channel": r["channel"],
            "occurred_at": as_utc(r["occurred_at"]),
            "fields": flatten(r["fields"]),
            "provenance": {
                k: {"s": p.get("s"), "t": p.get("t")} for k, p in (r["fields"] or {}).items() if isinstance(p, dict)
            },
            "source": r["source"],
            "version": r["version"],
        }
        for r in rows
    ]
    return TimelinePage(items=items, page=page, pages=pages, total=total)


def open_tasks(conn: Connection, client_id: int, limit: int = 20) -> list[dict[str, Any]]:
    i = s.items.c
    rows = conn.execute(
        select(i.id, i.fields, i.occurred_at)
        .where(i.client_id == client_id, i.kind == "task")
        .order_by(i.occurred_at.desc())
        .limit(200)
    )
    tasks = []
    for r in rows:
        fields = flatten(r.fields)
        if not fields.get("done"):
            tasks.append({"id": r.id, **fields})
    tasks.sort(key=lambda t: str(t.get("due_at") or "9999"))
    return tasks[:limit]


def open_deals(conn: Connection, client_id: int, limit: int = 20) -> list[dict[str, Any]]:
    i = s.items.c
    rows = conn.execute(
        select(i.id, i.fields)
        .where(i.client_id == client_id, i.kind == "deal")
        .order_by(i.occurred_at.desc())
        .limit(200)
    )
    deals = [{"id": r.id, **flatten(r.fields)} for r in rows]
    return [d for d in deals if d.get("status") not in OPEN_DEAL][:limit]
