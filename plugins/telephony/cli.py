"""Telephony commands: ``hub call``, ``hub calls stats`` and ``hub sandbox-telephony-ami``."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hub import get_hub
from hub.core.errors import HubError

from .runtime import telephony
from .sandbox import AMISandbox, CallKind, generate_call, load_ami_session
from .stats import calls_report, parse_period


@click.command("call")
@click.argument("extension")
@click.argument("phone")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def call(ctx: click.Context, extension: str, phone: str, as_json: bool) -> None:
    """Click-to-call: ring EXTENSION, then dial PHONE (AMI Originate, Mango or Zadarma call-back)."""
    rt = telephony(get_hub(ctx))
    try:
        entry = rt.click.request(extension, phone)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    if not as_json:
        click.echo(
            f"calling {entry['phone']} from extension {extension} via {entry['provider']}: {entry['request_id']}"
        )
    result = rt.click.place(entry)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        detail = result.get("error") or result.get("call_status") or ""
        click.echo(f"{result['status']} {detail}".strip())
    if result["status"] == "failed":
        ctx.exit(1)


@click.group("calls")
def calls() -> None:
    """Calls from the PBXs."""


@calls.command("stats")
@click.option("--since", help="First day (2025-11-01) or moment (ISO 8601); default: 7 days ago.")
@click.option("--until", help="Last day (inclusive) or moment (exclusive); default: now.")
@click.option("--tz", default=None, help="Time zone of the days, e.g. Europe/Moscow (default UTC).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def calls_stats(ctx: click.Context, since: str | None, until: str | None, tz: str | None, as_json: bool) -> None:
    """Per day, operator and direction: calls, answered, missed, missed and not called back, talk time."""
    hub = get_hub(ctx)
    try:
        start, end, zone = parse_period(since, until, tz)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    report = calls_report(lambda s: hub.iter_items(kind="interaction", channel="call", since=s), start, end, zone)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    table = Table("day", "operator", "dir", "calls", "answered", "missed", "not called back", "talk")
    for r in report["rows"]:
        table.add_row(
            r["day"],
            r["operator"] or "",
            r["direction"],
            str(r["calls"]),
            str(r["answered"]),
            str(r["missed"]),
            str(r["missed_not_called_back"]),
            _duration(r["talk_s"]),
        )
    t = report["totals"]
    table.add_row(
        "total", "", "", str(t["calls"]), str(t["answered"]), str(t["missed"]), str(t["missed_not_called_back"]),
        _duration(t["talk_s"]),
    )  # fmt: skip
    Console().print(table if report["rows"] else f"no calls from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


_KINDS: tuple[CallKind, ...] = (
    "answered",
    "busy",
    "no_answer",
    "cancelled",
    "rejected",
    "queue",
    "transfer",
    "outbound",
)


@click.command("sandbox-telephony-ami")
@click.option("--port", type=int, default=5038, show_default=True, help="Port on 127.0.0.1.")
@click.option("--username", default="hub", show_default=True)
@click.option("--secret", default="sandbox-secret", show_default=True)
@click.option("--replay", "replay", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Recorded AMI session (JSON list of events) to play after login; repeatable.")  # fmt: skip
@click.option("--generate", type=int, default=0, help="Play this many generated calls after login.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between generated calls.")
@click.option("--seed", type=int, default=None, help="Random seed for generated calls.")
def sandbox_ami(
    port: int,
    username: str,
    secret: str,
    replay: tuple[Path, ...],
    generate: int,
    interval: float,
    seed: int | None,
) -> None:
    """Run a local Asterisk Manager Interface for demos: it accepts the hub's login and plays calls.

    Point the hub at it with HUB_TELEPHONY__AMI__HOST=127.0.0.1, __PORT, __USERNAME and __SECRET. It serves one
    manager session at a time (a new login replaces the previous one).
    """
    sandbox = AMISandbox(username, secret, port=port, seed=seed)
    sandbox.start()
    click.echo(f"AMI sandbox on 127.0.0.1:{sandbox.port} (username {username!r}); Ctrl-C to stop")
    rng = random.Random(seed)
    try:
        if replay or generate:
            click.echo("waiting for the hub to log in...", err=True)  # progress: stderr, stdout stays clean
            while not sandbox.wait_for_login(timeout=1.0):
                pass
        for path in replay:
            events = load_ami_session(path)
            sandbox.send_events(events)
            click.echo(f"replayed {path.name}: {len(events)} events", err=True)
        for n in range(generate):
            kind = rng.choice(_KINDS)
            sandbox.send_events(generate_call(kind, rng=rng))
            click.echo(f"call {n + 1}/{generate}: {kind}", err=True)
            time.sleep(interval)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


COMMANDS = (call, calls, sandbox_ami)
