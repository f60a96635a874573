"""Reconciliation of one external account: read every entity kind page by page, ingest in bulk, move cursors.

A :class:`Reconciler` is configured by class attributes (``entities``, ``cursor_field``, ``overlap``,
``page_size``, ``bulk_size``) and two methods a connector writes: :meth:`Reconciler.pages` (read) and
:meth:`Reconciler.observe` (map). It owns the rest: cursors in ``hub.state`` that move only after what was read
is stored, backfill through ``hub.ingest_many`` with progress, and a per-entity summary in which one failing kind
does not stop the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import structlog

from hub.core.errors import BadInput, ExternalAPIError, HubError

log = structlog.get_logger("hub.reconciler")


class Progress(Protocol):
    """What the reconciler reports progress to (``hub.progress.ProgressReporter`` is one)."""

    def advance(self, name: str, n: int = 1, *, total: int | None = None) -> None: ...


class IngestHub(Protocol):
    state: Any

    def ingest_many(self, observations: Sequence[Any], *, strict: bool = True) -> list[Any]: ...


@dataclass
class Page:
    """One page of an entity list: its items, and the total when the API tells it (for the progress bar)."""

    items: list[dict[str, Any]]
    total: int | None = None


@dataclass
class EntityOutcome:
    """What reconciling one entity kind did."""

    entity: str
    read: int = 0
    stored: int = 0  # observations that changed something
    unchanged: int = 0
    refused: int = 0
    cursor: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        state = "ok" if self.ok else f"FAILED: {self.error}"
        return (
            f"{self.entity}: read {self.read}, changed {self.stored}, unchanged {self.unchanged}, "
            f"refused {self.refused} - {state}"
        )


@dataclass
class Summary:
    """The outcome of a run, entity by entity; ``exit_code`` is non-zero when any entity failed."""

    account: str
    outcomes: list[EntityOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [o.entity for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        out = [o.line() for o in self.outcomes]
        if self.failed:
            out.append(f"{self.account}: failed: {', '.join(self.failed)}")
        return out

    def totals(self) -> dict[str, int]:
        return {
            "read": sum(o.read for o in self.outcomes),
            "stored": sum(o.stored for o in self.outcomes),
            "unchanged": sum(o.unchanged for o in self.outcomes),
            "refused": sum(o.refused for o in self.outcomes),
        }


class Reconciler:
    """Base of every connector's reconciliation. Subclass, set the attributes, write ``pages`` and ``observe``.

    - ``entities``: the kinds read, in order (``("company", "contact", "deal")``: companies before the contacts
      that link to them).
    - ``cursor_field``: the item field the cursor follows (``DATE_MODIFY``, ``updated_at``); its values must sort.
    - ``overlap``: how far behind the cursor an incremental read starts (seconds, for numeric cursors), so a
      change committed late upstream is not skipped; re-reading is harmless (ingest is idempotent).
    - ``page_size``: items a page asks for; ``bulk_size``: observations per ``ingest_many`` transaction.
    - ``ordered``: pages come oldest change first, so the cursor may move after each bulk; when False it moves
      once the whole entity is stored (a run that fails half-way then re-reads from the old cursor).
    """

    entities: ClassVar[tuple[str, ...]] = ()
    cursor_field: ClassVar[str] = "updated_at"
    overlap: ClassVar[float] = 300.0
    page_size: ClassVar[int] = 50
    bulk_size: ClassVar[int] = 500
    ordered: ClassVar[bool] = True

    def __init__(self, hub: IngestHub, account: str, *, scope: str | None = None) -> None:
        self.hub, self.account = hub, account
        self.cursor_scope = f"{scope or account}:cursors"

    # --- what a connector writes -------------------------------------------------------------------------------
    def pages(self, entity: str, since: Any) -> Iterator[Page]:
        """Yield pages of ``entity`` changed at or after ``since`` (None: everything), oldest change first when the
        API can sort; raise :class:`ExternalAPIError` when the remote fails."""
        raise NotImplementedError

    def observe(self, entity: str, item: dict[str, Any]) -> Iterable[Any]:
        """The observations one item stands for (none, one, or several: a deal and its contact links)."""
        raise NotImplementedError

    def cursor_of(self, entity: str, item: dict[str, Any]) -> Any:
        """The cursor value of one item (by default ``item[cursor_field]``); None when it has none."""
        return item.get(self.cursor_field)

    def since(self, entity: str, cursor: Any) -> Any:
        """Where an incremental read starts for a stored ``cursor``: ``overlap`` seconds behind numeric ones."""
        if isinstance(cursor, int | float) and not isinstance(cursor, bool):
            return type(cursor)(cursor - self.overlap)
        return cursor

    # --- cursors ------------------------------------------------------------------------------------------------
    def cursor(self, entity: str) -> Any:
        return self.hub.state.get(self.cursor_scope, entity)

    def _advance_cursor(self, entity: str, value: Any) -> Any:
        current = self.cursor(entity)
        if value is None or (current is not None and _before_or_equal(value, current)):
            return current  # a cursor only moves forward
        self.hub.state.put(self.cursor_scope, entity, value)
        return value

    def reset_cursors(self) -> None:
        for entity in self.entities:
            self.hub.state.delete(self.cursor_scope, entity)

    # --- runs ---------------------------------------------------------------------------------------------------
    def backfill(self, *, progress: Progress | None = None, entities: Iterable[str] | None = None) -> Summary:
        """Read everything (cursors ignored for reading, moved as it goes); one summary line per entity."""
        return self.run(full=True, progress=progress, entities=entities)

    def poll(self) -> Summary:
        """Read what changed since each cursor (minus ``overlap``): what a poller calls every interval."""
        return self.run(full=False)

    def run(
        self, *, full: bool = False, progress: Progress | None = None, entities: Iterable[str] | None = None
    ) -> Summary:
        summary = Summary(self.account)
        for entity in entities if entities is not None else self.entities:
            outcome = EntityOutcome(entity, cursor=self.cursor(entity))
            summary.outcomes.append(outcome)
            try:
                self._reconcile(entity, outcome, full=full, progress=progress)
            except (ExternalAPIError, HubError, OSError) as exc:
                outcome.error = str(exc) or type(exc).__name__
                log.error("reconcile.entity_failed", account=self.account, entity=entity, error=outcome.error)
        return summary

    def _reconcile(self, entity: str, outcome: EntityOutcome, *, full: bool, progress: Progress | None) -> None:
        since = None if full or outcome.cursor is None else self.since(entity, outcome.cursor)
        batch: list[Any] = []
        batch_cursor: Any = None
        highest: Any = None
        for page in self.pages(entity, since):
            for item in page.items:
                outcome.read += 1
                batch.extend(self.observe(entity, item))
                batch_cursor = _later(batch_cursor, self.cursor_of(entity, item))
            if progress is not None:
                progress.advance(entity, len(page.items), total=page.total)
            if len(batch) >= self.bulk_size:
                highest = _later(highest, batch_cursor)
                self._store(entity, batch, batch_cursor if self.ordered else None, outcome)
                batch, batch_cursor = [], None
        self._store(entity, batch, batch_cursor if self.ordered else _later(highest, batch_cursor), outcome)

    def _store(self, entity: str, batch: list[Any], cursor: Any, outcome: EntityOutcome) -> None:
        """Ingest one bulk, then (and only then) move the cursor past it."""
        for start in range(0, len(batch), self.bulk_size):
            for result in self.hub.ingest_many(batch[start : start + self.bulk_size], strict=False):
                if isinstance(result, BadInput):
                    outcome.refused += 1
                elif getattr(result, "events", None):
                    outcome.stored += 1
                else:
                    outcome.unchanged += 1
        outcome.cursor = self._advance_cursor(entity, cursor)


def _before_or_equal(a: Any, b: Any) -> bool:
    try:
        return bool(a <= b)
    except TypeError:
        return str(a) <= str(b)


def _later(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a if not _before_or_equal(a, b) else b
