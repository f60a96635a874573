"""Settings typos are errors: an unknown HUB_* variable or TOML key is refused with "did you mean ..."."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from hub import hookimpl
from hub.core.errors import ConfigError
from hub.core.hub import Hub
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


class AmiSection(BaseModel):
    host: str | None = None
    port: int = 5038


class DemoSettings(BaseModel):
    webhook_url: SecretStr | None = None
    ami: AmiSection = AmiSection()
    stage_map: dict[str, str] = {}


class DemoPlugin:
    @hookimpl
    def hub_register_settings(self, register):
        register("demo", DemoSettings)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("HUB_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def hub_with_demo(**overrides) -> Hub:
    return Hub(load_settings(**overrides), PluginHost(autoload=False, extra=[("demo", DemoPlugin())]))


def test_a_mistyped_database_url_is_refused_not_replaced_by_sqlite(clean_env, monkeypatch):
    monkeypatch.setenv("HUB_DATABSE_URL", "postgresql+psycopg://hub@db/hub")
    expected = r"unknown setting HUB_DATABSE_URL in environment; did you mean HUB_DATABASE_URL\?"
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_an_unknown_key_under_a_core_section_is_refused(clean_env, monkeypatch):
    monkeypatch.setenv("HUB_HTTP__PORTT", "9000")
    with pytest.raises(ConfigError, match=r"HUB_HTTP__PORTT.*did you mean HUB_HTTP__PORT\?"):
        load_settings()


def test_unknown_toml_keys_are_refused_with_their_file(clean_env):
    (clean_env / "hub.toml").write_text('databse_url = "sqlite:///x.db"\n', "utf-8")
    with pytest.raises(ConfigError, match=r"unknown setting databse_url in hub.toml; did you mean database_url\?"):
        load_settings()
    (clean_env / "hub.toml").write_text("[sink]\nmax_attempt = 3\n", "utf-8")
    with pytest.raises(ConfigError, match=r"sink.max_attempt in hub.toml; did you mean sink.max_attempts\?"):
        load_settings()


def test_dotenv_typos_are_refused_too(clean_env):
    (clean_env / ".env").write_text("HUB_BUS_URLL=amqp://mq//\nOTHER_APP_SETTING=1\n", "utf-8")
    with pytest.raises(ConfigError, match=r"HUB_BUS_URLL in \.env; did you mean HUB_BUS_URL\?"):
        load_settings()


def test_plugin_keys_are_checked_against_the_plugin_model(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HUB_DEMO__WEBHOOK_URI", "https://x.bitrix24.ru/rest/1/abc/")
    with pytest.raises(ConfigError, match=r"HUB_DEMO__WEBHOOK_URI in environment; did you mean HUB_DEMO__WEBHOOK_URL"):
        hub_with_demo(data_dir=tmp_path)
    monkeypatch.delenv("HUB_DEMO__WEBHOOK_URI")
    monkeypatch.setenv("HUB_DEMO__AMI__HOTS", "pbx")
    with pytest.raises(ConfigError, match=r"HUB_DEMO__AMI__HOTS.*did you mean HUB_DEMO__AMI__HOST\?"):
        hub_with_demo(data_dir=tmp_path)
    monkeypatch.delenv("HUB_DEMO__AMI__HOTS")
    (clean_env / "hub.toml").write_text(
        '[demo]\nwebhook_url = "https://x.bitrix24.ru/rest/1/q1w2e3r4t5y6u7i8/"\n[demo.ami]\nprot = 1\n', "utf-8"
    )
    with pytest.raises(ConfigError, match=r"demo.ami.prot in hub.toml; did you mean demo.ami.port\?"):
        hub_with_demo(data_dir=tmp_path)


def test_an_unknown_section_is_refused(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HUB_DEMMO__WEBHOOK_URL", "x")
    with pytest.raises(ConfigError, match=r"HUB_DEMMO in environment; did you mean HUB_DEMO\?"):
        hub_with_demo(data_dir=tmp_path)


def test_correct_settings_and_free_form_maps_pass(clean_env, monkeypatch, tmp_path):
    (clean_env / "hub.toml").write_text(
        '[http]\nport = 9001\n[system_of_record]\nphones = ["bitrix24"]\n[demo]\nwebhook_url = "https://x.bitrix24.ru/rest/1/q1w2e3r4t5y6u7i8/"\n'
        '[demo.stage_map]\nNEW = "new"\n[demo.ami]\nhost = "pbx"\n',
        "utf-8",
    )
    monkeypatch.setenv("HUB_DEMO__AMI__PORT", "5039")
    monkeypatch.setenv("HUB_TEST_SOMETHING", "harness")  # the test namespace is not settings
    hub = hub_with_demo(data_dir=tmp_path)
    assert hub.plugin_settings("demo").ami.port == 5039 and hub.settings.http.port == 9001
    hub.store.dispose()


def test_the_cli_says_it_in_one_line_and_exits_non_zero(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"PYTHONPATH": str(ROOT), "HUB_DATA_DIR": str(tmp_path), "HUB_DATABSE_URL": "sqlite:///x.db"})
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "config", "show"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "Error: unknown setting HUB_DATABSE_URL in environment; did you mean HUB_DATABASE_URL? "
        "(see docs/operations.md for every setting)"
    ]
