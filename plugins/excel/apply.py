"""Importing a file through the core: plan it, apply the plan chunk by chunk, write the rejected rows, count.

Each chunk is one transaction (``hub.ingest_many``). An import cut short (Ctrl-C, a crash, a database outage)
keeps the chunks already committed; running it again completes it without duplicates, because applying an
observation the hub already holds changes nothing: the import is resumable rather than atomic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from hub.core.errors import BadInput

from .importer import ImportPlan, Progress, plan_import, write_rejected
from .settings import ExcelSettings

log = structlog.get_logger("crm_hub_plugins.excel")

CHUNK_SIZE = 500
REPORT_LIST_LIMIT = 200

Applying = Callable[[int, int], None]
"""Called as ``applying(total_observations, advanced)`` after each committed chunk; raising stops the import."""


@dataclass
class ImportOutcome:
    """What an import did: the plan with its counts filled in, what the core refused, where rejected rows went."""

    plan: ImportPlan
    dry_run: bool = False
    refused: list[str] = field(default_factory=list)
    hub_warnings: list[str] = field(default_factory=list)
    rejected_file: Path | None = None

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = dict(self.plan.summary())
        summary["refused by the hub"] = len(self.refused)
        summary["dry run"] = self.dry_run
        summary["rejected file"] = str(self.rejected_file) if self.rejected_file else None
        return summary

    def report(self) -> dict[str, Any]:
        """The summary with the detail an operator needs: layout, warnings, and the first reasons for refusals."""
        plan = self.plan
        return {
            "summary": self.summary(),
            "format": plan.format,
            "header row": plan.layout.header_row,
            "columns": plan.layout.describe(),
            "warnings": plan.warnings,
            "rejected rows": [{"row": r.row_number, "reason": r.reason} for r in plan.rejected[:REPORT_LIST_LIMIT]],
            "notes": [{"row": n.row_number, "note": n.message} for n in plan.notes[:REPORT_LIST_LIMIT]],
            "refused by the hub": self.refused[:REPORT_LIST_LIMIT],
            "hub warnings": self.hub_warnings[:REPORT_LIST_LIMIT],
        }


def default_rejected_path(path: Path) -> Path:
    """``clients.xlsx`` → ``clients.rejected.xlsx`` beside it."""
    return path.with_name(f"{path.stem}.rejected.xlsx")


def region_for(hub: Any) -> str:
    settings: ExcelSettings = hub.plugin_settings("excel")
    return settings.default_region or hub.settings.default_region


def run_import(
    hub: Any,
    path: Path,
    *,
    sheet: str | None = None,
    mapping: Path | None = None,
    source: str | None = None,
    dry_run: bool = False,
    rejected_path: Path | None = None,
    reading: Progress | None = None,
    applying: Applying | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> ImportOutcome:
    """Plan ``path`` and (unless ``dry_run``) apply it; raises :class:`BadInput` when the file cannot be read.

    A dry run reads and checks everything and writes nothing: no client, no rejected-rows file.
    """
    settings: ExcelSettings = hub.plugin_settings("excel")
    plan = plan_import(
        path,
        sheet=sheet,
        mapping=mapping,
        source=source,
        region=region_for(hub),
        progress=reading,
        max_rows=settings.max_rows,
    )
    outcome = ImportOutcome(plan=plan, dry_run=dry_run)
    if dry_run:
        return outcome
    if plan.rejected:
        target = rejected_path or default_rejected_path(path)
        write_rejected(target, plan.rejected, plan.headers)
        outcome.rejected_file = target
    apply_plan(hub, outcome, chunk_size=chunk_size, applying=applying)
    log.info("excel file imported", file=path.name, **{k.replace(" ", "_"): v for k, v in _counts(outcome).items()})
    return outcome


def apply_plan(
    hub: Any, outcome: ImportOutcome, *, chunk_size: int = CHUNK_SIZE, applying: Applying | None = None
) -> None:
    """Apply the plan's observations in chunks, one transaction each, and fill in the counts of the plan.

    Every client made counts as created (a person with the company it names first: two); an observation that made
    none counts as updated when it changed a client, unchanged otherwise. Merge candidates are those opened while
    the import ran.
    """
    plan = outcome.plan
    observations = plan.observations
    before = {c["id"] for c in hub.merge_candidates()}
    for start in range(0, len(observations), chunk_size):
        batch = observations[start : start + chunk_size]
        results = hub.ingest_many(batch, strict=False)
        for obs, result in zip(batch, results, strict=True):
            if isinstance(result, BadInput):
                outcome.refused.append(f"{obs.name or obs.source.id}: {result}")
                continue
            outcome.hub_warnings.extend(f"{obs.name or obs.source.id}: {w}" for w in result.warnings)
            # a person may bring the company it names into the hub with it: both count as created
            made = sum(1 for e in result.events if e.type == "client.changed" and "created" in e.changed)
            if made:
                plan.created += made
            elif result.events:
                plan.updated += 1
            else:
                plan.unchanged += 1
        if applying is not None:
            applying(len(observations), len(batch))
    plan.merge_candidates = sum(1 for c in hub.merge_candidates() if c["id"] not in before)


def _counts(outcome: ImportOutcome) -> dict[str, int]:
    return {k: v for k, v in outcome.summary().items() if isinstance(v, int) and not isinstance(v, bool)}
