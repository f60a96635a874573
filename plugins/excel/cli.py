"""``hub excel import FILE`` and ``hub excel export FILE.xlsx``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hub.core.errors import HubError
from hub.progress import ProgressReporter

from .apply import ImportOutcome, run_import
from .records import export_from_hub, parse_since

SHOWN_REJECTIONS = 20


def _hub() -> Any:
    from hub import get_hub

    return get_hub(click.get_current_context())


@click.group("excel")
def excel() -> None:
    """Import client lists from Excel, LibreOffice or CSV files; export clients and their timeline to .xlsx."""


@excel.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sheet", help="The sheet to read (by name); the first one with data by default.")
@click.option(
    "--mapping",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML file naming what each column holds (see docs/plugins/excel.md).",
)
@click.option("--dry-run", is_flag=True, help="Read and check the file, show what would happen, write nothing.")
@click.option("--source", help="Name of this list in the hub (default: the file name); keep it across re-imports.")
@click.option(
    "--rejected",
    "rejected_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the rows that were not imported (default: <name>.rejected.xlsx beside the file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_file(
    file: Path,
    sheet: str | None,
    mapping: Path | None,
    dry_run: bool,
    source: str | None,
    rejected_path: Path | None,
    as_json: bool,
) -> None:
    """Import the clients of FILE (.xlsx, .xlsm, .xls, .xlsb, .ods or .csv). Running it again is safe."""
    hub = _hub()
    # a bar with the total and the ETA on a terminal, log lines (on stderr) off one: stdout keeps the report alone
    with ProgressReporter() as progress:
        try:
            outcome = run_import(
                hub,
                file,
                sheet=sheet,
                mapping=mapping,
                source=source,
                dry_run=dry_run,
                rejected_path=rejected_path,
                reading=lambda total, n: progress.advance("reading rows", n, total=total),
                applying=lambda total, n: progress.advance("applying clients", n, total=total),
            )
        except HubError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or file}: {exc.strerror or exc}") from None
        except KeyboardInterrupt:
            raise click.ClickException(
                "interrupted: the chunks already applied are kept; run the same command again to finish the import"
            ) from None
    if as_json:
        click.echo(json.dumps(outcome.report(), ensure_ascii=False, indent=2, default=str))
        return
    _print_outcome(Console(), outcome)


def _print_outcome(console: Console, outcome: ImportOutcome) -> None:
    plan = outcome.plan
    if outcome.dry_run:
        console.print(
            f"[bold]dry run[/bold]: nothing was written. {plan.format} file, sheet {plan.sheet!r}, "
            f"header row {plan.layout.header_row}"
        )
        console.print(f"columns: {plan.layout.describe()}")
    table = Table(title=f"{plan.path.name}: {'would import' if outcome.dry_run else 'imported'}")
    table.add_column("what")
    table.add_column("count", justify="right")
    summary = outcome.summary()
    shown = ["rows read", "clients", "companies", "duplicates in file", "rejected"]
    if not outcome.dry_run:
        shown += ["created", "updated", "unchanged", "merge candidates", "refused by the hub"]
    for key in shown:
        table.add_row(key, f"{summary[key]:,}")
    console.print(table)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if plan.rejected:
        if outcome.rejected_file is not None:
            console.print(
                f"{len(plan.rejected):,} rows not imported, with the reason for each: {outcome.rejected_file}"
            )
        for row in plan.rejected[:SHOWN_REJECTIONS]:
            console.print(f"  row {row.row_number}: {row.reason}")
        if len(plan.rejected) > SHOWN_REJECTIONS:
            console.print(f"  ... and {len(plan.rejected) - SHOWN_REJECTIONS:,} more")
    if plan.notes:
        console.print(f"{len(plan.notes):,} rows imported without a value that was invalid (see --json for details)")
    for message in outcome.refused[:SHOWN_REJECTIONS]:
        console.print(f"[red]refused:[/red] {message}")


@excel.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--timeline", is_flag=True, help="Add a Timeline sheet with every call, e-mail, note, deal and task.")
@click.option("--since", help="Only clients changed (and items that happened) since this date, YYYY-MM-DD (UTC).")
@click.option("--source", "system", help="Only clients and items known to this system (bitrix24, amocrm, excel...).")
def export_file(file: Path, timeline: bool, since: str | None, system: str | None) -> None:
    """Write the clients (and with --timeline their timeline) to FILE.xlsx, streamed whatever the size."""
    hub = _hub()
    try:
        counts = export_from_hub(hub, file, timeline=timeline, since=parse_since(since), system=system)
    except HubError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}") from None
    extra = f" and {counts.items:,} timeline items" if timeline else ""
    click.echo(f"wrote {counts.clients:,} clients{extra} to {file}")
