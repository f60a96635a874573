"""Merging two clients a person confirmed are one, and undoing it exactly.

A merge moves the loser's contact points, refs and timeline to the winner, fills the winner's empty fields,
and records every id it moved, so ``unmerge`` restores both clients as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hub.core import schema as s
from hub.core.errors import BadInput, NotFound
from hub.core.events import Event, SourceRef
from hub.core.record import load_client

HUB_ORIGIN = SourceRef(system="hub", entity="merge", id="0")


def _now() -> datetime:
    return datetime.now(UTC)


def _event(
    conn: Connection,
    client_id: int,
    event_type: Any,
    origin: SourceRef,
    changed: list[str],
    merged_id: int | None = None,
) -> Event:
    state = load_client(conn, client_id)
    assert state is not None
    event = Event(
        type=event_type,
        client_id=client_id,
        version=state.version,
        origin=origin,
        changed=changed,
        client=state.view(),
        merged_id=merged_id,
    )
    conn.execute(
        insert(s.outbox).values(
            event_id=event.event_id,
            client_id=client_id,
            type=event.type,
            origin=origin.origin,
            payload=event.model_dump_json(),
            created_at=event.occurred_at,
            relayed=False,
        )
    )
    return event


def merge_clients(conn: Connection, winner_id: int, loser_id: int, *, actor: str) -> tuple[int, list[Event]]:
    """Merge ``loser_id`` into ``winner_id``; return the merge id and the events to publish."""
    if winner_id == loser_id:
        raise BadInput("a client cannot be merged into itself")
    winner = load_client(conn, winner_id, for_update=True)
    loser = load_client(conn, loser_id, for_update=True)
    for cid, state in ((winner_id, winner), (loser_id, loser)):
        if state is None:
            raise NotFound(f"client {cid} does not exist")
        if state.merged_into is not None:
            raise BadInput(f"client {cid} was already merged into {state.merged_into}")
    assert winner is not None and loser is not None
    moved_points = [pid for key, pid in loser.points.items() if key not in winner.points]
    ref_ids = [
        r.id
        for r in conn.execute(select(s.refs.c.id).where(s.refs.c.target == "client", s.refs.c.target_id == loser_id))
    ]
    item_ids = [r.id for r in conn.execute(select(s.items.c.id).where(s.items.c.client_id == loser_id))]
    filled = {k: v for k, v in loser.fields.items() if k not in winner.fields}
    if moved_points:
        conn.execute(
            update(s.contact_points).where(s.contact_points.c.id.in_(moved_points)).values(client_id=winner_id)
        )
    if ref_ids:
        conn.execute(update(s.refs).where(s.refs.c.id.in_(ref_ids)).values(target_id=winner_id))
    if item_ids:
        conn.execute(update(s.items).where(s.items.c.id.in_(item_ids)).values(client_id=winner_id))
    fields = {**winner.fields, **filled}
    name = winner.name or loser.name
    now = _now()
    winner.fields, winner.name = fields, name
    for key in loser.points:
        winner.points.setdefault(key, 0)
    conn.execute(
        update(s.clients)
        .where(s.clients.c.id == winner_id)
        .values(fields=fields, name=name, search=winner.search_text(), version=winner.version + 1, updated_at=now)
    )
    conn.execute(
        update(s.clients)
        .where(s.clients.c.id == loser_id)
        .values(merged_into=winner_id, version=loser.version + 1, updated_at=now)
    )
    conn.execute(
        update(s.merge_candidates)
        .where(
            (s.merge_candidates.c.client_id == min(winner_id, loser_id))
            & (s.merge_candidates.c.other_id == max(winner_id, loser_id))
        )
        .values(status="merged")
    )
    moved: dict[str, Any] = {
        "contact_points": moved_points,
        "refs": ref_ids,
        "items": item_ids,
        "filled_fields": sorted(filled),
        "winner_name": winner.name if name != winner.name else None,
    }
    merge_id = conn.execute(
        insert(s.merges).values(winner_id=winner_id, loser_id=loser_id, moved=moved, actor=actor, created_at=now)
    ).inserted_primary_key
    assert merge_id is not None
    origin = SourceRef(system="hub", entity="merge", id=str(merge_id[0]))
    events = [_event(conn, winner_id, "clients.merged", origin, ["merged"], merged_id=loser_id)]
    return int(merge_id[0]), events


def unmerge(conn: Connection, merge_id: int) -> list[Event]:
    """Undo a merge: everything moved goes back; fields the merge filled are removed from the winner."""
    row = conn.execute(select(s.merges).where(s.merges.c.id == merge_id).with_for_update()).mappings().first()
    if row is None:
        raise NotFound(f"merge {merge_id} does not exist")
    if row["undone_at"] is not None:
        raise BadInput(f"merge {merge_id} was already undone")
    winner_id, loser_id, moved = row["winner_id"], row["loser_id"], row["moved"]
    if moved["contact_points"]:
        conn.execute(
            update(s.contact_points)
            .where(s.contact_points.c.id.in_(moved["contact_points"]))
            .values(client_id=loser_id)
        )
    if moved["refs"]:
        conn.execute(update(s.refs).where(s.refs.c.id.in_(moved["refs"])).values(target_id=loser_id))
    if moved["items"]:
        conn.execute(update(s.items).where(s.items.c.id.in_(moved["items"])).values(client_id=loser_id))
    winner = load_client(conn, winner_id, for_update=True)
    assert winner is not None
    for key in moved["filled_fields"]:
        winner.fields.pop(key, None)
    if "name" in moved["filled_fields"]:
        winner.name = None
    now = _now()
    conn.execute(
        update(s.clients)
        .where(s.clients.c.id == winner_id)
        .values(
            fields=winner.fields,
            name=winner.name,
            search=winner.search_text(),
            version=winner.version + 1,
            updated_at=now,
        )
    )
    loser = load_client(conn, loser_id, for_update=True)
    assert loser is not None
    conn.execute(
        update(s.clients)
        .where(s.clients.c.id == loser_id)
        .values(merged_into=None, version=loser.version + 1, updated_at=now)
    )
    conn.execute(update(s.merges).where(s.merges.c.id == merge_id).values(undone_at=now))
    origin = SourceRef(system="hub", entity="unmerge", id=str(merge_id))
    return [
        _event(conn, winner_id, "client.changed", origin, ["unmerged"]),
        _event(conn, loser_id, "client.changed", origin, ["unmerged"]),
    ]


def dismiss_candidate(conn: Connection, candidate_id: int) -> None:
    """A person said the two clients are different people: the candidate is closed and not asked again."""
    done = conn.execute(
        update(s.merge_candidates)
        .where(s.merge_candidates.c.id == candidate_id, s.merge_candidates.c.status == "open")
        .values(status="dismissed")
    )
    if not done.rowcount:
        raise NotFound(f"no open merge candidate {candidate_id}")


def recent_merges(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The latest merges, newest first, for a person to review or undo."""
    rows = conn.execute(select(s.merges).order_by(s.merges.c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]
