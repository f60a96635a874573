"""The core Reconciler: cursors move only after storing and only forward; one failing entity does not stop others."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from hub.core.errors import ExternalAPIError
from hub.core.events import ClientObservation, SourceRef
from hub.core.reconciler import Page, Reconciler


class Contacts(Reconciler):
    """Two entity kinds read from lists; ``fail`` names kinds whose read breaks after the first page."""

    entities = ("company", "contact")
    cursor_field = "modified"
    overlap = 10
    page_size = 2
    bulk_size = 2

    def __init__(self, hub: Any, rows: dict[str, list[dict[str, Any]]], fail: set[str] = frozenset()) -> None:
        super().__init__(hub, "acme.example")
        self.rows, self.fail, self.asked = rows, fail, []

    def pages(self, entity: str, since: Any) -> Iterator[Page]:
        self.asked.append((entity, since))
        items = [r for r in self.rows[entity] if since is None or r["modified"] >= since]
        for start in range(0, len(items), self.page_size):
            if start and entity in self.fail:
                raise ExternalAPIError(f"{entity} page failed: Access denied.")
            yield Page(items[start : start + self.page_size], total=len(items))

    def observe(self, entity: str, item: dict[str, Any]) -> Iterable[Any]:
        kind = "company" if entity == "company" else "person"
        source = SourceRef(system="crm", account=self.account, entity=entity, id=str(item["id"]))
        yield ClientObservation(source=source, observed_at=datetime.now(UTC), client_kind=kind, name=item["name"])


def rows(entity: str, n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"{entity} {i}", "modified": 1000 + i} for i in range(1, n + 1)]


class Advances:
    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, int | None]] = {}

    def advance(self, name: str, n: int = 1, *, total: int | None = None) -> None:
        done = self.seen.get(name, (0, None))[0] + n
        self.seen[name] = (done, total)


def test_backfill_stores_everything_reports_progress_and_moves_each_cursor(embedded: Any) -> None:
    hub = embedded.hub()
    progress = Advances()
    summary = Contacts(hub, {"company": rows("company", 3), "contact": rows("contact", 5)}).backfill(progress=progress)
    assert summary.ok and summary.exit_code == 0
    assert summary.totals() == {"read": 8, "stored": 8, "unchanged": 0, "refused": 0}
    assert progress.seen == {"company": (3, 3), "contact": (5, 5)}
    reconciler = Contacts(hub, {})
    assert (reconciler.cursor("company"), reconciler.cursor("contact")) == (1003, 1005)


def test_a_poll_reads_from_the_cursor_minus_the_overlap_and_changes_nothing_twice(embedded: Any) -> None:
    hub = embedded.hub()
    data = {"company": rows("company", 3), "contact": rows("contact", 5)}
    Contacts(hub, data).backfill()
    again = Contacts(hub, data)
    summary = again.poll()
    assert again.asked == [("company", 993), ("contact", 995)]
    assert summary.totals()["stored"] == 0 and summary.totals()["unchanged"] == 8


def test_one_failing_entity_does_not_stop_the_others_and_the_summary_names_it(embedded: Any) -> None:
    hub = embedded.hub()
    data = {"company": rows("company", 5), "contact": rows("contact", 3)}
    summary = Contacts(hub, data, fail={"company"}).backfill()
    assert summary.failed == ["company"] and summary.exit_code == 1
    assert "company page failed: Access denied." in "\n".join(summary.lines())
    [company, contact] = summary.outcomes
    assert contact.ok and contact.stored == 3
    # The first page was stored before the failure, so the cursor moved past it and no further.
    assert company.stored == 2 and Contacts(hub, {}).cursor("company") == 1002


def test_a_cursor_never_moves_back(embedded: Any) -> None:
    hub = embedded.hub()
    Contacts(hub, {"company": rows("company", 4), "contact": []}).backfill()
    Contacts(hub, {"company": rows("company", 2), "contact": []}).backfill()
    assert Contacts(hub, {}).cursor("company") == 1004
