"""Reading the unified record: a client's state, lookups by phone/email/name/ref, the timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from hub.core import schema as s
from hub.core.events import ClientView, ItemView, RefView, SourceRef

Prov = dict[str, Any]  # {"v": value, "s": origin, "t": iso time}


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass
class ClientState:
    """A client loaded for change: its row, contact points and refs, mutated in memory then written."""

    id: int
    kind: str
    name: str | None
    company_id: int | None
    fields: dict[str, Prov]
    version: int
    merged_into: int | None
    created_at: datetime
    updated_at: datetime
    points: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, value) -> contact point id
    refs: list[RefView] = field(default_factory=list)

    def values(self, kind: str) -> list[str]:
        return [v for (k, v) in self.points if k == kind]

    def search_text(self) -> str:
        parts = [self.name or "", *self.values("phone"), *self.values("email")]
        return " ".join(p for p in parts if p).casefold()

    def view(self) -> ClientView:
        return ClientView(
            id=self.id,
            kind=self.kind,
            name=self.name,
            phones=self.values("phone"),
            emails=self.values("email"),
            refs=list(self.refs),
            fields={k: p["v"] for k, p in self.fields.items() if k != "name"},
            company_id=self.company_id,
            version=self.version,
            merged_into=self.merged_into,
            created_at=as_utc(self.created_at),
            updated_at=as_utc(self.updated_at),
        )


_CLIENT = select(s.clients).where(s.clients.c.id == bindparam("id"))
_CLIENT_FOR_UPDATE = _CLIENT.with_for_update()
_POINTS = (
    select(s.contact_points.c.id, s.contact_points.c.kind, s.contact_points.c.value)
    .where(s.contact_points.c.client_id == bindparam("id"))
    .order_by(s.contact_points.c.id)
)
_REFS = (
    select(s.refs.c.system, s.refs.c.account, s.refs.c.entity, s.refs.c.ext_id)
    .where(s.refs.c.target == bindparam("target"), s.refs.c.target_id == bindparam("id"))
    .order_by(s.refs.c.id)
)
_ITEM_REFS = (
    select(s.refs.c.target_id, s.refs.c.system, s.refs.c.account, s.refs.c.entity, s.refs.c.ext_id)
    .where(s.refs.c.target == "item", s.refs.c.target_id.in_(bindparam("ids", expanding=True)))
    .order_by(s.refs.c.id)
)
_MERGED_INTO = select(s.clients.c.merged_into).where(s.clients.c.id == bindparam("id"))
_FIND_REF = select(s.refs.c.target, s.refs.c.target_id).where(
    s.refs.c.system == bindparam("system"),
    s.refs.c.account == bindparam("account"),
    s.refs.c.entity == bindparam("entity"),
    s.refs.c.ext_id == bindparam("ext_id"),
)
_POINT_OWNERS = (
    select(s.contact_points.c.value, s.clients.c.id)
    .join(s.clients, s.contact_points.c.client_id == s.clients.c.id)
    .where(
        s.contact_points.c.kind == bindparam("kind"),
        s.contact_points.c.value.in_(bindparam("values", expanding=True)),
        s.clients.c.merged_into.is_(None),
    )
)
_POINT_OWNERS_OF_KIND = _POINT_OWNERS.where(s.clients.c.kind == bindparam("client_kind"))


def load_client(conn: Connection, client_id: int, *, for_update: bool = False) -> ClientState | None:
    row = conn.execute(_CLIENT_FOR_UPDATE if for_update else _CLIENT, {"id": client_id}).mappings().first()
    if row is None:
        return None
    state = ClientState(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        company_id=row["company_id"],
        fields=dict(row["fields"] or {}),
        version=row["version"],
        merged_into=row["merged_into"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
    for cp in conn.execute(_POINTS, {"id": client_id}):
        state.points[(cp.kind, cp.value)] = cp.id
    state.refs = client_refs(conn, client_id)
    return state


def client_refs(conn: Connection, client_id: int, target: str = "client") -> list[RefView]:
    rows = conn.execute(_REFS, {"target": target, "id": client_id})
    return [RefView(system=r.system, account=r.account, entity=r.entity, id=r.ext_id) for r in rows]


def live_id(conn: Connection, client_id: int) -> int | None:
    """Follow ``merged_into`` to the client that stands for this id now."""
    seen = set()
    current: int | None = client_id
    while current is not None and current not in seen:
        seen.add(current)
        row = conn.execute(_MERGED_INTO, {"id": current}).first()
        if row is None:
            return None
        if row.merged_into is None:
            return current
        current = row.merged_into
    return current


def find_ref(conn: Connection, ref: SourceRef) -> tuple[str, int] | None:
    row = conn.execute(
        _FIND_REF, {"system": ref.system, "account": ref.account, "entity": ref.entity, "ext_id": ref.id}
    ).first()
    return (row.target, row.target_id) if row else None


def point_owners(
    conn: Connection, kind: str, values: list[str], client_kind: str | None = None
) -> dict[str, list[int]]:
    """For each value, the live clients holding it as a contact point of ``kind``, oldest first."""
    if not values:
        return {}
    params = {"kind": kind, "values": values}
    if client_kind:
        params["client_kind"] = client_kind
    owners: dict[str, list[int]] = {}
    for row in conn.execute(_POINT_OWNERS_OF_KIND if client_kind else _POINT_OWNERS, params):
        owners.setdefault(row.value, []).append(row.id)
    for ids in owners.values():
        ids.sort()
    return owners


_POINT_PAIRS_OWNERS = (
    select(s.contact_points.c.kind, s.contact_points.c.value, s.clients.c.id)
    .join(s.clients, s.contact_points.c.client_id == s.clients.c.id)
    .where(
        s.contact_points.c.value.in_(bindparam("values", expanding=True)),
        s.clients.c.merged_into.is_(None),
    )
)
_POINT_PAIRS_OWNERS_OF_KIND = _POINT_PAIRS_OWNERS.where(s.clients.c.kind == bindparam("client_kind"))


def point_owners_many(
    conn: Connection, pairs: list[tuple[str, str]], client_kind: str | None = None
) -> dict[tuple[str, str], list[int]]:
    """For each (kind, value), the live clients holding it, oldest first: one indexed query for them all."""
    wanted = set(pairs)
    params: dict[str, Any] = {"values": sorted({v for _, v in pairs})}
    if client_kind:
        params["client_kind"] = client_kind
    owners: dict[tuple[str, str], list[int]] = {}
    for row in conn.execute(_POINT_PAIRS_OWNERS_OF_KIND if client_kind else _POINT_PAIRS_OWNERS, params):
        if (row.kind, row.value) in wanted:
            owners.setdefault((row.kind, row.value), []).append(row.id)
    for ids in owners.values():
        ids.sort()
    return owners


def find_by_point(conn: Connection, kind: str, values: list[str], client_kind: str | None = None) -> list[int]:
    """Live clients holding any of these contact points, oldest first."""
    return sorted({cid for ids in point_owners(conn, kind, values, client_kind).values() for cid in ids})


def client_views(conn: Connection, ids: list[int]) -> list[ClientView]:
    views = []
    for cid in ids:
        state = load_client(conn, cid)
        if state is not None:
            views.append(state.view())
    return views


def search_clients(conn: Connection, text: str, limit: int = 50) -> list[int]:
    needle = text.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        select(s.clients.c.id)
        .where(s.clients.c.merged_into.is_(None), s.clients.c.search.like(f"%{needle}%", escape="\\"))
        .order_by(s.clients.c.id)
        .limit(limit)
    )
    return [r.id for r in rows]


def item_view(conn: Connection, row: Any, refs: list[RefView] | None = None) -> ItemView:
    return ItemView(
        id=row["id"],
        client_id=row["client_id"],
        kind=row["kind"],
        channel=row["channel"],
        occurred_at=as_utc(row["occurred_at"]),
        fields=flatten(row["fields"]),
        refs=client_refs(conn, row["id"], "item") if refs is None else refs,
        version=row["version"],
        source=RefView(**row["source"]),
    )


def get_item(conn: Connection, item_id: int) -> ItemView | None:
    row = conn.execute(select(s.items).where(s.items.c.id == item_id)).mappings().first()
    return None if row is None else item_view(conn, row)


def flatten(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (p["v"] if isinstance(p, dict) and "v" in p else p) for k, p in (fields or {}).items()}


def item_refs(conn: Connection, item_ids: list[int]) -> dict[int, list[RefView]]:
    """The external refs of many timeline items in one query."""
    refs: dict[int, list[RefView]] = {i: [] for i in item_ids}
    if not item_ids:
        return refs
    rows = conn.execute(_ITEM_REFS, {"ids": item_ids})
    for r in rows:
        refs[r.target_id].append(RefView(system=r.system, account=r.account, entity=r.entity, id=r.ext_id))
    return refs


def timeline(
    conn: Connection,
    client_id: int,
    *,
    limit: int = 100,
    before: datetime | None = None,
    kinds: list[str] | None = None,
) -> list[ItemView]:
    query = select(s.items).where(s.items.c.client_id == client_id)
    if before is not None:
        query = query.where(s.items.c.occurred_at < before)
    if kinds:
        query = query.where(s.items.c.kind.in_(kinds))
    rows = conn.execute(query.order_by(s.items.c.occurred_at.desc(), s.items.c.id.desc()).limit(limit)).mappings().all()
    refs = item_refs(conn, [r["id"] for r in rows])
    return [item_view(conn, row, refs[row["id"]]) for row in rows]


def iter_client_ids(
    conn: Connection, *, after: int = 0, limit: int = 1000, since: datetime | None = None, system: str | None = None
) -> list[int]:
    """Ids of live clients after ``after`` (keyset paging), optionally changed since a time or known to a system."""
    query = select(s.clients.c.id).where(s.clients.c.merged_into.is_(None), s.clients.c.id > after)
    if since is not None:
        query = query.where(s.clients.c.updated_at >= since)
    if system is not None:
        query = query.where(
            s.clients.c.id.in_(select(s.refs.c.target_id).where(s.refs.c.target == "client", s.refs.c.system == system))
        )
    return [r.id for r in conn.execute(query.order_by(s.clients.c.id).limit(limit))]


def iter_items(
    conn: Connection,
    *,
    after: int = 0,
    limit: int = 1000,
    kind: str | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    system: str | None = None,
) -> list[ItemView]:
    """Timeline items after ``after`` by id (keyset paging), filtered by kind, channel, time and source system."""
    query = select(s.items).where(s.items.c.id > after)
    if kind:
        query = query.where(s.items.c.kind == kind)
    if channel:
        query = query.where(s.items.c.channel == channel)
    if since is not None:
        query = query.where(s.items.c.occurred_at >= since)
    if until is not None:
        query = query.where(s.items.c.occurred_at < until)
    if system is not None:
        query = query.where(
            s.items.c.id.in_(select(s.refs.c.target_id).where(s.refs.c.target == "item", s.refs.c.system == system))
        )
    rows = conn.execute(query.order_by(s.items.c.id).limit(limit)).mappings().all()
    refs = item_refs(conn, [r["id"] for r in rows])
    return [item_view(conn, row, refs[row["id"]]) for row in rows]
