"""``hub telegram status|connect|send``."""

from __future__ import annotations

import json

import click

from hub import get_hub
from hub.core.errors import HubError

from .bot import Bot


def _bot(ctx: click.Context) -> Bot:
    from .plugin import bot

    found = bot(get_hub(ctx))
    if found is None:
        raise click.ClickException("no bot configured: set HUB_TELEGRAM__BOT_TOKEN (from @BotFather)")
    return found


@click.group("telegram")
def telegram() -> None:
    """The Telegram bot: its status, how it receives updates, and messages to clients."""


@telegram.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Who the bot is, how it receives updates, and what Telegram holds for it."""
    found = _bot(ctx)
    try:
        me, info = found.api.get_me(), found.api.webhook_info()
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"bot @{me.get('username')} (id {me.get('id')}), mode {found.settings.mode}")
    click.echo(f"webhook: {info.get('url') or 'none'}; pending updates: {info.get('pending_update_count', 0)}")
    if info.get("last_error_message"):
        click.echo(f"last webhook error: {info['last_error_message']}")
    click.echo(f"next update offset stored: {found.offset()}")


@telegram.command("connect")
@click.pass_context
def connect(ctx: click.Context) -> None:
    """Tell Telegram how to reach the hub: set the webhook (webhook mode) or remove it (polling mode)."""
    found = _bot(ctx)
    settings = found.settings
    try:
        if settings.mode == "webhook":
            if not settings.public_url or settings.webhook_secret is None:
                raise click.ClickException(
                    "webhook mode needs HUB_TELEGRAM__PUBLIC_URL (the hub's HTTPS address) and "
                    "HUB_TELEGRAM__WEBHOOK_SECRET (16+ characters of A-Z a-z 0-9 _ -)"
                )
            url = settings.public_url.rstrip("/") + "/webhooks/telegram"
            found.api.set_webhook(url, settings.webhook_secret.get_secret_value())
            click.echo(f"webhook set: Telegram now posts updates to {url}")
        else:
            found.api.delete_webhook()
            click.echo("webhook removed: the hub long-polls getUpdates (hub run)")
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc


@telegram.command("send")
@click.option("--client", "client_id", type=int, required=True, help="The client's id in the hub.")
@click.option("--text", required=True, help="The message (up to 4,096 characters).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def send(ctx: click.Context, client_id: int, text: str, as_json: bool) -> None:
    """Send a message to a client who has written to the bot; it lands on the client's timeline."""
    found = _bot(ctx)
    try:
        result = found.send(client_id, text, operator="cli")
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"sent to client {client_id}: timeline item {result['item_id']}")
