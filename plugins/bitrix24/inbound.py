"""Bitrix24 → hub: entities read after their events and applied one by one; records that only reflect what the hub
wrote (echoes) change nothing. Bulk reads (backfill, reconciliation) are in ``crm_hub_plugins.bitrix24.reconcile``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import structlog
from pydantic import ValidationError

from hub.core.errors import BadInput, FatalDelivery, NotFound
from hub.core.events import ClientKey, ClientObservation, ClientView, ItemView, RefObservation, SourceRef

from .client import MAX_BATCH, page_rows
from .connection import Portal
from .echo import call_matches, comment_matches, deal_matches, hub_origin, record_values, unlinked
from .mapping import (
    _same_text,
    activity_observation,
    client_echoes,
    comment_observation,
    company_observation,
    contact_observation,
    deal_echoes,
    deal_observation,
    source_ref,
)

log = structlog.get_logger("crm_hub_plugins.bitrix24")

# entity → (method prefix, list select, the field a reconciliation cursor follows)
READ: dict[str, tuple[str, list[str], str]] = {
    "company": ("crm.company", ["*", "UF_*", "PHONE", "EMAIL"], "DATE_MODIFY"),
    "contact": ("crm.contact", ["*", "UF_*", "PHONE", "EMAIL"], "DATE_MODIFY"),
    "deal": ("crm.deal", ["*", "UF_*"], "DATE_MODIFY"),
    "activity": ("crm.activity", ["*", "COMMUNICATIONS"], "LAST_UPDATED"),
    "timeline_comment": ("crm.timeline.comment", [], "CREATED"),
}
RECONCILED = ("company", "contact", "deal", "activity", "timeline_comment")
COMMENT_OWNERS = ("company", "contact")  # the elements whose timeline comments the hub reads
TIMELINE_WINDOW = 200


def _outcome(applied: Any) -> str:
    if not applied.events:
        return "unchanged"
    first = applied.events[0]
    created = first.item.version == 1 if first.item is not None else "created" in first.changed
    return "created" if created else "updated"


def _same_ref(a: Any, b: SourceRef) -> bool:
    return bool(a.system == b.system and a.account == b.account and a.entity == b.entity and str(a.id) == b.id)


def _aligned(obs: ClientObservation, view: ClientView) -> ClientObservation:
    """A contact the hub created from a display name holds it in NAME: read back, it is that name, not a first
    name, so that a change made beside it (a phone added) does not also rewrite the hub's name fields."""
    f = view.fields
    if (
        obs.first_name
        and not (obs.last_name or obs.middle_name)
        and not (f.get("first_name") or f.get("last_name"))
        and _same_text(obs.first_name, view.name)
    ):
        return obs.model_copy(update={"first_name": None, "name": view.name})
    return obs


class Inbound:
    """Reads one portal's entities and ingests them."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.hub = portal.hub
        self.key = portal.key
        self.client = portal.client
        self.region = portal.region
        self.stage_map = dict(portal.settings.stage_map)

    # --- events -------------------------------------------------------------------------------------------
    def handle_event(self, payload: Mapping[str, Any]) -> str:
        """The inbox handler: read the entity an event names (events carry only the ID) and ingest it."""
        entity, entity_id = str(payload["entity"]), str(payload["id"])
        record = self.read(entity, entity_id)
        if record is None:
            log.info(
                "bitrix24.gone_before_read",
                portal=self.key,
                entity=entity,
                id=entity_id,
                event_name=payload.get("event"),
                detail="deleted in Bitrix24 before the hub could read it; nothing stored",
            )
            return "gone"
        return self.apply(entity, record)

    def read(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """One entity as Bitrix24 holds it now; None when it no longer exists."""
        method, select, _stamp = READ[entity]
        if entity == "timeline_comment":
            try:
                found = self.client.call(f"{method}.get", {"id": entity_id})
            except FatalDelivery as exc:
                if exc.status in (400, 404):
                    return None
                raise
            return found if isinstance(found, dict) and found else None
        rows = self.client.call(f"{method}.list", {"filter": {"ID": entity_id}, "select": select})
        return rows[0] if isinstance(rows, list) and rows else None

    def apply(self, entity: str, record: dict[str, Any]) -> str:
        try:
            if entity in ("contact", "company"):
                return self.apply_client(entity, record)
            if entity == "deal":
                return self.apply_deal(record)
            if entity == "activity":
                return self.apply_activity(record)
            if entity == "timeline_comment":
                return self.apply_comment(record)
        except (BadInput, ValidationError) as exc:
            log.warning("bitrix24.rejected", portal=self.key, entity=entity, id=record.get("ID"), problem=str(exc))
            return "rejected"
        return "skipped"

    # --- one entity at a time -----------------------------------------------------------------------------
    def apply_client(self, entity: str, record: dict[str, Any]) -> str:
        if self.portal.echoes.is_echo(entity, str(record.get("ID")), record_values(entity, record, self.region)):
            return "echo"  # exactly what the sink last wrote there: no lookup, nothing ingested
        build = company_observation if entity == "company" else contact_observation
        obs = build(record, self.key, region=self.region)
        view = self._client_by_ref(obs.source)
        if view is None:
            hub_id = hub_origin(record)
            view = self._live_client(hub_id) if hub_id is not None else None
            if view is not None:  # the sink created it and has not stored the id yet
                self.hub.ingest(RefObservation(source=obs.source, target="client", target_id=view.id))
        if view is not None:
            if client_echoes(view, obs, region=self.region):
                return "echo"
            obs = _aligned(obs, view)
        return self._ingest(obs)

    def apply_deal(self, record: dict[str, Any]) -> str:
        obs = deal_observation(record, self.key, stage_map=self.stage_map)
        if obs.client.ref is None or self._client_id_for(obs.client) is None:
            log.info("bitrix24.deal_without_client", portal=self.key, id=record.get("ID"))
            return "skipped"
        item = self.hub.find_item(obs.source)
        if item is None:
            item = self._hub_item(record, obs.source)
        if item is not None and not _same_ref(item.source, obs.source):
            if deal_echoes(item, obs) or deal_matches(item, record, self.stage_map):
                return "echo"
            # A person changed the deal the hub wrote: the shared fields go through the core's newest-wins rule.
            obs = obs.model_copy(update={"fields": {}})
        return self._ingest(obs)

    def apply_activity(self, record: dict[str, Any]) -> str:
        if self._hub_item(record, source_ref(self.key, "activity", record["ID"])) is not None:
            return "echo"
        obs = activity_observation(record, self.key, region=self.region)
        if obs is None:
            return "skipped"  # to-dos and other provider activities are not interactions
        client_id = None
        if obs.client.ref is not None:
            client_id = self._client_id_for(obs.client)
            if client_id is None:
                return "skipped"
            obs = obs.model_copy(update={"client": ClientKey(client_id=client_id)})
        item = self.hub.find_item(obs.source)
        if item is not None:
            return self._ingest(obs) if _same_ref(item.source, obs.source) else "echo"
        if client_id is not None and obs.channel == "call":
            for candidate in unlinked(self._timeline(client_id), self.key):
                if call_matches(candidate, record):  # telephony.externalcall.finish made it for the hub's call
                    self._link(obs.source, candidate)
                    return "echo"
        return self._ingest(obs)

    def apply_comment(self, record: dict[str, Any]) -> str:
        obs = comment_observation(record, self.key)
        client_id = self._client_id_for(obs.client) if obs.client.ref is not None else None
        if client_id is None:
            return "skipped"
        obs = obs.model_copy(update={"client": ClientKey(client_id=client_id)})
        item = self.hub.find_item(obs.source)
        if item is not None:
            return self._ingest(obs) if _same_ref(item.source, obs.source) else "echo"
        for candidate in unlinked(self._timeline(client_id), self.key):
            if comment_matches(candidate, record):  # the sink wrote this note and has not stored the id yet
                self._link(obs.source, candidate)
                return "echo"
        return self._ingest(obs)

    # --- lookups --------------------------------------------------------------------------------------------
    def _client_by_ref(self, ref: SourceRef) -> ClientView | None:
        found: list[ClientView] = self.hub.find_clients(ref=ref)
        return found[0] if found else None

    def _live_client(self, client_id: int) -> ClientView | None:
        try:
            view: ClientView = self.hub.get_client(client_id)
            while view.merged_into is not None:
                view = self.hub.get_client(view.merged_into)
        except NotFound:
            return None
        return view

    def _client_id_for(self, key: ClientKey) -> int | None:
        """The hub client behind a contact/company ref; read from Bitrix24 and ingested first when the hub lacks it."""
        assert key.ref is not None
        view = self._client_by_ref(key.ref)
        if view is not None:
            return view.id
        entity = key.ref.entity
        if entity not in ("contact", "company"):
            return None
        record = self.read(entity, key.ref.id)
        if record is None:
            return None
        self.apply_client(entity, record)
        view = self._client_by_ref(key.ref)
        return view.id if view is not None else None

    def _hub_item(self, record: Mapping[str, Any], source: SourceRef) -> ItemView | None:
        """The hub item a record was written from (ORIGIN_ID), linked to ``source`` if it was not yet."""
        hub_id = hub_origin(record)
        if hub_id is None:
            return None
        try:
            item: ItemView = self.hub.get_item(hub_id)
        except NotFound:
            return None
        self._link(source, item)
        return item

    def _link(self, source: SourceRef, item: ItemView) -> None:
        if not any(_same_ref(r, source) for r in item.refs):
            self.hub.ingest(RefObservation(source=source, target="item", target_id=item.id))

    def _timeline(self, client_id: int) -> list[ItemView]:
        items: list[ItemView] = self.hub.timeline(client_id, limit=TIMELINE_WINDOW, kinds=["interaction"])
        return items

    def _ingest(self, obs: Any) -> str:
        try:
            applied = self.hub.ingest(obs, strict=False)
        except BadInput as exc:
            log.warning("bitrix24.rejected", portal=self.key, source=str(obs.source), problem=str(exc))
            return "rejected"
        return _outcome(applied)

    # --- lists (the reconciler reads through these) -------------------------------------------------------
    def owner_ids(self) -> list[tuple[str, str]]:
        """Every contact and company of the portal, by id only (2,500 a request)."""
        return [
            (entity, str(row["ID"]))
            for entity in COMMENT_OWNERS
            for row in self.client.list_all(f"{READ[entity][0]}.list", {"select": ["ID"]})
        ]

    def comments_of(self, owners: Iterable[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """The timeline comments of each ``(entity, id)``: the method lists one element's comments at a time and
        requires ``filter[ENTITY_ID]`` and ``filter[ENTITY_TYPE]``; 50 elements go in one ``batch``."""
        pending = list(owners)
        for start in range(0, len(pending), MAX_BATCH):
            chunk = pending[start : start + MAX_BATCH]
            commands = {
                f"c{i}": ("crm.timeline.comment.list", {"filter": {"ENTITY_ID": oid, "ENTITY_TYPE": kind}, "start": 0})
                for i, (kind, oid) in enumerate(chunk)
            }
            answer = self.client.batch_raw(commands)
            for i, (kind, oid) in enumerate(chunk):
                key = f"c{i}"
                if key in answer.errors:
                    error = answer.errors[key]
                    raise FatalDelivery(
                        f"Bitrix24 crm.timeline.comment.list of {kind} {oid} failed: {error.code} {error.description}"
                    )
                rows = page_rows(answer.results.get(key))
                yield from rows
                if key in answer.nexts:  # more than one page of comments on this element
                    params = {"filter": {"ENTITY_ID": oid, "ENTITY_TYPE": kind}, "start": answer.nexts[key]}
                    yield from self.client.list_all("crm.timeline.comment.list", params, keyset=False)

    def bulk_observation(self, entity: str, record: dict[str, Any]) -> Any:
        if entity == "contact":
            return contact_observation(record, self.key, region=self.region)
        if entity == "company":
            return company_observation(record, self.key, region=self.region)
        if entity == "deal":
            deal = deal_observation(record, self.key, stage_map=self.stage_map)
            return deal if deal.client.ref is not None else None
        if entity == "activity":
            activity = activity_observation(record, self.key, region=self.region)
            if activity is not None and activity.client.ref is not None:  # its owner came first; never invent one
                client = activity.client.model_copy(update={"create": False})
                activity = activity.model_copy(update={"client": client})
            return activity
        comment = comment_observation(record, self.key)
        return comment if comment.client.ref is not None else None
