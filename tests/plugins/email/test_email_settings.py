"""Email settings: one mailbox from HUB_EMAIL__*, more from [[email.mailboxes]], safe defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_hub_plugins.email.connection import accounts
from crm_hub_plugins.email.settings import EmailSection, ImapSettings
from hub.core.errors import ConfigError


def _hub(embedded: Any, **overrides: Any) -> Any:
    import crm_hub_plugins.email.plugin

    return embedded.hub([("email", crm_hub_plugins.email.plugin)], **overrides)


def test_one_mailbox_from_the_environment(embedded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_EMAIL__IMAP__HOST", "imap.yandex.ru")
    monkeypatch.setenv("HUB_EMAIL__IMAP__USERNAME", "Sales@Firma.ru")
    monkeypatch.setenv("HUB_EMAIL__IMAP__PASSWORD", "app-password-1")
    monkeypatch.setenv("HUB_EMAIL__IMAP__FOLDERS", '["INBOX", "Отправленные"]')
    monkeypatch.setenv("HUB_EMAIL__COMPANY_ADDRESSES", '["boss@firma.ru"]')
    monkeypatch.setenv("HUB_EMAIL__COMPANY_DOMAINS", '["firma.ru", "почта.рф"]')
    hub = _hub(embedded)
    [account] = list(accounts(hub))
    imap = account.settings.imap
    assert (imap.security, imap.effective_port, imap.folders) == ("tls", 993, ["INBOX", "Отправленные"])
    assert account.key == "sales@firma.ru"
    assert account.company.owns("SALES@firma.ru") and account.company.owns("boss@FIRMA.ru")
    assert account.company.owns("info@xn--80a1acny.xn--p1ai")  # IDN domain in its punycode form
    assert not account.company.owns("client@romashka.ru")
    assert "app-password-1" not in str(hub.health())


def test_several_mailboxes_as_toml_tables(embedded: Any, tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text(
        """
[email]
company_domains = ["firma.ru"]

[[email.mailboxes]]
name = "sales"
imap = { host = "imap.firma.ru", username = "sales@firma.ru", password = "one-pass", security = "starttls" }
smtp = { host = "smtp.firma.ru", username = "sales@firma.ru", password = "one-pass", security = "starttls" }

[[email.mailboxes]]
name = "support"
imap = { host = "imap.firma.ru", username = "support@firma.ru", password = "two-pass" }
""",
        encoding="utf-8",
    )
    hub = _hub(embedded, config_file=toml)
    found = accounts(hub)
    assert sorted(found.by_key) == ["sales", "support"]
    assert found.get("sales").settings.imap.effective_port == 143
    assert found.get("sales").settings.smtp.effective_port == 587  # type: ignore[union-attr]
    assert found.get("support").company.owns("anyone@firma.ru")
    with pytest.raises(ConfigError, match="several email accounts"):
        found.get()


def test_plain_text_is_refused_beyond_loopback_unless_confirmed() -> None:
    with pytest.raises(ValueError, match="allow_plaintext"):
        ImapSettings(host="imap.firma.ru", username="a@firma.ru", password="x", security="none")
    ImapSettings(host="imap.firma.ru", username="a@firma.ru", password="x", security="none", allow_plaintext=True)
    ImapSettings(host="127.0.0.1", username="a@firma.ru", password="x", security="none")


def test_the_same_mailbox_twice_is_refused() -> None:
    box = {"imap": {"host": "h.ru", "username": "a@firma.ru", "password": "x"}}
    with pytest.raises(ValueError, match="configured twice"):
        EmailSection.model_validate({"mailboxes": [box, box]})
    with pytest.raises(ValueError, match="connect a mailbox once"):
        EmailSection.model_validate({"mailboxes": [{**box, "name": "one"}, {**box, "name": "two"}]})


def test_an_unconfigured_plugin_does_not_stop_the_hub(embedded: Any) -> None:
    hub = _hub(embedded)
    hub.prepare()
    assert len(accounts(hub)) == 0
    assert "email" not in hub.health()["plugins"]
