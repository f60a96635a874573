"""amoCRM → hub: webhook hints re-read through the API, periodic reconciliation by ``updated_at`` cursors, and the
bulk backfill. Records the hub wrote itself (echoes) are recognised and change nothing."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from hub.core.errors import BadInput
from hub.core.events import ClientKey, ClientView, ItemView, Observation, RefObservation, SourceRef

from .connection import Account
from .echo import counterpart_matches
from .mapping import (
    client_observation,
    deal_observation,
    interaction_observation,
    lead_client_key,
    ref,
    task_observation,
)

log = structlog.get_logger("crm_hub_plugins.amocrm")

INBOX_KIND = "amocrm.hint"
CLIENT_ENTITIES = {"contacts": "contact", "companies": "company"}
NOTE_PARENTS = ("contacts", "companies", "leads")
RECONCILED = ("companies", "contacts", "leads", "tasks", "notes")
OVERLAP_S = 60  # amoCRM's updated_at has a one-second grain and lists are not snapshots: re-read a margin
TIMELINE_WINDOW = 500


@dataclass
class Summary:
    """What a backfill or a reconciliation did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deals: int = 0
    notes: int = 0
    tasks: int = 0
    rejected: int = 0
    requests: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "clients created": self.created,
            "clients updated": self.updated,
            "clients unchanged": self.unchanged,
            "deals": self.deals,
            "notes": self.notes,
            "tasks": self.tasks,
            "rejected": self.rejected,
            "API requests": self.requests,
        }


class Inbound:
    """Reads one account's entities and ingests them."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.hub = account.hub
        self.key = account.key
        self.client = account.client

    # --- webhook hints ------------------------------------------------------------------------------------
    def handle_hint(self, hint: dict[str, Any]) -> None:
        """The inbox handler: re-read the entity the hint names and ingest what amoCRM really holds."""
        entity, entity_id, action = hint["entity"], str(hint["id"]), hint.get("action")
        if action == "delete":
            log.info("amocrm.deleted_upstream", account=self.key, entity=entity, id=entity_id)
            return
        if entity in ("contact", "company"):
            plural = "contacts" if entity == "contact" else "companies"
            record = self.account.call(self.client.get_entity, plural, entity_id)
            if record is None:
                log.info("amocrm.gone_before_read", account=self.key, entity=entity, id=entity_id)
                return
            self._ingest(client_observation(record, account=self.key, company=entity == "company"))
        elif entity == "lead":
            lead = self.account.call(self.client.get_entity, "leads", entity_id, with_=("contacts",))
            if lead is None:
                log.info("amocrm.gone_before_read", account=self.key, entity=entity, id=entity_id)
                return
            self.apply_lead(lead)
        elif entity == "note":
            parent = hint.get("parent_entity") or "contacts"
            if parent not in NOTE_PARENTS:
                return
            note = self.account.call(self.client.get_entity, f"{parent}/notes", entity_id)
            if note is None:
                log.info("amocrm.gone_before_read", account=self.key, entity=entity, id=entity_id)
                return
            self.apply_note(note)
        elif entity == "task":
            task = self.account.call(self.client.get_entity, "tasks", entity_id)
            if task is None:
                log.info("amocrm.gone_before_read", account=self.key, entity=entity, id=entity_id)
                return
            self.apply_task(task)

    # --- one entity at a time (webhooks, reconciliation) --------------------------------------------------
    def apply_lead(self, lead: dict[str, Any]) -> str:
        client = lead_client_key(lead, account=self.key)
        if client is None:
            return "skipped"
        client_id = self._client_id(client)
        obs = deal_observation(lead, account=self.key, pipelines=self.account.pipelines())
        if obs is None or client_id is None:
            return "skipped"
        return self._apply_item(obs, client_id, "deal", lead)

    def apply_note(self, note: dict[str, Any]) -> str:
        client = self._parent_key(str(note.get("entity_type") or "contacts"), note.get("entity_id"))
        client_id = self._client_id(client) if client else None
        if client is None or client_id is None:
            return "skipped"
        obs = interaction_observation(note, account=self.key, client=client)
        if obs is None:
            return "skipped"
        return self._apply_item(obs, client_id, "note", note)

    def apply_task(self, task: dict[str, Any]) -> str:
        client = self._parent_key(str(task.get("entity_type") or ""), task.get("entity_id"))
        client_id = self._client_id(client) if client else None
        if client is None or client_id is None:
            return "skipped"
        obs = task_observation(task, account=self.key, client=client)
        return self._apply_item(obs, client_id, "task", task)

    def _apply_item(self, obs: Any, client_id: int, entity: str, record: dict[str, Any]) -> str:
        """Ingest an item unless it only reflects something the hub wrote to amoCRM (then link it, emit nothing)."""
        mine = obs.source
        kind = {"deal": "deal", "task": "task", "note": "interaction"}[entity]
        items = self._timeline(client_id, kind)
        client = self.hub.get_client(client_id)
        settings = self.account.settings
        linked = next((i for i in items if any(_same_ref(r, mine) for r in i.refs)), None)
        if linked is not None:
            if _same_ref(linked.source, mine):
                return self._ingest(obs)  # amoCRM's own record changed
            if entity == "note" or counterpart_matches(entity, linked, record, client, settings):
                return "echo"  # what the hub wrote, read back
            # A person changed what the hub wrote, or this read predates the hub's newest write: the shared fields
            # go through the core's newest-wins rule; amoCRM's own extras (ids) are not news about this item.
            return self._ingest(obs.model_copy(update={"fields": {}}))
        for item in items:
            if not _has_ref_here(item, self.key) and counterpart_matches(entity, item, record, client, settings):
                # The sink created this and has not stored its id yet: link it now, ingest nothing.
                self.hub.ingest(RefObservation(source=mine, target="item", target_id=item.id))
                return "echo"
        return self._ingest(obs)

    def _timeline(self, client_id: int, kind: str) -> list[ItemView]:
        items: list[ItemView] = self.hub.timeline(client_id, limit=TIMELINE_WINDOW, kinds=[kind])
        return items

    def _ingest(self, obs: Any) -> str:
        try:
            applied = self.hub.ingest(obs, strict=False)
        except BadInput as exc:
            log.warning("amocrm.rejected", account=self.key, source=str(obs.source), problem=str(exc))
            return "rejected"
        return _outcome(applied)

    def _parent_key(self, entity_type: str, entity_id: Any) -> ClientKey | None:
        if not entity_id:
            return None
        if entity_type in CLIENT_ENTITIES:
            return _client_key(self.key, entity_type, entity_id)
        if entity_type == "leads":
            lead = self.account.call(self.client.get_entity, "leads", entity_id, with_=("contacts",))
            return lead_client_key(lead, account=self.key) if lead else None
        return None

    def _client_id(self, key: ClientKey) -> int | None:
        """The hub client behind an amoCRM contact/company; read and ingested first when the hub lacks it."""
        assert key.ref is not None
        found: list[ClientView] = self.hub.find_clients(ref=key.ref)
        if found:
            return found[0].id
        plural = "companies" if key.ref.entity == "company" else "contacts"
        record = self.account.call(self.client.get_entity, plural, key.ref.id)
        if record is None:
            return None
        try:
            applied = self.hub.ingest(
                client_observation(record, account=self.key, company=plural == "companies"), strict=False
            )
        except BadInput as exc:
            log.warning("amocrm.rejected", account=self.key, source=str(key.ref), problem=str(exc))
            return None
        return int(applied.client_id) if applied.client_id is not None else None

    # --- reconciliation -----------------------------------------------------------------------------------
    def poll(self) -> None:
        """The Poller's tick: reconcile and log what it found."""
        summary = self.reconcile()
        counts = {k.replace(" ", "_"): v for k, v in summary.as_dict().items()}
        log.info("amocrm.reconciled", account=self.key, **counts)

    def reconcile(self) -> Summary:
        """Read everything updated since each entity's cursor (minus an overlap), ingest it, then move the cursor.

        A cursor moves only after what it covers is stored: a crash re-reads, it never skips."""
        summary = Summary()
        before = self.client.requests_sent
        for entity in RECONCILED:
            cursor = self.hub.state.get(self.account.scope, f"cursor:{entity}")
            if cursor is None:
                # First run: history is the backfill's job; from now on nothing is missed.
                self.hub.state.put(self.account.scope, f"cursor:{entity}", int(time.time()) - OVERLAP_S)
                continue
            newest = int(cursor)
            params = {"filter[updated_at][from]": max(0, int(cursor) - OVERLAP_S)}
            paths = [f"/api/v4/{p}/notes" for p in NOTE_PARENTS] if entity == "notes" else [f"/api/v4/{entity}"]
            for path in paths:
                for page in self.account.call(self._pages, path, entity, params):
                    newest = max([newest, *(int(r.get("updated_at") or 0) for r in page)])
                    self._apply_page(entity, page, summary)
            self.hub.state.put(self.account.scope, f"cursor:{entity}", newest)
        summary.requests = self.client.requests_sent - before
        return summary

    def _pages(self, path: str, entity: str, params: dict[str, Any]) -> Iterable[list[dict[str, Any]]]:
        query = dict(params)
        if entity == "leads":
            query["with"] = "contacts"
        key = "notes" if entity == "notes" else entity
        for page in self.client.list_pages(path, query):
            yield list((page.get("_embedded") or {}).get(key) or [])

    def _apply_page(self, entity: str, page: list[dict[str, Any]], summary: Summary) -> None:
        if entity in CLIENT_ENTITIES:
            self._ingest_clients(page, entity == "companies", summary)
            return
        apply: Callable[[dict[str, Any]], str] = {
            "leads": self.apply_lead,
            "notes": self.apply_note,
            "tasks": self.apply_task,
        }[entity]
        counter = {"leads": "deals"}.get(entity, entity)
        for record in page:
            outcome = apply(record)
            if outcome == "rejected":
                summary.rejected += 1
            elif outcome not in ("skipped", "echo", "unchanged"):
                setattr(summary, counter, getattr(summary, counter) + 1)

    def _ingest_clients(self, page: list[dict[str, Any]], company: bool, summary: Summary) -> None:
        observations: list[Observation] = []
        for record in page:
            try:
                observations.append(client_observation(record, account=self.key, company=company))
            except BadInput as exc:
                summary.rejected += 1
                summary.problems.append(str(exc))
        for result in self.hub.ingest_many(observations, strict=False):
            if isinstance(result, BadInput):
                summary.rejected += 1
                summary.problems.append(str(result))
            else:
                outcome = _outcome(result)
                setattr(summary, outcome, getattr(summary, outcome) + 1)

    # --- backfill -------------------------------------------------------------------------------------------
    def backfill(
        self,
        *,
        since: datetime | None = None,
        entities: Iterable[str] = RECONCILED,
        progress: Callable[[str, int], None] | None = None,
    ) -> Summary:
        """Import everything (or everything updated since ``since``) in pages of 250, with ``ingest_many``."""
        summary = Summary()
        before = self.client.requests_sent
        started = int(time.time())
        params: dict[str, Any] = {}
        if since is not None:
            params["filter[updated_at][from]"] = int(since.replace(tzinfo=since.tzinfo or UTC).timestamp())
        wanted = [e for e in RECONCILED if e in set(entities)]
        lead_clients: dict[str, ClientKey] = {}
        for entity in wanted:
            paths = [f"/api/v4/{p}/notes" for p in NOTE_PARENTS] if entity == "notes" else [f"/api/v4/{entity}"]
            for path in paths:
                # Reading the next page (paced at the account's rate) overlaps storing this one.
                for page in prefetched(self.account.call(self._pages, path, entity, params)):
                    self._backfill_page(entity, page, summary, lead_clients)
                    if progress is not None:
                        progress(entity, len(page))
            if self.hub.state.get(self.account.scope, f"cursor:{entity}") is None:
                self.hub.state.put(self.account.scope, f"cursor:{entity}", started)
        summary.requests = self.client.requests_sent - before
        return summary

    def _backfill_page(
        self, entity: str, page: list[dict[str, Any]], summary: Summary, lead_clients: dict[str, ClientKey]
    ) -> None:
        if entity in CLIENT_ENTITIES:
            self._ingest_clients(page, entity == "companies", summary)
            return
        observations: list[Any] = []
        for record in page:
            try:
                obs = self._bulk_observation(entity, record, lead_clients)
            except BadInput as exc:
                summary.rejected += 1
                summary.problems.append(str(exc))
                continue
            if obs is not None:
                observations.append(obs)
        counter = {"leads": "deals"}.get(entity, entity)
        for result in self.hub.ingest_many(observations, strict=False):
            if isinstance(result, BadInput):
                summary.rejected += 1
                summary.problems.append(str(result))
            elif result.events:
                setattr(summary, counter, getattr(summary, counter) + 1)

    def _bulk_observation(self, entity: str, record: dict[str, Any], lead_clients: dict[str, ClientKey]) -> Any:
        if entity == "leads":
            main = lead_client_key(record, account=self.key)
            if main is not None:
                lead_clients[str(record["id"])] = main
            return deal_observation(record, account=self.key, pipelines=self.account.pipelines())
        entity_type = str(record.get("entity_type") or "")
        entity_id = record.get("entity_id")
        if entity_type == "leads":
            client: ClientKey | None = lead_clients.get(str(entity_id))
        elif entity_type in CLIENT_ENTITIES and entity_id:
            client = _client_key(self.key, entity_type, entity_id)
        else:
            client = None
        if client is None:
            return None
        if entity == "notes":
            return interaction_observation(record, account=self.key, client=client)
        return task_observation(record, account=self.key, client=client)


def prefetched(pages: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Iterate ``pages`` in a background thread, up to ``depth`` ahead; its errors surface here."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        box.put(("page", page), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", None))
        except BaseException as exc:
            box.put(("error", exc))

    thread = threading.Thread(target=produce, name="amocrm-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


def _client_key(account: str, plural: str, entity_id: Any) -> ClientKey:
    if plural == "companies":
        return ClientKey(ref=ref(account, "company", entity_id), kind="company", create=False)
    return ClientKey(ref=ref(account, "contact", entity_id), kind="person", create=False)


def _outcome(applied: Any) -> str:
    if not applied.events:
        return "unchanged"
    first = applied.events[0]
    return "created" if first.type == "client.changed" and "created" in first.changed else "updated"


def _same_ref(a: Any, b: SourceRef) -> bool:
    return bool(a.system == b.system and a.account == b.account and a.entity == b.entity and str(a.id) == b.id)


def _has_ref_here(item: ItemView, account: str) -> bool:
    return any(r.system == "amocrm" and r.account == account for r in item.refs)
