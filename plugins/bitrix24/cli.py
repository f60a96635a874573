"""``hub bitrix24 connect | bind | backfill | push | status``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub import ProgressReporter

from .connection import portals
from .inbound import RECONCILED
from .reconcile import PortalReconciler
from .sink import Writer

PUSH_PAGE = 50
EVENTS = (
    *(
        f"ONCRM{entity}{action}"
        for entity in ("CONTACT", "COMPANY", "DEAL", "ACTIVITY")
        for action in ("ADD", "UPDATE")
    ),
    "ONCRMTIMELINECOMMENTADD",
)


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


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@click.group("bitrix24")
def bitrix24() -> None:
    """Connect Bitrix24 portals and copy their data."""


@bitrix24.command("connect")
@click.option("--portal", "portal_key", help="Which configured portal (its domain); the only one by default.")
@click.option(
    "--refresh-token",
    help="OAuth applications: the refresh token the portal gave the application when it was installed.",
)
def connect(portal_key: str | None, refresh_token: str | None) -> None:
    """Check the credentials (or start from an OAuth refresh token) and claim the portal for this hub."""
    portal = portals(_hub()).get(portal_key)
    info = portal.connect(refresh_token)
    member = f" (member {info['member_id']})" if info.get("member_id") else ""
    click.echo(f"connected Bitrix24 portal {portal.key}{member} as user {info.get('user_id')}")


@bitrix24.command("bind")
@click.option("--portal", "portal_key", help="Which configured portal; the only one by default.")
@click.option("--url", default="", help="Public address of the hub's route, https://…/webhooks/bitrix24")
def bind(portal_key: str | None, url: str) -> None:
    """Subscribe the hub to the portal's CRM events (OAuth applications; outgoing webhooks are set in the portal)."""
    portal = portals(_hub()).get(portal_key)
    if portal.settings.events == "offline":
        # Behind NAT: the portal keeps the events in its offline queue and the hub fetches them.
        bound = {b.get("event") for b in portal.client.call("event.get") or [] if str(b.get("offline")) == "1"}
        todo = [e for e in EVENTS if e not in bound]
        for event in todo:
            portal.client.call("event.bind", {"event": event, "event_type": "offline"})
        click.echo(f"{len(todo)} event(s) bound to the offline queue ({len(EVENTS) - len(todo)} already were)")
        return
    if not portal.settings.application_token:
        # Without the token the hub does not mount /webhooks/bitrix24: every event would meet a 404.
        raise click.ClickException(
            f"/webhooks/bitrix24 is not mounted for {portal.key}: set HUB_BITRIX24__APPLICATION_TOKEN (the "
            "application token of your app or outgoing webhook; `hub sandbox bitrix24` prints the sandbox's) first"
        )
    if not url.rstrip("/").endswith("/webhooks/bitrix24"):
        raise click.ClickException(f"{url} is not the hub's Bitrix24 route: it must end with /webhooks/bitrix24")
    bound = {(b.get("event"), b.get("handler")) for b in portal.client.call("event.get") or []}
    added = 0
    for event in EVENTS:
        if (event, url) not in bound:
            portal.client.call("event.bind", {"event": event, "handler": url})
            added += 1
    click.echo(f"{added} event(s) bound to {url} ({len(EVENTS) - added} already were)")


@bitrix24.command("backfill")
@click.option("--portal", "portal_key", help="Which configured portal; the only one by default.")
@click.option("--since", type=click.DateTime(), help="Only records changed since this date (YYYY-MM-DD).")
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(RECONCILED),
    help="Limit to these entities (repeatable); all by default.",
)
def backfill(portal_key: str | None, since: datetime | None, only: tuple[str, ...]) -> None:
    """Import companies, contacts, deals, activities and timeline comments (2,500 rows a request).

    One line per entity: rows read, changed, unchanged, refused. An entity that fails does not stop the others;
    the command then exits non-zero naming it.
    """
    portal = portals(_hub()).get(portal_key)
    reconciler = PortalReconciler(portal)
    with ProgressReporter() as progress:
        summary = reconciler.backfill_since(since, progress=progress, entities=only or RECONCILED)
    for line in summary.lines():
        click.echo(line)
    click.echo(f"API requests: {reconciler.requests}")
    if not summary.ok:
        raise click.ClickException(
            f"the backfill of {', '.join(summary.failed)} failed (see above); run it again with --only to retry"
        )


@bitrix24.command("push")
@click.option("--portal", "portal_key", help="Which configured portal; the only one by default.")
def push(portal_key: str | None) -> None:
    """Write every hub client to the portal (matched by phone/email first, 50 a batch request)."""
    hub = _hub()
    portal = portals(hub).get(portal_key)
    writer = Writer(portal)
    before = portal.client.requests
    done = 0
    with _progress(Console(stderr=True)) as progress:
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
    rows = {"clients written or matched": done, "API requests": portal.client.requests - before}
    Console().print(_summary_table(f"Bitrix24 push to {portal.key}", rows))


@bitrix24.command("status")
def status() -> None:
    """Show each portal's health (no secrets)."""
    hub = _hub()
    click.echo(json.dumps({p.key: p.health() for p in portals(hub)}, ensure_ascii=False, indent=2))
