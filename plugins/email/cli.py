"""``hub email sync | send | status``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hub.progress import ProgressReporter

from .client import MailboxError
from .connection import accounts
from .outbound import Sender
from .sync import MailboxSync


def _hub() -> Any:
    from hub import get_hub

    return get_hub(click.get_current_context())


@click.group("email")
def email() -> None:
    """Read company mailboxes into the timeline, and send email from the hub."""


@email.command("sync")
@click.option("--mailbox", "mailbox_key", help="Which configured mailbox; all of them by default.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def sync(mailbox_key: str | None, as_json: bool) -> None:
    """Read every configured folder past its cursor once, store what is new, print what was done."""
    hub = _hub()
    found = accounts(hub)
    chosen = [found.get(mailbox_key)] if mailbox_key else list(found)
    if not chosen:
        found.get()  # raises the "nothing configured" error
    reports, failed = [], []
    with ProgressReporter() as progress:
        for account in chosen:
            conn = account.mailbox()
            try:
                conn = account.connect()
                reports.append(MailboxSync(account, progress).sync(conn))
            except MailboxError as exc:
                account.mark_down(str(exc))
                failed.append((account.key, str(exc)))
            finally:
                conn.close()
    if as_json:
        click.echo(
            json.dumps({"mailboxes": [r.as_dict() for r in reports], "failed": dict(failed)}, ensure_ascii=False)
        )
    else:
        table = Table(title="email sync")
        for column in ("mailbox", "folder", "read", "stored", "already stored", "skipped", "not decoded", "rejected"):
            table.add_column(column, justify="left" if column in ("mailbox", "folder", "skipped") else "right")
        for report in reports:
            for folder, f in report.folders.items():
                skipped = ", ".join(f"{k} {v}" for k, v in sorted(f.skipped.items())) or "-"
                table.add_row(
                    report.mailbox,
                    folder + (" (gone)" if f.error else "") + (" (UIDVALIDITY changed)" if f.resynced else ""),
                    str(f.messages),
                    str(f.stored),
                    str(f.already_stored),
                    skipped,
                    str(f.undecoded),
                    str(f.rejected),
                )
        Console().print(table)
        for key, error in failed:
            Console(stderr=True).print(f"[red]mailbox {key} is down:[/red] {error}")
    if failed:
        raise SystemExit(1)


@email.command("send")
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--cc", "cc", multiple=True, help="Copy to (repeatable).")
@click.option("--subject", required=True)
@click.option("--body", required=True, help="Plain text; '-' reads it from standard input.")
@click.option("--reply-to", "reply_to", type=int, help="Timeline item id of the email this answers.")
@click.option("--mailbox", "mailbox_key", help="Which configured mailbox sends; the only one by default.")
def send(
    to: tuple[str, ...], cc: tuple[str, ...], subject: str, body: str, reply_to: int | None, mailbox_key: str | None
) -> None:
    """Send an email through the mailbox's SMTP server; it lands on the timeline once."""
    if body == "-":
        body = sys.stdin.read()
    sent = Sender(accounts(_hub()).get(mailbox_key)).send(list(to), subject, body, cc=list(cc), reply_to_item=reply_to)
    click.echo(json.dumps(sent.as_dict(), ensure_ascii=False))


@email.command("status")
def status() -> None:
    """Each mailbox's health and cursors (no secrets)."""
    hub = _hub()
    for account in accounts(hub):
        click.echo(
            json.dumps({"mailbox": account.key, **account.health(), "cursors": account.cursors()}, ensure_ascii=False)
        )
