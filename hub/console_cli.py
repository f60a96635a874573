"""Commands for people and reports: ``hub users add|passwd|list``, ``hub tokens create|list|revoke``,
``hub report NAME --from --to [--xlsx FILE]``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hub.core import reports
from hub.core.errors import HubError
from hub.core.hub import Hub
from hub.core.users import LANGUAGES, ROLES, Users


def _hub(ctx: click.Context) -> Hub:
    from hub.cli import get_hub

    return get_hub(ctx)


def _users(ctx: click.Context) -> Users:
    return Users(_hub(ctx).store)


def _password(password: str | None) -> str:
    if password:
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """People who log in to the console (roles: operator, admin)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True)
@click.option("--name", "display_name", help="Name shown in the console (default: the username).")
@click.option("--language", type=click.Choice(LANGUAGES), default="ru", show_default=True)
@click.option("--extension", help="The operator's PBX extension (call pop-ups, click-to-call).")
@click.option("--password", envvar="HUB_NEW_PASSWORD", help="Default: asked for (or HUB_NEW_PASSWORD).")
@click.pass_context
def users_add(
    ctx: click.Context,
    username: str,
    role: str,
    display_name: str | None,
    language: str,
    extension: str | None,
    password: str | None,
) -> None:
    """Add a user."""
    try:
        user = _users(ctx).add(
            username, _password(password), role=role, display_name=display_name, language=language, extension=extension
        )
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {user.username} added ({user.role})")


@users.command("passwd")
@click.argument("username")
@click.option("--password", envvar="HUB_NEW_PASSWORD", help="Default: asked for (or HUB_NEW_PASSWORD).")
@click.pass_context
def users_passwd(ctx: click.Context, username: str, password: str | None) -> None:
    """Set a user's password (their open sessions end)."""
    try:
        _users(ctx).set_password(username, _password(password))
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {username} changed")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every user with role, language and extension."""
    table = Table("username", "name", "role", "language", "extension", "active")
    for u in _users(ctx).all():
        table.add_row(u.username, u.display_name, u.role, u.language, u.extension or "", "yes" if u.active else "no")
    Console().print(table)


@click.group()
def tokens() -> None:
    """Personal API tokens: 'Authorization: Bearer <token>' on /api/*."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
@click.pass_context
def tokens_create(ctx: click.Context, username: str, name: str) -> None:
    """Create a token for USERNAME and print it (the only time it is shown)."""
    try:
        click.echo(_users(ctx).create_api_token(username, name))
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> None:
    table = Table("id", "user", "name", "starts with", "created", "last used", "revoked")
    for t in _users(ctx).api_tokens():
        table.add_row(
            str(t["id"]),
            str(t["user"]),
            str(t["name"]),
            f"{t['prefix']}…",
            f"{t['created_at']:%Y-%m-%d %H:%M}",
            f"{t['last_used_at']:%Y-%m-%d %H:%M}" if t["last_used_at"] else "",
            "yes" if t["revoked"] else "",
        )
    Console().print(table)


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: int) -> None:
    try:
        _users(ctx).revoke_api_token(token_id)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"token {token_id} revoked")


@click.command("report")
@click.argument("name", type=click.Choice(sorted(reports.REPORTS)))
@click.option("--from", "since", help="First day, 2026-11-01 (default: 30 days ago).")
@click.option("--to", "until", help="Last day, included (default: today). Days are the hub's (HUB_CONSOLE__TIMEZONE).")
@click.option("--days", type=int, default=30, show_default=True, help="N of 'not contacted' and 'stale' reports.")
@click.option("--system", help="Only what came from this system (bitrix24, amocrm, telephony, excel, ...).")
@click.option("--xlsx", "xlsx", type=click.Path(path_type=Path), help="Write the report to this xlsx file.")
@click.pass_context
def report(
    ctx: click.Context,
    name: str,
    since: str | None,
    until: str | None,
    days: int,
    system: str | None,
    xlsx: Path | None,
) -> None:
    """Show a report (calls, funnel, new-clients, not-contacted, stale-deals, overdue-tasks) or export it."""
    try:
        hub = _hub(ctx)
        period = reports.Period.parse(since, until, zone=hub.settings.console.zone())
        built = reports.build(hub, name, reports.Options(period, days=days, system=system))
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    if xlsx is not None:
        xlsx.write_bytes(reports.to_xlsx(built))
        click.echo(f"{built.title}: {len(built.rows)} rows written to {xlsx}")
        return
    for part in [built, *built.sections]:
        table = Table(*[c.title for c in part.columns], title=part.title)
        for row in reports.rows_as_text(part):
            table.add_row(*row)
        Console().print(table)


class LazyCommand(click.Command):
    """A command whose module loads on first use: ``hub demo`` brings in every plugin's sandbox, and the other
    commands (plugins' among them) should neither pay for that nor depend on it."""

    def __init__(self, name: str, target: str, help: str) -> None:
        super().__init__(name, help=help, short_help=help)
        self.target = target

    def _real(self) -> click.Command:
        module, attr = self.target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self._real().get_params(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        return self._real().invoke(ctx)


demo = LazyCommand("demo", "hub.demo:demo", "Run the hub with every sandbox and live traffic; Ctrl-C stops it all.")
COMMANDS = (users, tokens, report, demo)
