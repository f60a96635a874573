"""Bitrix24 settings: one way in (webhook or OAuth app), validated without ever repeating a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm_hub_plugins.bitrix24.settings import Bitrix24Settings

WEBHOOK = "https://acme.bitrix24.ru/rest/1/q1w2e3r4t5y6u7i8/"


def test_webhook_settings_name_the_portal() -> None:
    settings = Bitrix24Settings.model_validate(
        dict(webhook_url=WEBHOOK, application_token="zz-app-secret-zz", stage_map={"in_work": "EXECUTING"})
    )
    assert (settings.domain, settings.uses_oauth, settings.rate_limit) == ("acme.bitrix24.ru", False, "2/s burst 50")
    assert "q1w2e3r4t5y6u7i8" not in repr(settings) and "zz-app-secret-zz" not in repr(settings)


def test_oauth_settings_need_client_secret_and_portal() -> None:
    settings = Bitrix24Settings.model_validate(
        dict(client_id="app.1", client_secret="very-secret", portal="acme.bitrix24.ru")
    )
    assert settings.uses_oauth and settings.domain == "acme.bitrix24.ru"
    with pytest.raises(ValidationError, match="client_id, client_secret and portal"):
        Bitrix24Settings.model_validate(dict(client_id="app.1", client_secret="very-secret"))


def test_nothing_to_connect_with_is_refused() -> None:
    with pytest.raises(ValidationError, match="set webhook_url"):
        Bitrix24Settings.model_validate({})


@pytest.mark.parametrize(
    "url", ["https://acme.bitrix24.ru/rest/q1w2e3r4t5y6u7i8/", "acme.bitrix24.ru/rest/1/q1w2e3r4t5y6u7i8"]
)
def test_malformed_webhook_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Bitrix24Settings.model_validate(dict(webhook_url=url))
    assert "q1w2e3r4t5y6u7i8" not in str(caught.value)
    assert "https://<portal>/rest/<user_id>/<code>/" in str(caught.value)


def test_bad_rate_limit_is_explained() -> None:
    with pytest.raises(ValidationError, match="2/s burst 50"):
        Bitrix24Settings.model_validate(dict(webhook_url=WEBHOOK, rate_limit="fast please"))
