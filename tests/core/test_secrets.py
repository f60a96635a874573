"""Secrets never leak: every registered secret whatever its length, URL passwords of every shape, database errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from hub.core import schema as s
from hub.core.logging import configure_logging, register_secrets
from hub.core.settings import load_settings, secret_values

ROOT = Path(__file__).resolve().parents[2]


def logged(**fields: object) -> str:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    structlog.get_logger("test").info("connecting", **fields)
    return stream.getvalue()


def test_a_registered_secret_is_redacted_however_short():
    register_secrets(["Zq9"])  # an AMI password the PBX admin chose; never mind its length
    assert "Zq9" not in logged(note="login failed with Zq9 for user hub")


@pytest.mark.parametrize(
    "url, password",
    [
        ("redis://:r3dis-pass@cache:6379/0", "r3dis-pass"),
        ("amqp://:amqp-pass@mq:5672//", "amqp-pass"),
        ("postgresql+psycopg://hub:p@ss@word@db.internal/hub", "p@ss@word"),
        ("amqp://hub:pa55word@mq.internal:5672//", "pa55word"),
    ],
)
def test_url_passwords_of_every_shape_are_masked_in_logs(url, password):
    out = logged(error=f"could not connect to {url}: refused", url=url)
    assert password not in out and "ss@word" not in out and ":***@" in out


def test_database_and_bus_passwords_are_secrets_wherever_they_appear(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(database_url="postgresql+psycopg://hub:p@ss-Wd1@db/hub", bus_url="redis://:rPass7@r:6379")
    assert {"p@ss-Wd1", "rPass7"} <= set(secret_values(settings))


def test_config_show_masks_database_and_bus_urls_of_every_shape(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {
            "HUB_DATA_DIR": str(tmp_path),
            "HUB_DATABASE_URL": "postgresql+psycopg://hub:p@ss@db.invalid/hub",
            "HUB_BUS_URL": "redis://:r3dis-pass@cache.invalid:6379/0",
            "HUB_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "config", "show"], env=env, capture_output=True, text=True, check=True
    )
    assert "p@ss" not in out.stdout and "r3dis-pass" not in out.stdout
    data = json.loads(out.stdout)
    assert data["database_url"] == "postgresql+psycopg://hub:***@db.invalid/hub"
    assert data["bus_url"] == "redis://:***@cache.invalid:6379/0"


def test_a_database_error_carries_no_client_data(backend):
    hub = backend.hub()
    row = {"scope": "crm", "key": "Иван Петров +79161234567", "value": {"phone": "+79161234567"}}
    with hub.store.write() as conn:
        conn.execute(insert(s.state).values(**row, updated_at=_now()))
    with pytest.raises(IntegrityError) as error, hub.store.write() as conn:
        conn.execute(insert(s.state).values(**row, updated_at=_now()))
    assert "hide_parameters" in str(error.value)  # SQLAlchemy keeps the bound values out of the message
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    structlog.get_logger("test").error("request failed", error=str(error.value), exc_info=error.value)
    out = stream.getvalue()  # and the database's own detail ("Key (...)=(Иван ...)") stays out of the log
    assert "Иван" not in out and "79161234567" not in out


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
