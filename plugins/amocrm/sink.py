"""hub → amoCRM: the sink and the writer behind it (also used by ``hub amocrm push``).

Idempotent by construction: the hub's ref map first, then a search of amoCRM by phone and email (or for the
record the hub would write) before any create, then batched creates whose ids go back as RefObservations.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from hub.core.echo import Written
from hub.core.errors import BadInput, NotFound
from hub.core.events import ClientView, Event, ItemView, RefObservation
from hub.core.sinks import Sink

from .connection import Account
from .echo import lead_matches, note_matches, payload_values, task_matches
from .mapping import (
    LeadMapping,
    call_payload,
    client_entity,
    client_payload,
    email_set,
    lead_payload,
    note_payload,
    phone_set,
    ref,
    task_payload,
)

log = structlog.get_logger("crm_hub_plugins.amocrm")

SINGULAR = {"contacts": "contact", "companies": "company"}
BULK_NEW = 10  # this many unknown clients in one batch: search a snapshot of the account, not one by one
SNAPSHOT_TTL = 600.0
ID_CHUNK = 250


@dataclass
class _Snapshot:
    """The account's contacts (or companies) by normalised phone and email, for bulk runs."""

    taken: float
    by_point: dict[str, int] = field(default_factory=dict)

    def add(self, entity_id: int, phones: Iterable[str], emails: Iterable[str], region: str) -> None:
        for key in phone_set(list(phones), region) | email_set(list(emails)):
            self.by_point.setdefault(key, entity_id)


def _points(record: dict[str, Any], code: str) -> list[str]:
    return [
        str(v.get("value"))
        for cf in record.get("custom_fields_values") or []
        if isinstance(cf, dict) and cf.get("field_code") == code
        for v in cf.get("values") or []
        if isinstance(v, dict) and v.get("value")
    ]


class Writer:
    """Writes hub clients and timeline items to one amoCRM account, in batches."""

    def __init__(self, account: Account) -> None:
        self.amo = account
        self.hub = account.hub
        self.key = account.key
        self.client = account.client
        self.region = self.hub.settings.default_region
        self.mapping = LeadMapping(dict(account.settings.pipeline_map), dict(account.settings.status_map))
        self._snapshots: dict[str, _Snapshot] = {}

    # --- clients ------------------------------------------------------------------------------------------
    def _ref_id(self, refs: Iterable[Any], entity: str) -> int | None:
        for r in refs:
            if r.system == "amocrm" and r.account == self.key and r.entity == entity and str(r.id).isdigit():
                return int(r.id)
        return None

    def ensure_clients(self, views: Sequence[ClientView]) -> dict[int, tuple[str, int]]:
        """Make sure every client exists in amoCRM with the hub's name, phones and emails (merged, never wiped);
        return client id → (``contacts`` or ``companies``, amoCRM id)."""
        located: dict[int, tuple[str, int]] = {}
        unknown: list[ClientView] = []
        for view in views:
            plural = client_entity(view)
            entity_id = self._ref_id(view.refs, SINGULAR[plural])
            if entity_id is None:
                unknown.append(view)
            else:
                located[view.id] = (plural, entity_id)
        existing = self._fetch({loc for loc in located.values()})
        for view in [v for v in views if v.id in located and located[v.id] not in existing]:
            log.warning("amocrm.linked_record_missing", account=self.key, client_id=view.id, at=located.pop(view.id))
            unknown.append(view)
        refs: list[RefObservation] = []
        found = self._search(unknown)
        if found:
            existing.update(self._fetch(set(found.values())))
        creates: dict[str, list[tuple[ClientView, dict[str, Any]]]] = defaultdict(list)
        for view in unknown:
            at = found.get(view.id)
            if at is not None and at in existing:
                located[view.id] = at
                refs.append(self._ref(view, at))
            else:
                payload = client_payload(view, region=self.region)  # no invented name: it would come back as news
                payload["request_id"] = str(view.id)
                creates[client_entity(view)].append((view, payload))
        updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for view in views:
            at = located.get(view.id)
            if at is None or at not in existing:
                continue
            payload = client_payload(view, existing=existing[at], region=self.region)
            if len(payload) > 1:
                updates[at[0]].append(payload)
        for plural, items in updates.items():
            self.amo.call(self.client.update, f"/api/v4/{plural}", items)
        for plural, pairs in creates.items():
            made = self.amo.call(self.client.add, f"/api/v4/{plural}", [p for _, p in pairs])
            # Remember what was written: the webhooks amoCRM sends for these are then known before any re-read.
            self.amo.echoes.wrote(
                Written(plural, str(result["id"]), payload_values(payload, self.region))
                for (_view, payload), result in zip(pairs, made, strict=True)
            )
            for (view, _payload), result in zip(pairs, made, strict=True):
                at = (plural, int(result["id"]))
                located[view.id] = at
                refs.append(self._ref(view, at))
                snapshot = self._snapshots.get(plural)
                if snapshot is not None:
                    snapshot.add(at[1], view.phones, view.emails, self.region)
        self._report(refs)
        return located

    def _ref(self, view: ClientView, at: tuple[str, int]) -> RefObservation:
        return RefObservation(source=ref(self.key, SINGULAR[at[0]], at[1]), target="client", target_id=view.id)

    def _fetch(self, where: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """The amoCRM records at ``where``, 250 ids a request."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        by_plural: dict[str, list[int]] = defaultdict(list)
        for plural, entity_id in where:
            by_plural[plural].append(entity_id)
        for plural, ids in by_plural.items():
            ids = sorted(set(ids))
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                for record in self.amo.call(
                    lambda p=plural, c=chunk: list(self.client.list_all(f"/api/v4/{p}", {"filter[id][]": c}))
                ):
                    out[(plural, int(record["id"]))] = record
        return out

    def _search(self, views: Sequence[ClientView]) -> dict[int, tuple[str, int]]:
        """Clients the hub has not linked yet but amoCRM already holds, found by phone, then email."""
        found: dict[int, tuple[str, int]] = {}
        bulk = len(views) >= BULK_NEW
        for view in views:
            plural = client_entity(view)
            if bulk:
                snapshot = self._snapshot(plural)
                for key in [*phone_set(view.phones, self.region), *email_set(view.emails)]:
                    if key in snapshot.by_point:
                        found[view.id] = (plural, snapshot.by_point[key])
                        break
                continue
            for query, code in [*((p, "PHONE") for p in view.phones), *((e, "EMAIL") for e in view.emails)]:
                match = self._search_one(plural, query, code)
                if match is not None:
                    found[view.id] = (plural, match)
                    break
        return found

    def _search_one(self, plural: str, query: str, code: str) -> int | None:
        wanted = phone_set([query], self.region) if code == "PHONE" else email_set([query])
        digits = "".join(c for c in query if c.isdigit())
        text = digits[-10:] if code == "PHONE" and len(digits) >= 10 else query
        for record in self.amo.call(self.client.search, plural, text):
            have = (
                phone_set(_points(record, "PHONE"), self.region)
                if code == "PHONE"
                else email_set(_points(record, "EMAIL"))
            )
            if wanted & have:
                return int(record["id"])
        return None

    def _snapshot(self, plural: str) -> _Snapshot:
        snapshot = self._snapshots.get(plural)
        if snapshot is None or time.monotonic() - snapshot.taken > SNAPSHOT_TTL:
            snapshot = _Snapshot(time.monotonic())
            for record in self.amo.call(lambda: list(self.client.list_all(f"/api/v4/{plural}"))):
                snapshot.add(int(record["id"]), _points(record, "PHONE"), _points(record, "EMAIL"), self.region)
            self._snapshots[plural] = snapshot
        return snapshot

    def _report(self, refs: list[RefObservation]) -> None:
        if not refs:
            return
        for result in self.hub.ingest_many(refs):
            if isinstance(result, BadInput):
                log.warning("amocrm.ref_not_stored", account=self.key, problem=str(result))

    # --- timeline items -----------------------------------------------------------------------------------
    def write_items(self, items: Sequence[tuple[ItemView, ClientView]], located: dict[int, tuple[str, int]]) -> None:
        """Write interactions, deals and tasks whose clients are ``located`` in amoCRM."""
        calls: list[tuple[ItemView, ClientView]] = []
        notes: list[tuple[ItemView, ClientView]] = []
        deals: list[tuple[ItemView, ClientView, int | None]] = []
        tasks: list[tuple[ItemView, ClientView, int | None]] = []
        for item, view in items:
            if view.id not in located:
                continue
            linked = self._ref_id(item.refs, {"deal": "lead", "task": "task"}.get(item.kind, "note"))
            if item.kind == "interaction":
                if linked is None:  # notes are not edited once written
                    (calls if item.channel == "call" else notes).append((item, view))
            elif item.kind == "deal":
                deals.append((item, view, linked))
            elif item.kind == "task":
                tasks.append((item, view, linked))
        refs: list[RefObservation] = []
        if calls or notes:
            refs += self._write_interactions(calls, notes, located)
        if deals:
            refs += self._write_deals(deals, located)
        if tasks:
            refs += self._write_tasks(tasks, located)
        self._report(refs)

    def _existing_notes(self, pairs: list[tuple[ItemView, ClientView]], located: dict[int, tuple[str, int]]) -> Any:
        by_plural: dict[str, set[int]] = defaultdict(set)
        for _item, view in pairs:
            plural, entity_id = located[view.id]
            by_plural[plural].add(entity_id)
        notes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for plural, ids in by_plural.items():
            params = {"filter[entity_id][]": sorted(ids)}
            for note in self.amo.call(lambda p=plural, q=params: list(self.client.list_all(f"/api/v4/{p}/notes", q))):
                notes[int(note.get("entity_id") or 0)].append(note)
        return notes

    def _write_interactions(
        self,
        calls: list[tuple[ItemView, ClientView]],
        notes: list[tuple[ItemView, ClientView]],
        located: dict[int, tuple[str, int]],
    ) -> list[RefObservation]:
        refs: list[RefObservation] = []
        existing = self._existing_notes(calls + notes, located)
        pending_calls, pending_notes = [], []
        for item, view in calls + notes:
            entity_id = located[view.id][1]
            match = next((n for n in existing.get(entity_id, []) if note_matches(item, n, view)), None)
            if match is not None:
                refs.append(RefObservation(source=ref(self.key, "note", match["id"]), target="item", target_id=item.id))
            elif item.channel == "call" and (item.fields.get("phone") or view.phones):
                pending_calls.append((item, view))
            else:
                pending_notes.append((item, view))
        by_request: dict[str, tuple[ItemView, ClientView]] = {str(i.id): (i, v) for i, v in pending_calls}
        payloads = [call_payload(i, v) for i, v in pending_calls]
        size = self.client.write_batch
        for start in range(0, len(payloads), size):
            chunk = payloads[start : start + size]
            body = self.amo.call(self.client.request, "POST", "/api/v4/calls", json_body=chunk)
            for made in ((body or {}).get("_embedded") or {}).get("calls") or []:
                item, _view = by_request[str(made["request_id"])]
                refs.append(RefObservation(source=ref(self.key, "note", made["id"]), target="item", target_id=item.id))
            for dropped in (body or {}).get("errors") or []:
                # amoCRM attached the call to nobody: write it as a call note on the contact instead.
                log.info("amocrm.call_unmatched", account=self.key, item=dropped.get("request_id"))
                pending_notes.append(by_request[str(dropped.get("request_id"))])
        by_plural: dict[str, list[tuple[ItemView, dict[str, Any]]]] = defaultdict(list)
        for item, view in pending_notes:
            plural, entity_id = located[view.id]
            by_plural[plural].append((item, note_payload(item, view, entity_id=entity_id)))
        for plural, pairs in by_plural.items():
            made_notes = self.amo.call(self.client.add, f"/api/v4/{plural}/notes", [p for _, p in pairs])
            for (item, _payload), made in zip(pairs, made_notes, strict=True):
                refs.append(RefObservation(source=ref(self.key, "note", made["id"]), target="item", target_id=item.id))
        return refs

    def _write_deals(
        self, deals: list[tuple[ItemView, ClientView, int | None]], located: dict[int, tuple[str, int]]
    ) -> list[RefObservation]:
        refs: list[RefObservation] = []
        updates = []
        unlinked = [(i, v) for i, v, lead_id in deals if lead_id is None]
        for item, _view, lead_id in deals:
            if lead_id is not None:
                payload = lead_payload(item, contact_id=None, mapping=self.mapping, lead_id=lead_id)
                if len(payload) > 1:
                    updates.append(payload)
        candidates = self._leads_of([located[v.id] for _, v in unlinked])
        creates = []
        for item, view in unlinked:
            plural, entity_id = located[view.id]
            match = next(
                (
                    lead
                    for lead in candidates.get((plural, entity_id), [])
                    if lead_matches(item, lead, self.amo.settings)
                ),
                None,
            )
            if match is not None:
                refs.append(RefObservation(source=ref(self.key, "lead", match["id"]), target="item", target_id=item.id))
                continue
            payload = lead_payload(item, contact_id=entity_id if plural == "contacts" else None, mapping=self.mapping)
            if plural == "companies":
                payload["_embedded"] = {"companies": [{"id": entity_id}]}
            payload.setdefault("name", f"Сделка {item.id}")
            payload["request_id"] = str(item.id)
            creates.append((item, payload))
        if updates:
            self.amo.call(self.client.update, "/api/v4/leads", updates)
        if creates:
            made = self.amo.call(self.client.add, "/api/v4/leads", [p for _, p in creates])
            for (item, _payload), lead in zip(creates, made, strict=True):
                refs.append(RefObservation(source=ref(self.key, "lead", lead["id"]), target="item", target_id=item.id))
        return refs

    def _leads_of(self, where: list[tuple[str, int]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """The leads already linked to these contacts/companies (two requests per 250 records)."""
        if not where:
            return {}
        owners = self._fetch_with_leads(set(where))
        lead_ids = sorted({lid for ids in owners.values() for lid in ids})
        leads: dict[int, dict[str, Any]] = {}
        for start in range(0, len(lead_ids), ID_CHUNK):
            chunk = lead_ids[start : start + ID_CHUNK]
            for lead in self.amo.call(lambda c=chunk: list(self.client.list_all("/api/v4/leads", {"filter[id][]": c}))):
                leads[int(lead["id"])] = lead
        return {owner: [leads[i] for i in ids if i in leads] for owner, ids in owners.items()}

    def _fetch_with_leads(self, where: set[tuple[str, int]]) -> dict[tuple[str, int], list[int]]:
        out: dict[tuple[str, int], list[int]] = {}
        for plural in {p for p, _ in where}:
            ids = sorted(i for p, i in where if p == plural)
            for start in range(0, len(ids), ID_CHUNK):
                params = {"filter[id][]": ids[start : start + ID_CHUNK], "with": "leads"}
                for record in self.amo.call(lambda p=plural, q=params: list(self.client.list_all(f"/api/v4/{p}", q))):
                    linked = ((record.get("_embedded") or {}).get("leads")) or []
                    out[(plural, int(record["id"]))] = [int(x["id"]) for x in linked if isinstance(x, dict)]
        return out

    def _write_tasks(
        self, tasks: list[tuple[ItemView, ClientView, int | None]], located: dict[int, tuple[str, int]]
    ) -> list[RefObservation]:
        refs: list[RefObservation] = []
        updates = []
        unlinked = []
        for item, view, task_id in tasks:
            plural, entity_id = located[view.id]
            if task_id is not None:
                payload = task_payload(item, entity_id=entity_id, entity_type=plural)
                payload = {k: v for k, v in payload.items() if k not in ("request_id", "entity_id", "entity_type")}
                updates.append({"id": task_id, **payload})
            else:
                unlinked.append((item, view, plural, entity_id))
        existing: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for plural in {p for _, _, p, _ in unlinked}:
            ids = sorted({e for _, _, p, e in unlinked if p == plural})
            params = {"filter[entity_type]": plural, "filter[entity_id][]": ids}
            for task in self.amo.call(lambda q=params: list(self.client.list_all("/api/v4/tasks", q))):
                existing[int(task.get("entity_id") or 0)].append(task)
        creates = []
        for item, _view, plural, entity_id in unlinked:
            match = next((t for t in existing.get(entity_id, []) if task_matches(item, t)), None)
            if match is not None:
                refs.append(RefObservation(source=ref(self.key, "task", match["id"]), target="item", target_id=item.id))
            else:
                creates.append((item, task_payload(item, entity_id=entity_id, entity_type=plural)))
        if updates:
            self.amo.call(self.client.update, "/api/v4/tasks", updates)
        if creates:
            made = self.amo.call(self.client.add, "/api/v4/tasks", [p for _, p in creates])
            for (item, _payload), task in zip(creates, made, strict=True):
                refs.append(RefObservation(source=ref(self.key, "task", task["id"]), target="item", target_id=item.id))
        return refs


class AmoCRMSink(Sink):
    """Delivers the hub's events to one amoCRM account (``amocrm:<account>``)."""

    def __init__(self, account: Account) -> None:
        self.writer = Writer(account)
        self.hub = account.hub
        self.name = f"amocrm:{account.key}"
        self.system = "amocrm"
        self.account = account.key
        setattr(self, "max_batch", account.settings.write_batch)  # noqa: B010 - per account, not per class

    def deliver(self, events: Sequence[Event]) -> None:
        views: dict[int, ClientView] = {}
        for event in events:
            view = self._live_client(event.client_id)
            if view is not None:
                views[view.id] = view
        if not views:
            return
        located = self.writer.ensure_clients(list(views.values()))
        items: list[tuple[ItemView, ClientView]] = []
        seen: set[int] = set()
        timelines: dict[tuple[int, str], dict[int, ItemView]] = {}
        for event in events:
            if event.item is None or event.item.id in seen:
                continue
            view = self._live_client(event.client_id)
            if view is None:
                continue
            seen.add(event.item.id)
            items.append((self._current_item(event.item, view.id, timelines), view))
        if items:
            self.writer.write_items(items, located)

    def _live_client(self, client_id: int) -> ClientView | None:
        try:
            view: ClientView = self.hub.get_client(client_id)
            while view.merged_into is not None:
                view = self.hub.get_client(view.merged_into)
        except NotFound:
            return None
        return view

    def _current_item(
        self, item: ItemView, client_id: int, cache: dict[tuple[int, str], dict[int, ItemView]]
    ) -> ItemView:
        """The item as the hub holds it now (refs included): an event's snapshot may predate the sink's own write."""
        key = (client_id, item.kind)
        if key not in cache:
            cache[key] = {i.id: i for i in self.hub.timeline(client_id, limit=500, kinds=[item.kind])}
        return cache[key].get(item.id, item)
