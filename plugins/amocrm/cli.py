"""``hub amocrm connect | backfill | push | status``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .connection import accounts
from .inbound import RECONCILED, Inbound
from .sink import Writer

PUSH_PAGE = 50


def _hub() -> Any:
    from hub import get_hub

    return get_hub(click.get_current_context())


def _summary_table(title: str, rows: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, count in rows.items():
        table.add_row(name, str(count))
    return table


@click.group("amocrm")
def amocrm() -> None:
    """Connect amoCRM accounts and copy their data."""


@amocrm.command("connect")
@click.option("--account", "account_key", help="Which configured account (its subdomain); the only one by default.")
@click.option("--code", help="The authorization code amoCRM gave the redirect URI (OAuth integrations).")
def connect(account_key: str | None, code: str | None) -> None:
    """Check the token (or exchange an OAuth code), read the account and claim it for this hub."""
    account = accounts(_hub()).get(account_key)
    info = account.connect(code)
    name = info.get("subdomain") or account.key
    click.echo(f"connected amoCRM account {name} (id {info.get('id')}) as {account.key}")


@amocrm.command("backfill")
@click.option("--account", "account_key", help="Which configured account; the only one by default.")
@click.option("--since", type=click.DateTime(), help="Only records updated since this date (YYYY-MM-DD).")
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(RECONCILED),
    help="Limit to these entities (repeatable); all by default.",
)
def backfill(account_key: str | None, since: datetime | None, only: tuple[str, ...]) -> None:
    """Import contacts, companies, leads, notes and tasks (250 a request) into the hub."""
    account = accounts(_hub()).get(account_key)
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def advance(entity: str, n: int) -> None:
            if entity not in tasks:
                tasks[entity] = progress.add_task(entity, total=None)
            progress.advance(tasks[entity], n)

        summary = Inbound(account).backfill(since=since, entities=only or RECONCILED, progress=advance)
    Console().print(_summary_table(f"amoCRM backfill of {account.key}", summary.as_dict()))
    for problem in summary.problems[:10]:
        console.print(f"[yellow]rejected:[/yellow] {problem}")


@amocrm.command("push")
@click.option("--account", "account_key", help="Which configured account; the only one by default.")
def push(account_key: str | None) -> None:
    """Write every hub client to amoCRM (search first, create what is missing, 50 a request)."""
    hub = _hub()
    account = accounts(hub).get(account_key)
    writer = Writer(account)
    before = account.client.requests_sent
    done = 0
    columns = (TextColumn("[bold]clients"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("clients", total=None)
        page: list[Any] = []
        for view in hub.iter_clients():
            page.append(view)
            if len(page) == PUSH_PAGE:
                writer.ensure_clients(page)
                done += len(page)
                progress.advance(task, len(page))
                page = []
        if page:
            writer.ensure_clients(page)
            done += len(page)
            progress.advance(task, len(page))
    rows = {"clients written or matched": done, "API requests": account.client.requests_sent - before}
    Console().print(_summary_table(f"amoCRM push to {account.key}", rows))


@amocrm.command("status")
def status() -> None:
    """Show each account's health (no secrets)."""
    hub = _hub()
    click.echo(json.dumps({a.key: a.health() for a in accounts(hub)}, ensure_ascii=False, indent=2))
