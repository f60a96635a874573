"""The security probe of issue 9, as an outsider runs it: prints each case and what the hub answered.

Run it against any checkout (only public entry points are used), e.g. before and after a change:
``PYTHONPATH=. .venv/bin/python bench/security_probe.py``. Needs nothing but loopback; PostgreSQL is used
for the database-error case when it runs on 127.0.0.1:5432.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi.testclient import TestClient

from crm_hub_plugins.excel import plugin as excel_plugin
from crm_hub_plugins.telephony import plugin as telephony_plugin
from crm_hub_plugins.telephony.sandbox import AMISandbox, ZadarmaSender
from hub.core.hub import Hub
from hub.core.logging import configure_logging, register_secrets
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings
from hub.web.app import create_app

EVIL = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
TOKEN = "probe-token-0123456789"
ZD_SECRET = "probe-zadarma-secret-01"
rows: list[tuple[str, str]] = []


def case(name: str, outcome: Any) -> None:
    rows.append((name, str(outcome)))


def hub_for(tmp: Path, **http: Any) -> Hub:
    settings = load_settings(
        database_url=f"sqlite:///{tmp / f'hub{len(rows)}-{time.monotonic_ns()}.db'}", data_dir=tmp, http=http
    )
    plugins = PluginHost(autoload=False, extra=[("telephony", telephony_plugin), ("excel", excel_plugin)])
    hub = Hub(settings, plugins)
    hub.migrate()
    return hub


def clients(hub: Hub) -> int:
    return sum(1 for _ in hub.iter_clients())


def csrf_and_rebinding(tmp: Path) -> None:
    with AMISandbox() as ami:
        for key, value in {"HOST": "127.0.0.1", "PORT": ami.port, "USERNAME": ami.username}.items():
            os.environ[f"HUB_TELEPHONY__AMI__{key}"] = str(value)
        os.environ["HUB_TELEPHONY__AMI__SECRET"] = ami.secret.get_secret_value()
        hub = hub_for(tmp)
        hub.start("all")
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")
        body = '{"kind":"client","source":{"system":"web","entity":"contact","id":"1"},"phones":["+79160000001"]}'
        plain = api.post("/api/observations", content=body, headers={"Content-Type": "text/plain"})
        case("POST /api/observations text/plain (no Origin)", plain.status_code)
        r = api.post("/api/observations", content=body.replace('"1"', '"1b"'), headers=EVIL)
        case("POST /api/observations text/plain, Origin evil", r.status_code)
        case("clients created by both", clients(hub))
        for n in (2, 3):
            hub.ingest(
                hub.parse_observation(
                    {
                        "kind": "client",
                        "source": {"system": "t", "entity": "c", "id": str(n)},
                        "phones": [f"+7916000000{n}"],
                    }
                )
            )
        ids = sorted(c.id for c in hub.iter_clients())[-2:]
        r = api.post(f"/api/clients/{ids[0]}/merge", params={"other_id": ids[1]}, headers=EVIL)
        case("POST /api/clients/{id}/merge, Origin evil", r.status_code)
        r = api.post("/api/calls", content='{"extension":"101","phone":"+78091234567"}', headers=EVIL)
        case("POST /api/calls premium-rate, text/plain, Origin evil", r.status_code)
        r = api.post("/api/calls", json={"extension": "101", "phone": "+7 809 123-45-67"})
        case("POST /api/calls premium-rate +7 809 (JSON, same origin)", r.status_code)
        r = api.post("/api/calls", json={"extension": "101", "phone": "+881 6 1234 5678"})
        case("POST /api/calls satellite +881", r.status_code)
        time.sleep(1.0)
        dialled = [a.get("Exten") for a in ami.actions if a.get("Action") == "Originate"]
        case("numbers the PBX was made to dial", dialled or "none")
        rebound = TestClient(create_app(hub), base_url="http://evil.example:8080")
        r = rebound.get("/api/export.xlsx")
        case(
            "GET /api/export.xlsx with rebound Host evil.example",
            f"{r.status_code}{' (xlsx)' if r.content[:2] == b'PK' else ''}",
        )
        headers = api.get("/api/clients", params={"q": "x"}).headers
        case(
            "X-Content-Type-Options / X-Frame-Options / CSP",
            " / ".join(
                headers.get(h, "-") for h in ("x-content-type-options", "x-frame-options", "content-security-policy")
            ),
        )
        hub.stop(grace=2)
        for key in ("HOST", "PORT", "USERNAME", "SECRET"):
            os.environ.pop(f"HUB_TELEPHONY__AMI__{key}", None)


def guessing(tmp: Path) -> None:
    hub = hub_for(tmp, api_token=TOKEN)
    hub.prepare()
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    started = time.perf_counter()
    codes = [
        api.get("/api/clients", params={"q": "x"}, headers={"Authorization": f"Bearer g{n:020d}"}).status_code
        for n in range(200)
    ]
    elapsed = time.perf_counter() - started
    case(
        "200 wrong bearer tokens: 401 / 429",
        f"{codes.count(401)} / {codes.count(429)} ({200 / elapsed:.0f} tries/s answered)",
    )
    try:
        load_settings(http={"api_token": "abc"})
        case("HUB_HTTP__API_TOKEN=abc at start", "accepted")
    except Exception as exc:
        case("HUB_HTTP__API_TOKEN=abc at start", f"refused: {type(exc).__name__}")


def webhooks(tmp: Path) -> None:
    os.environ.update({"HUB_TELEPHONY__MANGO__API_KEY": "k", "HUB_TELEPHONY__MANGO__API_SALT": "probe-mango-salt-0123",
                       "HUB_TELEPHONY__ZADARMA__KEY": "zk", "HUB_TELEPHONY__ZADARMA__SECRET": ZD_SECRET})  # fmt: skip
    hub = hub_for(tmp)
    hub.start("all")
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    missed = {"call_id": "g-1", "event": "ended", "direction": "in", "from": "+79160000009", "status": "missed",
              "started_at": "2025-11-17T10:00:00+03:00", "ended_at": "2025-11-17T10:00:30+03:00"}  # fmt: skip
    r = api.post("/webhooks/telephony/generic", json=missed)
    hub.wait_idle()
    calls = list(hub.iter_items(kind="interaction", channel="call"))
    case("anonymous generic call event (Mango, Zadarma configured)", f"{r.status_code}, calls created: {len(calls)}")
    stamp = (
        (datetime.now(UTC) - timedelta(minutes=1)).astimezone(ZoneInfo("Europe/Moscow")).strftime("%Y-%m-%d %H:%M:%S")
    )
    end = {"event": "NOTIFY_END", "call_start": stamp, "pbx_call_id": "in_real", "caller_id": "79161234567",
           "called_did": "74951234567", "duration": "0", "disposition": "no answer", "status_code": "16"}  # fmt: skip
    form, headers = ZadarmaSender(ZD_SECRET).signed(end)
    api.post("/webhooks/telephony/zadarma", data=form, headers=headers)
    answers = [
        api.post("/webhooks/telephony/zadarma", data={**form, "pbx_call_id": f"in_forged_{n}"}, headers=headers).json()
        for n in range(3)
    ]
    time.sleep(0.5)
    hub.wait_idle()
    zd_calls = [c for c in hub.iter_items(kind="interaction", channel="call") if c.source.system == "zadarma"]
    tasks = list(hub.iter_items(kind="task"))
    case(
        "captured NOTIFY_END resent 3x with new pbx_call_id",
        f"{answers[0]}; missed calls {len(zd_calls)}, tasks {len(tasks)}",
    )
    hub.stop(grace=2)


def redaction() -> None:
    logging.disable(logging.NOTSET)
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    register_secrets(["Zq9"])
    log = structlog.get_logger("probe")
    secrets = {
        "Zq9": "AMI login failed with Zq9",
        "r3dis-pw": "redis://:r3dis-pw@cache:6379/0",
        "amqp-pw": "amqp://:amqp-pw@mq//",
        "ss@word": "postgresql://hub:p@ss@word@db/hub",
    }
    for text in secrets.values():
        log.info("connect", detail=text)
    out = stream.getvalue()
    case(
        "secrets leaked into logs (Zq9, redis://:pw@, amqp://:pw@, p@ss@word)",
        [k for k in secrets if k in out] or "none",
    )
    logging.getLogger().handlers.clear()


def database_error() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        case("database error log carries client data (PostgreSQL)", "skipped: no PostgreSQL")
        return
    import psycopg
    from sqlalchemy import insert

    from hub.core import schema as s
    from hub.core.store import Store

    tag = f"probe{os.getpid()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{tag}"')
    try:
        hub = Hub(
            load_settings(
                database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{tag}"
            ),
            PluginHost(autoload=False),
        )
        hub.migrate()
        row = {"scope": "probe", "key": "Иван Петров +79161234567", "value": {}, "updated_at": datetime.now(UTC)}
        stream = io.StringIO()
        configure_logging("info", "json", stream)
        logging.disable(logging.NOTSET)
        for _ in range(2):
            try:
                with hub.store.write() as c:
                    c.execute(insert(s.state).values(**row))
            except Exception as exc:
                structlog.get_logger("probe").error("request failed", error=str(exc))
        case(
            "database error log carries client data (PostgreSQL)", "yes" if "79161234567" in stream.getvalue() else "no"
        )
        hub.store.dispose()
        assert isinstance(hub.store, Store)
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{tag}" CASCADE')


def main() -> None:
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        del os.environ[key]
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        csrf_and_rebinding(Path(tmp))
        guessing(Path(tmp))
        webhooks(Path(tmp))
    redaction()
    database_error()
    width = max(len(name) for name, _ in rows)
    for name, outcome in rows:
        print(f"{name.ljust(width)}  {outcome}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
