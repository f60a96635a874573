"""Settings come from env, .env and TOML in that order; secrets never reach logs or ``hub config show``."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel, SecretStr

from hub.core.errors import ConfigError
from hub.core.logging import configure_logging, register_secrets
from hub.core.settings import load_plugin_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


class DemoSettings(BaseModel):
    webhook_url: SecretStr | None = None
    rate_limit: str = "2/s burst 50"
    nested: dict[str, str] = {}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("HUB_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_env_beats_dotenv_beats_toml(clean_env, monkeypatch):
    (clean_env / "hub.toml").write_text(
        'default_region = "KZ"\npartitions = 3\n[http]\nport = 9001\n[demo]\nrate_limit = "5/s burst 250"\n', "utf-8"
    )
    (clean_env / ".env").write_text("HUB_PARTITIONS=5\nHUB_DEMO__WEBHOOK_URL=https://x.bitrix24.ru/rest/1/abc123/\n")
    monkeypatch.setenv("HUB_PARTITIONS", "7")
    settings = load_settings()
    assert settings.partitions == 7 and settings.default_region == "KZ" and settings.http.port == 9001
    demo = load_plugin_settings(settings, "demo", DemoSettings)
    assert demo.rate_limit == "5/s burst 250"
    assert demo.webhook_url.get_secret_value() == "https://x.bitrix24.ru/rest/1/abc123/"


def test_nested_env_with_double_underscore(clean_env, monkeypatch):
    monkeypatch.setenv("HUB_HTTP__PORT", "8181")
    monkeypatch.setenv("HUB_SINK__MAX_ATTEMPTS", "3")
    settings = load_settings()
    assert settings.http.port == 8181 and settings.sink.max_attempts == 3


def test_a_wrong_setting_names_the_variable(clean_env, monkeypatch):
    monkeypatch.setenv("HUB_HTTP__PORT", "eighty")
    with pytest.raises(ConfigError, match="HUB_HTTP__PORT"):
        load_settings()
    monkeypatch.delenv("HUB_HTTP__PORT")
    monkeypatch.setenv("HUB_DEFAULT_REGION", "XX")
    with pytest.raises(ConfigError, match="unknown region"):
        load_settings()
    monkeypatch.delenv("HUB_DEFAULT_REGION")
    monkeypatch.setenv("HUB_CONSOLE__TIMEZONE", "Moscow")
    with pytest.raises(ConfigError, match=r"HUB_CONSOLE__TIMEZONE.*unknown time zone 'Moscow'"):
        load_settings()


def test_broken_toml_is_a_clear_error(clean_env):
    (clean_env / "bad.toml").write_text("partitions = = 3", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(clean_env / "bad.toml")


def test_secrets_are_redacted_from_logs_wherever_they_appear():
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    register_secrets(["tok-abcdef-123456"])
    log = structlog.get_logger("test")
    log.info(
        "calling",
        url="https://acme.bitrix24.ru/rest/1/q1w2e3r4t5y6/crm.contact.add",
        access_token="AT-1",
        note="token tok-abcdef-123456 leaked in text",
        db="postgresql+psycopg://hub:pa55word@db/hub",
        header="Bearer abcdefghijklmnop",
    )
    logging.getLogger("uvicorn.error").warning("GET /rest/crm.contact.get?auth=zzzsecretzzz&id=1")
    out = stream.getvalue()
    for secret in ("q1w2e3r4t5y6", "AT-1", "tok-abcdef-123456", "pa55word", "abcdefghijklmnop", "zzzsecretzzz"):
        assert secret not in out
    first = json.loads(out.splitlines()[0])
    assert first["access_token"] == "***" and "/rest/1/***" in first["url"]


def test_config_show_masks_every_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {
            "HUB_DATA_DIR": str(tmp_path),
            "HUB_HTTP__API_TOKEN": "api-token-value-1",
            "HUB_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "HUB_BUS_URL": "amqp://hub:bus-pass-9@mq//",
            "HUB_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "config", "show"], env=env, capture_output=True, text=True, check=True
    )
    assert "api-token-value-1" not in out.stdout and "bus-pass-9" not in out.stdout
    data = json.loads(out.stdout)
    assert data["http"]["api_token"] == "**********" and data["bus_url"] == "amqp://hub:***@mq//"


def test_plugin_lists_from_env_are_comma_separated(clean_env, monkeypatch):
    monkeypatch.setenv("HUB_PLUGIN_MODULES", "tests.core.effect_sink, other.module")
    monkeypatch.setenv("HUB_LOAD_PLUGINS", "bitrix24,amocrm")
    settings = load_settings()
    assert settings.plugin_modules == ["tests.core.effect_sink", "other.module"]
    assert settings.load_plugins == ["bitrix24", "amocrm"]
