"""hub → Bitrix24: the sink and the writer behind it (also used by ``hub bitrix24 push``).

Idempotent by construction: the hub's ref map first, then ``crm.duplicate.findbycomm`` by phone and email (or, in
bulk runs, a snapshot of the portal's phones and emails) before any create. Reads and writes go in ``batch``
requests of up to 50 commands, so a batch of 50 events costs a few requests; new ids go back as RefObservations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from hub.core.echo import Written
from hub.core.errors import BadInput, ExternalAPIError, FatalDelivery, NotFound
from hub.core.events import ClientView, Event, ItemView, RefObservation
from hub.core.sinks import Sink

from .client import MAX_BATCH, PAGE_SIZE, Bitrix24Error
from .connection import Portal
from .echo import call_matches, comment_matches, hub_origin, record_values
from .mapping import (
    OWNER_TYPE_IDS,
    activity_fields,
    comment_fields,
    company_fields,
    contact_fields,
    deal_fields,
    externalcall_params,
    multifield_values,
    normal_emails,
    normal_phones,
    source_ref,
    task_fields,
)

log = structlog.get_logger("crm_hub_plugins.bitrix24")

METHOD = {"contact": "crm.contact", "company": "crm.company"}
BULK_NEW = 10  # this many unknown clients at once: search a snapshot of the portal, not one by one
SNAPSHOT_TTL = 600.0  # seconds before the snapshot is read again in full
SNAPSHOT_REFRESH = 60.0  # seconds before changes since the last read are folded in
SNAPSHOT_OVERLAP = timedelta(seconds=120)
RETRIABLE_CODES = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "INTERNAL_SERVER_ERROR"}
OWNER_READ = ["ID", "TYPE_ID", "START_TIME", "ORIGINATOR_ID", "ORIGIN_ID"]

Command = tuple[str, Mapping[str, Any]]


def entity_of(view: ClientView) -> str:
    return "company" if view.kind == "company" else "contact"


def _point_keys(phones: Iterable[str], emails: Iterable[str], region: str) -> list[str]:
    return [f"phone:{p}" for p in normal_phones(phones, region)] + [f"email:{e}" for e in normal_emails(emails)]


def _first_id(found: Any, entity: str) -> int | None:
    ids = found.get(entity.upper()) if isinstance(found, dict) else None
    return min(int(i) for i in ids) if ids else None


@dataclass
class _Snapshot:
    """The portal's contacts and companies by normalised phone and email, for bulk runs."""

    taken: float
    refreshed: float
    since: datetime
    by_point: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, entity: str, entity_id: int, keys: Iterable[str]) -> None:
        for key in keys:
            self.by_point.setdefault((entity, key), entity_id)


class Writer:
    """Writes hub clients and timeline items to one portal, in ``batch`` requests."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.hub = portal.hub
        self.key = portal.key
        self.client = portal.client
        self.region = portal.region
        self.settings = portal.settings
        self.stage_map = dict(portal.settings.stage_map)
        self.created: set[int] = set()  # hub client ids created in the portal by the last ensure_clients
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    # --- batches ------------------------------------------------------------------------------------------
    def _run(self, groups: Sequence[dict[str, Command]]) -> tuple[dict[str, Any], dict[str, Bitrix24Error]]:
        """Run command groups (a group's commands reference each other) packed into batches of up to 50."""
        results: dict[str, Any] = {}
        errors: dict[str, Bitrix24Error] = {}
        chunk: dict[str, Command] = {}
        for group in groups:
            if chunk and len(chunk) + len(group) > MAX_BATCH:
                answer = self.client.batch_raw(chunk)
                results.update(answer.results)
                errors.update(answer.errors)
                chunk = {}
            chunk.update(group)
        if chunk:
            answer = self.client.batch_raw(chunk)
            results.update(answer.results)
            errors.update(answer.errors)
        return results, errors

    def _report(self, refs: list[RefObservation]) -> None:
        if not refs:
            return
        for result in self.hub.ingest_many(refs):
            if isinstance(result, BadInput):
                log.warning("bitrix24.ref_not_stored", portal=self.key, problem=str(result))

    @staticmethod
    def _raise_for(errors: Mapping[str, Bitrix24Error], what: str) -> None:
        if not errors:
            return
        codes = sorted({e.code or "error" for e in errors.values()})
        sample = "; ".join(f"{k}: {e.code} {e.description}".strip() for k, e in list(errors.items())[:3])
        message = f"Bitrix24 refused {len(errors)} {what} command(s) ({sample})"
        if RETRIABLE_CODES & set(codes):
            raise ExternalAPIError(message, retriable=True, retry_after=2.0)
        raise FatalDelivery(message)

    def _ref_id(self, refs: Iterable[Any], entities: Iterable[str]) -> int | None:
        wanted = set(entities)
        for r in refs:
            if r.system == "bitrix24" and r.account == self.key and r.entity in wanted and str(r.id).isdigit():
                return int(r.id)
        return None

    # --- clients ------------------------------------------------------------------------------------------
    def ensure_clients(self, views: Sequence[ClientView]) -> dict[int, tuple[str, int]]:
        """Make sure every client exists in the portal with the hub's name, phones and emails (added, never wiped);
        return client id → (``contact`` or ``company``, Bitrix24 id)."""
        self.created = set()
        by_id = {v.id: v for v in views}
        to_get: dict[int, tuple[str, int]] = {}
        to_search: list[ClientView] = []
        for view in views:
            entity = entity_of(view)
            linked = self._ref_id(view.refs, [entity])
            if linked is None:
                to_search.append(view)
            else:
                to_get[view.id] = (entity, linked)
        located: dict[int, tuple[str, int]] = {}
        current: dict[int, dict[str, Any]] = {}
        found_refs: list[RefObservation] = []
        searched: set[int] = set()
        while to_get or to_search:
            local: dict[int, tuple[str, int]] = {}
            if len(to_search) >= BULK_NEW:
                local = self._search_snapshot(to_search)
                searched.update(v.id for v in to_search)
                to_search = []
            groups: list[dict[str, Command]] = [
                {f"g{cid}": (f"{METHOD[e]}.get", {"id": eid})} for cid, (e, eid) in to_get.items()
            ]
            groups += [self._search_commands(v) for v in to_search if v.id not in searched]
            results, _errors = self._run([g for g in groups if g]) if any(groups) else ({}, {})
            next_get: dict[int, tuple[str, int]] = dict(local)
            next_search: list[ClientView] = []
            for cid, at in to_get.items():
                record = results.get(f"g{cid}")
                if isinstance(record, dict) and record:
                    located[cid], current[cid] = at, record
                    if self._ref_id(by_id[cid].refs, [at[0]]) != at[1]:
                        found_refs.append(self._client_ref(cid, at))
                elif cid not in searched:
                    log.warning("bitrix24.linked_record_missing", portal=self.key, client_id=cid, at=at)
                    next_search.append(by_id[cid])
            for view in to_search:
                searched.add(view.id)
                entity = entity_of(view)
                hit = _first_id(results.get(f"p{view.id}"), entity) or _first_id(results.get(f"e{view.id}"), entity)
                if hit is not None and (entity, hit) != to_get.get(view.id):
                    next_get[view.id] = (entity, hit)
            to_get, to_search = next_get, next_search
        self._report(found_refs)  # before writing: the write's own event must find the link
        commands: list[dict[str, Command]] = []
        sent: dict[str, Written] = {}
        for view in views:
            entity = entity_of(view)
            build = company_fields if entity == "company" else contact_fields
            if view.id in located:
                fields = build(view, current[view.id], region=self.region)
                if fields:
                    # Not in the ledger: the record may hold what the hub lacks, which its read-back must bring.
                    at = located[view.id]
                    commands.append({f"u{view.id}": (f"{METHOD[entity]}.update", {"id": at[1], "fields": fields})})
            else:
                fields = build(view, region=self.region)
                commands.append({f"a{view.id}": (f"{METHOD[entity]}.add", {"fields": fields})})
                sent[f"a{view.id}"] = Written(entity, "", record_values(entity, fields, self.region))
        results, errors = self._run(commands) if commands else ({}, {})
        # Remember what was written before anything else: the portal's event for it may already be on its way.
        self.portal.echoes.wrote(replace(w, id=str(results[k])) for k, w in sent.items() if results.get(k))
        made: list[RefObservation] = []
        for view in views:
            new_id = results.get(f"a{view.id}")
            if view.id not in located and new_id:
                at = (entity_of(view), int(new_id))
                located[view.id] = at
                self.created.add(view.id)
                made.append(self._client_ref(view.id, at))
                if self._snapshot is not None:
                    self._snapshot.add(at[0], at[1], _point_keys(view.phones, view.emails, self.region))
        self._report(made)
        self._raise_for(errors, "client")
        return located

    def _client_ref(self, client_id: int, at: tuple[str, int]) -> RefObservation:
        return RefObservation(source=source_ref(self.key, at[0], at[1]), target="client", target_id=client_id)

    def _search_commands(self, view: ClientView) -> dict[str, Command]:
        entity = entity_of(view).upper()
        group: dict[str, Command] = {}
        if view.phones:
            params = {"type": "PHONE", "values": view.phones[:20], "entity_type": entity}
            group[f"p{view.id}"] = ("crm.duplicate.findbycomm", params)
        if view.emails:
            params = {"type": "EMAIL", "values": view.emails[:20], "entity_type": entity}
            group[f"e{view.id}"] = ("crm.duplicate.findbycomm", params)
        return group

    def _search_snapshot(self, views: Sequence[ClientView]) -> dict[int, tuple[str, int]]:
        snapshot = self._fresh_snapshot()
        found: dict[int, tuple[str, int]] = {}
        for view in views:
            entity = entity_of(view)
            for key in _point_keys(view.phones, view.emails, self.region):
                hit = snapshot.by_point.get((entity, key))
                if hit is not None:
                    found[view.id] = (entity, hit)
                    break
        return found

    def _fresh_snapshot(self) -> _Snapshot:
        """Read the portal's phones and emails in full (2,500 records a request), then only what changed since."""
        with self._lock:
            now = time.monotonic()
            snapshot = self._snapshot
            started = datetime.now(UTC)
            if snapshot is None or now - snapshot.taken > SNAPSHOT_TTL:
                snapshot = _Snapshot(taken=now, refreshed=now, since=started)
                for entity, method in METHOD.items():
                    for record in self.client.list_all(f"{method}.list", {"select": ["ID", "PHONE", "EMAIL"]}):
                        self._index(snapshot, entity, record)
                self._snapshot = snapshot
            elif now - snapshot.refreshed > SNAPSHOT_REFRESH:
                since = (snapshot.since - SNAPSHOT_OVERLAP).isoformat(timespec="seconds")
                params = {"select": ["ID", "PHONE", "EMAIL"], "filter": {">=DATE_MODIFY": since}}
                commands = {entity: (f"{method}.list", {**params, "start": 0}) for entity, method in METHOD.items()}
                answer = self.client.batch_raw(commands)
                for entity, method in METHOD.items():
                    rows = answer.results.get(entity) or []
                    if len(rows) >= PAGE_SIZE:  # more changed than one page holds: read them all
                        rows = list(self.client.list_all(f"{method}.list", params))
                    for record in rows:
                        self._index(snapshot, entity, record)
                snapshot.refreshed, snapshot.since = now, started
            return snapshot

    def _index(self, snapshot: _Snapshot, entity: str, record: Mapping[str, Any]) -> None:
        keys = _point_keys(multifield_values(record.get("PHONE")), multifield_values(record.get("EMAIL")), self.region)
        snapshot.add(entity, int(record["ID"]), keys)

    # --- timeline items -----------------------------------------------------------------------------------
    def write_items(self, pairs: Sequence[tuple[ItemView, ClientView]], located: Mapping[int, tuple[str, int]]) -> None:
        """Write interactions, deals and tasks whose clients are ``located`` in the portal."""
        todo: list[tuple[ItemView, ClientView, str, int | None]] = []
        reads: dict[str, Command] = {}
        for item, view in pairs:
            if view.id not in located:
                continue
            entity, owner_id = located[view.id]
            owner = f"{entity}{owner_id}"
            fresh = view.id in self.created  # created just now: nothing of the hub's can be there yet
            if item.kind == "interaction":
                if self._ref_id(item.refs, ["activity", "timeline_comment"]) is not None:
                    continue  # written once; Bitrix24 keeps its own edits
                how = self._interaction_route(item, view)
                todo.append((item, view, how, None))
                if not fresh:
                    reads.update(self._owner_reads(how, entity, owner_id, owner))
            elif item.kind == "deal":
                linked = self._ref_id(item.refs, ["deal"])
                todo.append((item, view, "deal", linked))
                if linked is not None:
                    reads[f"d{item.id}"] = ("crm.deal.get", {"id": linked})
                elif not fresh:
                    flt = {"ORIGINATOR_ID": "crm-hub", "ORIGIN_ID": str(item.id)}
                    reads[f"o{item.id}"] = (
                        "crm.deal.list",
                        {"filter": flt, "select": ["ID", "ORIGINATOR_ID", "ORIGIN_ID"]},
                    )
            elif item.kind == "task":
                linked = self._ref_id(item.refs, ["activity"])
                todo.append((item, view, "task", linked))
                if linked is None and not fresh:
                    reads.update(self._owner_reads("activity", entity, owner_id, owner))
        if not todo:
            return
        results, errors = self._run([{k: v} for k, v in reads.items()]) if reads else ({}, {})
        self._raise_for({k: e for k, e in errors.items() if not k.startswith("d")}, "read")
        refs: list[RefObservation] = []
        groups: list[dict[str, Command]] = []
        for item, view, how, linked in todo:
            entity, owner_id = located[view.id]
            existing = None
            if how == "deal" and linked is None:
                existing = _first_row_id(results.get(f"o{item.id}"))
            elif how != "deal" and linked is None:
                owner = f"{entity}{owner_id}"
                existing = self._existing(item, how, results.get(f"a{owner}"), results.get(f"c{owner}"))
            if existing is not None:
                refs.append(self._item_ref(item, how, existing))
                continue
            group = self._item_commands(item, view, how, linked, entity, owner_id, results.get(f"d{item.id}"))
            if group:
                groups.append(group)
        self._report(refs)
        results, errors = self._run(groups) if groups else ({}, {})
        made: list[RefObservation] = []
        for item, _view, how, linked in todo:
            new_id = self._created_id(item, how, results)
            if new_id is not None and linked is None:
                made.append(self._item_ref(item, how, new_id))
        self._report(made)
        self._raise_for(errors, "timeline")

    def _interaction_route(self, item: ItemView, view: ClientView) -> str:
        channel = item.channel or "note"
        if channel == "call" and self._phone(item, view):
            return "externalcall" if self.portal.uses_oauth else "activity"
        if channel == "email" and self._email(item, view):
            return "activity"
        if channel == "meeting" and (self._phone(item, view) or self._email(item, view)):
            return "activity"
        return "comment"

    @staticmethod
    def _phone(item: ItemView, view: ClientView) -> str | None:
        phone = item.fields.get("phone")
        return str(phone) if phone else (view.phones[0] if view.phones else None)

    @staticmethod
    def _email(item: ItemView, view: ClientView) -> str | None:
        email = item.fields.get("email")
        return str(email) if email else (view.emails[0] if view.emails else None)

    @staticmethod
    def _owner_reads(how: str, entity: str, owner_id: int, owner: str) -> dict[str, Command]:
        """What the owner already holds, to find something an earlier attempt wrote before its id was stored."""
        if how == "comment":
            flt = {"ENTITY_TYPE": entity, "ENTITY_ID": owner_id}
            return {f"c{owner}": ("crm.timeline.comment.list", {"filter": flt, "order": {"ID": "DESC"}})}
        flt = {"OWNER_TYPE_ID": OWNER_TYPE_IDS[entity], "OWNER_ID": owner_id}
        params = {"filter": flt, "select": OWNER_READ, "order": {"ID": "DESC"}}
        return {f"a{owner}": ("crm.activity.list", params)}

    @staticmethod
    def _existing(item: ItemView, how: str, activities: Any, comments: Any) -> int | None:
        if how == "comment":
            for comment in comments if isinstance(comments, list) else []:
                if comment_matches(item, comment):
                    return int(comment["ID"])
            return None
        for activity in activities if isinstance(activities, list) else []:
            if hub_origin(activity) == item.id or (how == "externalcall" and call_matches(item, activity)):
                return int(activity["ID"])
        return None

    def _item_commands(
        self,
        item: ItemView,
        view: ClientView,
        how: str,
        linked: int | None,
        entity: str,
        owner_id: int,
        current: Any,
    ) -> dict[str, Command]:
        owner_type: Any = entity
        responsible = self.settings.responsible_id
        if how == "deal":
            if linked is None:
                contact_id, company_id = (owner_id, None) if entity == "contact" else (None, owner_id)
                fields = deal_fields(item, stage_map=self.stage_map, contact_id=contact_id, company_id=company_id)
                return {f"n{item.id}": ("crm.deal.add", {"fields": fields})}
            if not isinstance(current, dict) or not current:
                log.warning("bitrix24.linked_deal_missing", portal=self.key, item=item.id, deal=linked)
                return {}
            fields = deal_fields(item, stage_map=self.stage_map, current=current)
            return {f"u{item.id}": ("crm.deal.update", {"id": linked, "fields": fields})} if fields else {}
        if how == "task":
            fields = task_fields(item, owner_type=owner_type, owner_id=owner_id, responsible_id=responsible)
            if linked is None:
                return {f"n{item.id}": ("crm.activity.add", {"fields": fields})}
            keep = {k: fields[k] for k in ("SUBJECT", "DEADLINE", "END_TIME", "COMPLETED")}
            return {f"u{item.id}": ("crm.activity.update", {"id": linked, "fields": keep})}
        if how == "externalcall":
            phone = self._phone(item, view) or ""
            register, finish = externalcall_params(
                item,
                user_id=responsible,
                phone=phone,
                crm_entity_type="COMPANY" if entity == "company" else "CONTACT",
                crm_entity_id=owner_id,
            )
            finish["CALL_ID"] = f"$result[r{item.id}][CALL_ID]"
            return {
                f"r{item.id}": ("telephony.externalcall.register", register),
                f"f{item.id}": ("telephony.externalcall.finish", finish),
            }
        if how == "activity":
            point = (self._email(item, view) if item.channel == "email" else self._phone(item, view)) or (
                self._email(item, view) or ""
            )
            fields = activity_fields(
                item, owner_type=owner_type, owner_id=owner_id, communication=point, responsible_id=responsible
            )
            return {f"n{item.id}": ("crm.activity.add", {"fields": fields})}
        try:
            fields = comment_fields(item, entity_type=owner_type, entity_id=owner_id)
        except BadInput as exc:
            log.info("bitrix24.nothing_to_write", portal=self.key, item=item.id, detail=str(exc))
            return {}
        return {f"n{item.id}": ("crm.timeline.comment.add", {"fields": fields})}

    @staticmethod
    def _created_id(item: ItemView, how: str, results: Mapping[str, Any]) -> int | None:
        if how == "externalcall":
            finished = results.get(f"f{item.id}")
            activity = finished.get("CRM_ACTIVITY_ID") if isinstance(finished, dict) else None
            return int(activity) if activity else None
        made = results.get(f"n{item.id}")
        return int(made) if made and str(made).isdigit() else None

    def _item_ref(self, item: ItemView, how: str, entity_id: int) -> RefObservation:
        entity = {"deal": "deal", "comment": "timeline_comment"}.get(how, "activity")
        return RefObservation(source=source_ref(self.key, entity, entity_id), target="item", target_id=item.id)


def _first_row_id(rows: Any) -> int | None:
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        return int(rows[0]["ID"])
    return None


class Bitrix24Sink(Sink):
    """Delivers the hub's events to one portal (``bitrix24:<portal>``)."""

    def __init__(self, portal: Portal) -> None:
        self.writer = Writer(portal)
        self.hub = portal.hub
        self.name = f"bitrix24:{portal.key}"
        self.system = "bitrix24"
        self.account = portal.key
        self.max_batch = MAX_BATCH

    def deliver(self, events: Sequence[Event]) -> None:
        views: dict[int, ClientView] = {}
        for event in events:
            view = self._live_client(event.client_id)
            if view is not None:
                views[view.id] = view
        if not views:
            return
        located = self.writer.ensure_clients(list(views.values()))
        pairs: list[tuple[ItemView, ClientView]] = []
        seen: set[int] = set()
        for event in events:
            if event.item is None or event.item.id in seen:
                continue
            seen.add(event.item.id)
            view = self._live_client(event.client_id)
            try:
                item = self.hub.get_item(event.item.id)  # as it is now, with the refs stored since the event
            except NotFound:
                continue
            if view is not None:
                pairs.append((item, view))
        if pairs:
            self.writer.write_items(pairs, located)

    def _live_client(self, client_id: int) -> ClientView | None:
        try:
            view: ClientView = self.hub.get_client(client_id)
            while view.merged_into is not None:
                view = self.hub.get_client(view.merged_into)
        except NotFound:
            return None
        return view
