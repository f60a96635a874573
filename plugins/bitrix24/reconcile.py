"""Bitrix24 → hub in bulk, on the core's Reconciler: the backfill (2,500 rows a request through ``ingest_many``) and
the periodic reconciliation by ``DATE_MODIFY`` cursors that finds what lost events missed.

The core owns cursors (moved only after storing), progress and the per-entity summary; this module says what to
read (``pages``) and what a row stands for (``observe``). Rows the hub wrote itself (``ORIGIN_ID``) and every row of
an incremental poll go through :class:`~crm_hub_plugins.bitrix24.inbound.Inbound`, which recognises echoes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from hub import BadInput, Page, Reconciler, Summary

from .connection import Portal
from .echo import hub_origin
from .inbound import COMMENT_OWNERS, READ, RECONCILED, Inbound
from .mapping import _when

log = structlog.get_logger("crm_hub_plugins.bitrix24")

BULK = 2500  # rows stored per ingest_many: what one list request brings
CHANGED = ("created", "updated")
KEPT = ("echo", "unchanged", "skipped", "gone")


def _utc(value: Any) -> str | None:
    """A Bitrix24 time (in the portal's offset) as a UTC ISO string, so cursors of one portal compare as text."""
    moment = value if isinstance(value, datetime) else _when(value)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class PortalReconciler(Reconciler):
    """Reads one portal's companies, contacts, deals, activities and timeline comments into the hub."""

    entities = RECONCILED
    cursor_field = "DATE_MODIFY"  # activities follow LAST_UPDATED, comments CREATED: see ``cursor_of``
    page_size = 50
    bulk_size = BULK
    ordered = False  # rows come in ID order (keyset paging), not change order: a cursor moves once an entity is done

    def __init__(self, portal: Portal) -> None:
        super().__init__(portal.hub, portal.key, scope=portal.scope)
        self.portal = portal
        self.inbound = Inbound(portal)
        self.client = portal.client
        self.requests = 0  # API requests of the last run
        self.applied: Counter[tuple[str, str]] = Counter()  # (entity, outcome) of rows applied one by one
        self._one_by_one = False
        self._from: datetime | None = None
        self._owners: list[tuple[str, str]] | None = None

    # --- the Reconciler's side ----------------------------------------------------------------------------
    def pages(self, entity: str, since: Any) -> Iterator[Page]:
        totals: list[int] = []
        if entity == "timeline_comment":
            # Listed per element only: the comments of the contacts and companies read in this run.
            owners = self._owners if self._owners is not None else self.inbound.owner_ids()
            rows: Iterable[dict[str, Any]] = self.inbound.comments_of(owners)
        else:
            method, select, stamp = READ[entity]
            params: dict[str, Any] = {"select": select} if select else {}
            start = since if since is not None else self._from
            if start is not None:
                params["filter"] = {f">={stamp}": start.isoformat(timespec="seconds")}
            rows = self.client.list_all(f"{method}.list", params, on_total=totals.append)
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.bulk_size:
                yield Page(chunk, total=totals[0] if totals else None)
                chunk = []
        if chunk:
            yield Page(chunk, total=totals[0] if totals else None)

    def observe(self, entity: str, item: dict[str, Any]) -> Iterable[Any]:
        if self._owners is not None and entity in COMMENT_OWNERS:
            self._owners.append((entity, str(item["ID"])))
        if self._one_by_one or hub_origin(item) is not None:
            self.applied[(entity, self.inbound.apply(entity, item))] += 1  # the echo-aware path
            return []
        try:
            obs = self.inbound.bulk_observation(entity, item)
        except (BadInput, ValidationError, KeyError) as exc:
            log.warning("bitrix24.rejected", portal=self.account, entity=entity, id=item.get("ID"), problem=str(exc))
            self.applied[(entity, "rejected")] += 1
            return []
        if obs is None:
            self.applied[(entity, "skipped")] += 1
            return []
        return [obs]

    def cursor_of(self, entity: str, item: dict[str, Any]) -> Any:
        return _utc(item.get(READ[entity][2]))

    def since(self, entity: str, cursor: Any) -> Any:
        moment = _when(cursor)
        return None if moment is None else moment - timedelta(seconds=self.portal.settings.reconcile_overlap)

    def cursor(self, entity: str) -> Any:
        found = super().cursor(entity)
        if found is None:  # where releases up to 0.1 kept it
            found = self.hub.state.get(self.portal.scope, f"cursor:{entity}")
        return _utc(found) if found else None

    # --- runs ---------------------------------------------------------------------------------------------
    def backfill_since(
        self, since: datetime | None = None, *, progress: Any = None, entities: Iterable[str] | None = None
    ) -> Summary:
        """Import everything (or everything changed since ``since``): 2,500 rows a request, ``ingest_many``."""
        wanted = [e for e in RECONCILED if entities is None or e in set(entities)]
        self._from = None if since is None else (since if since.tzinfo else since.replace(tzinfo=UTC))
        self._one_by_one = False
        self._owners = [] if all(e in wanted for e in COMMENT_OWNERS) else None
        return self._counted(lambda: self.backfill(progress=progress, entities=wanted))

    def poll(self) -> Summary:
        """Read what changed since each cursor (minus the overlap) and apply it row by row, echo-aware.

        Bitrix24 never re-sends a lost event, so this is what finds it. The first run only sets the cursors:
        history is the backfill's job; from then on nothing is missed."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        ready = []
        for entity in self.entities:
            if self.cursor(entity) is None:
                self.hub.state.put(self.cursor_scope, entity, now)
            else:
                ready.append(entity)
        self._from, self._one_by_one, self._owners = None, True, []
        return self._counted(lambda: self.run(full=False, entities=ready))

    def tick(self) -> None:
        """The Poller's callable: reconcile and log what was found."""
        summary = self.poll()
        log.info("bitrix24.reconciled", portal=self.account, api_requests=self.requests, **summary.totals())
        for outcome in summary.outcomes:
            if not outcome.ok:
                log.error("bitrix24.reconcile_failed", portal=self.account, entity=outcome.entity, error=outcome.error)

    def _counted(self, run: Any) -> Summary:
        self.applied.clear()
        before = self.client.requests
        summary: Summary = run()
        self.requests = self.client.requests - before
        for outcome in summary.outcomes:  # rows applied one by one count beside the bulk's
            for (entity, result), n in self.applied.items():
                if entity != outcome.entity:
                    continue
                if result in CHANGED:
                    outcome.stored += n
                elif result in KEPT:
                    outcome.unchanged += n
                else:
                    outcome.refused += n
        return summary

    def changed(self, entity: str) -> int:
        """Rows of ``entity`` applied one by one that created or changed something (for reports and tests)."""
        return sum(n for (e, result), n in self.applied.items() if e == entity and result in CHANGED)
