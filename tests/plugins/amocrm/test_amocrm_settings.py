"""amoCRM settings: account URLs, one way to authenticate, limits, and no secret in any message."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from crm_hub_plugins.amocrm.settings import AmoCRMSettings

TOKEN = "eyJ0eXAiOiJKV1Qi.super-secret-token"
SECRET = SecretStr(TOKEN)


def test_account_url_and_defaults() -> None:
    settings = AmoCRMSettings(base_url="https://Acme.amocrm.ru/", long_lived_token=SECRET)
    assert (settings.base_url, settings.account) == ("https://acme.amocrm.ru", "acme")
    assert (settings.rate_limit, settings.write_batch) == ("7/s window", 50)
    assert AmoCRMSettings(base_url="https://shop.kommo.com", long_lived_token=SECRET).account == "shop"
    assert AmoCRMSettings(base_url="http://127.0.0.1:8123", long_lived_token=SECRET).account == "127.0.0.1:8123"
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"base_url": "https://evil.example.com"}, "account address"),
        ({"base_url": "http://acme.amocrm.ru"}, "account address"),
        ({"write_batch": 251}, "less than or equal to 250"),
        ({"rate_limit": "fast"}, "not of the form"),
        ({"long_lived_token": None}, "HUB_AMOCRM__LONG_LIVED_TOKEN"),
        ({"client_id": "abc"}, "OAuth needs all of"),
        ({"webhook_secret": "short" + TOKEN[:3]}, "at least 16"),
        ({"webhook_secret": TOKEN}, "URL-safe"),
    ],
)
def test_wrong_settings_say_what_to_fix_without_echoing_secrets(overrides: dict[str, object], says: str) -> None:
    values: dict[str, object] = {"base_url": "https://acme.amocrm.ru", "long_lived_token": TOKEN, **overrides}
    with pytest.raises(ValidationError) as caught:
        AmoCRMSettings(**values)  # type: ignore[arg-type]
    message = str(caught.value)
    assert says in message
    assert TOKEN not in message and "super-secret" not in message


def test_oauth_settings_are_complete_without_a_long_lived_token() -> None:
    settings = AmoCRMSettings(
        base_url="https://acme.amocrm.ru",
        client_id="id",
        client_secret=SecretStr("s3cr3t"),
        redirect_uri="https://hub/cb",
        webhook_secret=SecretStr("a" * 24),
        status_map={"Договор": 7200002},
    )
    assert settings.uses_oauth and "s3cr3t" not in repr(settings)
