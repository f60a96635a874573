"""The ``hub`` command line: run the daemon, look up clients, operate dead letters and migrations."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hub import __version__
from hub.core.errors import HubError
from hub.core.hub import ROLES, Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import Settings, load_settings, masked_dump
from hub.core.store import current_revision, upgrade


class _LazyConsole:
    """A rich console created on first use, so the terminal width is read when output happens."""

    def print(self, *args: Any, **kwargs: Any) -> None:
        Console().print(*args, **kwargs)


console = _LazyConsole()


class Context:
    def __init__(self, config: Path | None, plugins: PluginHost) -> None:
        self.config = config
        self.plugins = plugins
        self._settings: Settings | None = None
        self._hub: Hub | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def hub(self, *, prepare: bool = True) -> Hub:
        if self._hub is None:
            self._hub = Hub(self.settings, self.plugins)
            if prepare:
                self._hub.prepare()
        return self._hub


def get_hub(ctx: click.Context) -> Hub:
    """The hub for a CLI command (plugins' commands call this too): settings loaded, schema migrated."""
    return ctx.find_object(Context).hub()  # type: ignore[union-attr]


def _env_plugins() -> PluginHost:
    allow = os.environ.get("HUB_LOAD_PLUGINS")
    autoload = os.environ.get("HUB_DISABLE_PLUGIN_AUTOLOAD", "").lower() not in ("1", "true", "yes")
    modules = [m.strip() for m in os.environ.get("HUB_PLUGIN_MODULES", "").split(",") if m.strip()]
    return PluginHost(
        allow=[a.strip() for a in allow.split(",") if a.strip()] if allow else None, autoload=autoload, modules=modules
    )


def _emit(data: Any, as_json: bool) -> bool:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    return as_json


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crm-hub")
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    envvar="HUB_CONFIG",
    help="TOML settings file (default: ./hub.toml if present).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """crm-hub: one client record and one timeline across your CRM, telephony, email and Excel."""
    plugins = ctx.obj if isinstance(ctx.obj, PluginHost) else _env_plugins()
    ctx.obj = Context(config, plugins)
    try:
        settings = ctx.obj.settings
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level, settings.log_format)


@cli.command()
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    help="all: everything in one process; web: HTTP; worker: relay, sinks, inbox; listener: sources.",
)
@click.option("--host", default=None, help="Bind address (default HUB_HTTP__HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default HUB_HTTP__PORT, 8080).")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="worker/listener: port of /metrics, /healthz, /readyz (default HUB_METRICS__PORT, 9464; 0: none).",
)
@click.pass_context
def run(ctx: click.Context, role: str, host: str | None, port: int | None, metrics_port: int | None) -> None:
    """Run the hub until SIGTERM or Ctrl-C, then drain in-flight work and exit.

    The database, the data directory, the bus and the ports are checked first: a problem is one line on
    stderr and exit code 1, before anything starts."""
    from hub.daemon import run as run_daemon

    state: Context = ctx.obj
    try:
        run_daemon(state.hub(prepare=False), role=role, host=host, port=port, metrics_port=metrics_port)
    except HubError as exc:
        raise click.ClickException(str(exc)) from None


# --- plugins ------------------------------------------------------------------------------------------------
@cli.group()
def plugins() -> None:
    """Installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """Name, version, hooks and health of every loaded plugin."""
    hub = get_hub(ctx)
    health = hub.health()["plugins"]
    rows: list[dict[str, Any]] = [
        {
            "name": i.name,
            "version": i.version,
            "hooks": i.hooks,
            "health": (health.get(i.name) or {"status": "ok" if not i.error else "down"}),
            "error": i.error,
            "routes_not_mounted": [
                {"path": u.path, "reason": u.reason} for u in hub.unmounted_routes if u.plugin == i.name
            ],
        }
        for i in hub.plugins.info.values()
    ]
    if _emit(rows, as_json):
        return
    table = Table("plugin", "version", "hooks", "health")
    for r in rows:
        status = r["health"].get("status", "ok")
        detail = r["error"] or ", ".join(f"{k}={v}" for k, v in r["health"].items() if k != "status")
        for off in r["routes_not_mounted"]:  # a webhook without its sender check does not exist: say why
            detail += f"\nnot mounted: {off['path']}: {off['reason']}"
        table.add_row(
            r["name"], r["version"], ", ".join(h.removeprefix("hub_") for h in r["hooks"]), f"{status} {detail}".strip()
        )
    console.print(table if rows else "no plugins loaded")


@cli.group("plugin")
def plugin_group() -> None:
    """Write plugins of your own."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@click.option("--force", is_flag=True, help="Write over an existing, non-empty folder.")
def plugin_new(name: str, parent: Path, force: bool) -> None:
    """Scaffold an installable plugin package hub-NAME: hooks, settings, client, mapping, webhook, sync, sink,
    sandbox and tests that pass as generated."""
    from hub.scaffold import new_plugin

    try:
        target = new_plugin(name, parent, force=force)
    except HubError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {target}")
    click.echo(f"next: cd {target} && pip install -e '.[test]' && pytest")


# --- clients ------------------------------------------------------------------------------------------------
@cli.group()
def clients() -> None:
    """Look up and merge clients."""


def _client_table(items: list[Any]) -> Table:
    table = Table("id", "kind", "name", "phones", "emails", "refs")
    for c in items:
        table.add_row(
            str(c.id),
            c.kind,
            c.name or "",
            ", ".join(c.phones),
            ", ".join(c.emails),
            ", ".join(f"{r.system}:{r.entity}/{r.id}" for r in c.refs),
        )
    return table


@clients.command("find")
@click.option("--phone")
@click.option("--email")
@click.option("--name", "q", help="Text in the name, phones or emails (case-insensitive, Cyrillic too).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_find(ctx: click.Context, phone: str | None, email: str | None, q: str | None, as_json: bool) -> None:
    """Find clients by phone (any format), email or name."""
    if not (phone or email or q):
        raise click.UsageError("give --phone, --email or --name")
    try:
        found = get_hub(ctx).find_clients(phone=phone, email=email, q=q)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    if not _emit([c.model_dump(mode="json") for c in found], as_json):
        console.print(_client_table(found) if found else "no client found")


@clients.command("show")
@click.argument("client_id", type=int)
@click.option("--limit", default=20, show_default=True, help="Timeline entries shown.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_show(ctx: click.Context, client_id: int, limit: int, as_json: bool) -> None:
    """One client with its timeline."""
    hub = get_hub(ctx)
    try:
        client = hub.get_client(client_id)
        items = hub.timeline(client_id, limit=limit)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    if _emit(
        {"client": client.model_dump(mode="json"), "timeline": [i.model_dump(mode="json") for i in items]}, as_json
    ):
        return
    console.print(_client_table([client]))
    if client.merged_into:
        console.print(f"merged into client {client.merged_into}")
    table = Table("when", "kind", "channel", "what", "source")
    for i in items:
        f = i.fields
        what = f.get("title") or f.get("subject") or f.get("summary") or f.get("status") or f.get("body") or ""
        extra = f" ({f['direction']})" if f.get("direction") else ""
        table.add_row(
            i.occurred_at.strftime("%Y-%m-%d %H:%M"),
            i.kind,
            i.channel or "",
            f"{what}{extra}"[:80],
            f"{i.source.system}:{i.source.entity}/{i.source.id}",
        )
    console.print(table if items else "no timeline entries")


@clients.command("merge")
@click.argument("winner_id", type=int)
@click.argument("loser_id", type=int)
@click.pass_context
def clients_merge(ctx: click.Context, winner_id: int, loser_id: int) -> None:
    """Merge LOSER_ID into WINNER_ID (undo with 'hub clients unmerge MERGE_ID')."""
    try:
        merge_id = get_hub(ctx).merge(winner_id, loser_id, actor="cli")
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"merged client {loser_id} into {winner_id} (merge {merge_id}; undo: hub clients unmerge {merge_id})")


@clients.command("unmerge")
@click.argument("merge_id", type=int)
@click.pass_context
def clients_unmerge(ctx: click.Context, merge_id: int) -> None:
    """Undo a merge."""
    try:
        get_hub(ctx).unmerge(merge_id)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"merge {merge_id} undone")


@clients.command("candidates")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_candidates(ctx: click.Context, as_json: bool) -> None:
    """Pairs of clients that may be one person (a shared phone, email or ref): confirm with 'hub clients merge'."""
    rows = get_hub(ctx).merge_candidates()
    if _emit(rows, as_json):
        return
    table = Table("id", "client", "other", "reason", "since")
    for r in rows:
        table.add_row(str(r["id"]), str(r["client_id"]), str(r["other_id"]), r["reason"], str(r["created_at"])[:16])
    console.print(table if rows else "no open merge candidates")


# --- observations -------------------------------------------------------------------------------------------
@cli.command("ingest")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.pass_context
def ingest(ctx: click.Context, source: Any) -> None:
    """Apply observations from a JSON Lines file (one observation per line; '-' for standard input).

    Progress goes to stderr: a bar with a total and an ETA on a terminal, log lines otherwise."""
    from hub.progress import ProgressReporter

    hub = get_hub(ctx)
    total = _count_lines(source)
    applied = unchanged = rejected = 0
    with ProgressReporter() as progress:
        for lineno, line in enumerate(source, 1):
            progress.advance("ingest", 1, total=total)
            if not line.strip():
                continue
            try:
                result = hub.ingest(hub.parse_observation(json.loads(line)))
            except (ValueError, HubError) as exc:
                rejected += 1
                click.echo(f"line {lineno}: {exc}", err=True)
                continue
            if result.events:
                applied += 1
            else:
                unchanged += 1
    click.echo(f"{applied} applied, {unchanged} unchanged, {rejected} rejected")
    if rejected:
        sys.exit(1)


def _count_lines(source: Any) -> int | None:
    """Lines of a regular file (for a total and an ETA), read once ahead; None for a pipe."""
    try:
        if not source.seekable():
            return None
        count = sum(1 for _ in source)
        source.seek(0)
        return count
    except (OSError, ValueError):
        return None


# --- dead letters -------------------------------------------------------------------------------------------
@cli.group()
def dlq() -> None:
    """Dead letters: events and inbox items that kept failing."""


def _filter_options(func: Any) -> Any:
    """The filter every dead-letter command takes: queue (sink), error kind and age."""
    func = click.option("--newer-than", type=_DURATION, help="Only letters younger than this (30m, 2h, 7d).")(func)
    func = click.option("--older-than", type=_DURATION, help="Only letters older than this (30m, 2h, 7d).")(func)
    func = click.option("--kind", help="Only this error kind (ExternalAPIError, FatalDelivery, ...; see 'list').")(func)
    return click.option("--queue", "--sink", "queue", help="Only this sink (or inbox:<kind>).")(func)


class _Duration(click.ParamType):
    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in self._UNITS else "s"
        number = text[:-1] if text[-1:] in self._UNITS else text
        try:
            return timedelta(seconds=float(number) * self._UNITS[unit])
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 90s, 30m, 2h or 7d", param, ctx)


_DURATION = _Duration()


def _letter_filter(queue: str | None, kind: str | None, older: Any, newer: Any, status: str | None) -> Any:
    from hub.core.dlq import LetterFilter

    return LetterFilter(queue=queue, kind=kind, older_than=older, newer_than=newer, status=status)


def _letter_line(summary: dict[str, Any]) -> str:
    """One letter, one line, tab-separated: for grep, cut and awk off a terminal."""
    error = " ".join(str(summary["error"]).split())
    fields = [summary["id"], summary["queue"], summary["status"], summary["attempts"], summary["created_at"][:19]]
    return "\t".join(str(f) for f in [*fields, summary["kind"], summary["client_id"] or "-", error])


@dlq.command("list")
@_filter_options
@click.option("--all", "show_all", is_flag=True, help="Include replayed and discarded ones.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Letters per page.")
@click.option("--after", type=int, default=0, help="Page on: letters with an id over this one.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dlq_list(
    ctx: click.Context,
    queue: str | None,
    kind: str | None,
    older_than: Any,
    newer_than: Any,
    show_all: bool,
    limit: int,
    after: int,
    as_json: bool,
) -> None:
    """List dead letters, a page at a time (a table on a terminal, one line a letter otherwise)."""
    hub = get_hub(ctx)
    where = _letter_filter(queue, kind, older_than, newer_than, None if show_all else "open")
    letters = hub.dlq.list(where=where, after=after, limit=limit)
    summaries = [d.summary() for d in letters]
    more = len(letters) == limit and bool(hub.dlq.list(where=where, after=letters[-1].id, limit=1))
    if more:  # on stderr, so stdout stays the letters alone
        click.echo(f"more: hub dlq list --after {letters[-1].id} (same filters)", err=True)
    if _emit(summaries, as_json):
        return
    if not sys.stdout.isatty():
        for summary in summaries:
            click.echo(_letter_line(summary))
        if not summaries:
            click.echo("no dead letters", err=True)
        return
    total = hub.dlq.count(where=where)
    table = Table("id", "queue", "kind", "client", "attempts", "status", "when", "error")
    for d in summaries:
        table.add_row(
            str(d["id"]),
            d["queue"],
            d["kind"],
            str(d["client_id"] or ""),
            str(d["attempts"]),
            d["status"],
            d["created_at"][:19],
            d["error"],
        )
    console.print(table if letters else "no dead letters")
    if letters:
        console.print(f"{len(letters)} of {total} shown")


@dlq.command("show")
@click.argument("letter_id", type=int)
@click.pass_context
def dlq_show(ctx: click.Context, letter_id: int) -> None:
    """One dead letter with its payload, error and context."""
    hub = get_hub(ctx)
    try:
        letter = hub.dlq.get(letter_id)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    data = {
        **letter.summary(),
        "error": letter.error,
        "context": letter.context,
        "payload": hub.dlq.payload_json(letter),
    }
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _bulk(letter_ids: tuple[int, ...], every: bool, queue: Any, kind: Any, older: Any, newer: Any) -> Any:
    """Ids, or a filter: ``--all`` or at least one filter option, so a bare command touches nothing."""
    filtered = any(v is not None for v in (queue, kind, older, newer))
    if letter_ids and (every or filtered):
        raise click.UsageError("give dead-letter ids or a filter (--all, --queue, --kind, --older-than...), not both")
    if not letter_ids and not (every or filtered):
        raise click.UsageError("give dead-letter ids, --all, or a filter (--queue, --kind, --older-than...)")
    return None if letter_ids else _letter_filter(queue, kind, older, newer, "open")


@dlq.command("replay")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open dead letter that matches the filter.")
@_filter_options
@click.pass_context
def dlq_replay(
    ctx: click.Context,
    letter_ids: tuple[int, ...],
    replay_all: bool,
    queue: str | None,
    kind: str | None,
    older_than: Any,
    newer_than: Any,
) -> None:
    """Send dead letters back to their queue; the running hub delivers them again."""
    where = _bulk(letter_ids, replay_all, queue, kind, older_than, newer_than)
    hub = get_hub(ctx)
    try:
        count = hub.dlq.replay_all(where=where) if where else len([hub.dlq.replay(i) for i in letter_ids])
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{count} dead letter(s) replayed")


@dlq.command("discard")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "discard_all", is_flag=True, help="Discard every open dead letter that matches the filter.")
@_filter_options
@click.option("--yes", is_flag=True, help="Do not ask (needed off a terminal for a filter).")
@click.pass_context
def dlq_discard(
    ctx: click.Context,
    letter_ids: tuple[int, ...],
    discard_all: bool,
    queue: str | None,
    kind: str | None,
    older_than: Any,
    newer_than: Any,
    yes: bool,
) -> None:
    """Give up on dead letters for good: they stay in the store, marked discarded, and are never replayed."""
    where = _bulk(letter_ids, discard_all, queue, kind, older_than, newer_than)
    hub = get_hub(ctx)
    if where is not None and not yes:
        count = hub.dlq.count(where=where)
        if not sys.stdin.isatty():
            raise click.UsageError(f"{count} dead letter(s) match; add --yes to discard them")
        click.confirm(f"discard {count} dead letter(s)?", abort=True, err=True)
    count = hub.dlq.discard(list(letter_ids) if letter_ids else None, where=where)
    click.echo(f"{count} dead letter(s) discarded")


# --- database and config ------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply schema migrations (SQLite or PostgreSQL)."""
    hub = ctx.obj.hub(prepare=False)
    upgrade(hub.store, revision)
    click.echo(f"database at revision {current_revision(hub.store)}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Show the schema revision."""
    click.echo(current_revision(ctx.obj.hub(prepare=False).store) or "empty database (run 'hub db upgrade')")


@cli.group()
def config() -> None:
    """Settings."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """The effective settings, core and plugins, with every secret masked."""
    hub = ctx.obj.hub(prepare=False)
    data: dict[str, Any] = masked_dump(hub.settings)
    data["database_url"] = _mask_url(hub.settings.effective_database_url)
    data["bus_url"] = _mask_url(hub.settings.bus_url)
    for name, model in hub._plugin_settings.items():
        data[name] = masked_dump(model)
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _mask_url(url: str) -> str:
    from hub.core.logging import redact_text

    return redact_text(url)


# --- sandboxes ----------------------------------------------------------------------------------------------
class _SandboxCommand(click.Command):
    """Its help ends with how to set up each installed sandbox (seeding, webhooks), as the sandbox tells it."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        root = ctx.find_root().obj
        factories: dict[str, Any] = {}
        if root is not None:
            root.plugins.each("hub_register_sandboxes", register=lambda n, f: factories.__setitem__(n, f))
        for name, factory in sorted(factories.items()):
            setup = getattr(factory, "setup_help", None)
            if setup:
                with formatter.section(f"{name} sandbox"):
                    formatter.write_text(setup)
        super().format_epilog(ctx, formatter)


@cli.command("sandbox", cls=_SandboxCommand)
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.pass_context
def sandbox(ctx: click.Context, name: str, host: str, port: int) -> None:
    """Serve a plugin's local emulator of its external system (e.g. 'hub sandbox bitrix24 --port 9001')."""
    import uvicorn

    factories: dict[str, Any] = {}
    ctx.obj.plugins.each("hub_register_sandboxes", register=lambda n, f: factories.__setitem__(n, f))
    if name not in factories:
        known = ", ".join(sorted(factories)) or "none installed"
        raise click.ClickException(f"no sandbox named {name!r} (available: {known})")
    app = factories[name]()
    click.echo(f"{name} sandbox on http://{host}:{port}")
    banner = getattr(getattr(app, "state", None), "banner", None)
    if callable(banner):  # told the address it is served on (a webhook URL holds it)
        banner = banner(f"http://{host}:{port}")
    if banner:  # a sandbox may say how to reach it (a token it made up, a webhook code)
        click.echo(banner)
    uvicorn.run(app, host=host, port=port, log_config=None)


def _add_console_commands() -> None:
    from hub.console_cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_console_commands()


def build_cli(plugins: PluginHost | None = None) -> click.Group:
    """The command line with every plugin's commands added."""
    host = plugins or _env_plugins()
    for _name, _ in host.each("hub_register_commands", register=cli.add_command):
        pass
    return cli


def main() -> None:
    # logs go to stderr from the first line on, so that --json output on stdout stays clean
    configure_logging(os.environ.get("HUB_LOG_LEVEL", "info"), os.environ.get("HUB_LOG_FORMAT", "auto"))
    host = _env_plugins()
    build_cli(host)
    try:
        cli.main(obj=host, prog_name="hub")
    except HubError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
