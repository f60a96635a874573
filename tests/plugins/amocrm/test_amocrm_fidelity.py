"""Fidelity: the third-party `amocrm-api` library (amocrm.v2) drives the sandbox over a real loopback port.

The library builds every URL as ``https://<subdomain>.amocrm.ru``. It takes its HTTP session and token manager
as constructor arguments (``GenericInteraction(token_manager=..., session=...)``), so a requests session that
sends those URLs to the sandbox is the only adaptation; the library's own code runs unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from amocrm_testing import Running

requests = pytest.importorskip("requests")
amocrm_v2 = pytest.importorskip("amocrm.v2")

from amocrm.v2 import Contact  # noqa: E402
from amocrm.v2.entity.contact import ContactsInteraction  # noqa: E402
from amocrm.v2.interaction import GenericInteraction  # noqa: E402
from amocrm.v2.manager import Manager  # noqa: E402
from amocrm.v2.tokens import MemoryTokensStorage, TokenManager  # noqa: E402

from crm_hub_plugins.amocrm.client import OAuthSession  # noqa: E402


class LoopbackSession(requests.Session):  # type: ignore[name-defined]
    """Sends ``https://<subdomain>.amocrm.ru/...`` to the sandbox on 127.0.0.1."""

    def __init__(self, subdomain: str, target: str) -> None:
        super().__init__()
        self.prefix, self.target = f"https://{subdomain}.amocrm.ru", target

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(self.prefix):
            url = self.target + url[len(self.prefix) :]
        return super().request(method, url, *args, **kwargs)


def token_manager(sandbox: Running, access_token: str) -> TokenManager:
    manager = TokenManager()
    storage = MemoryTokensStorage()
    opts = sandbox.sandbox.options
    manager(opts.client_id, opts.client_secret, opts.subdomain, opts.redirect_uri, storage=storage)
    storage.save_tokens(access_token, "unused")
    return manager


def contacts(sandbox: Running, manager: TokenManager) -> Manager:
    session = LoopbackSession(sandbox.sandbox.options.subdomain, sandbox.url)
    return Manager(ContactsInteraction(token_manager=manager, session=session), model=Contact)


def test_library_creates_lists_searches_and_updates_contacts_with_a_long_lived_token(sandbox: Running) -> None:
    objects = contacts(sandbox, token_manager(sandbox, sandbox.sandbox.long_lived_token))
    created = objects.create(name="Иван Петров")
    assert created.id in sandbox.sandbox.account.records["contacts"]
    sandbox.admin("seed", {"contacts": 300})
    everyone = list(objects.all())
    assert len(everyone) == 301 and everyone[0].name == "Иван Петров"  # two pages of 250, via _links.next
    assert [c.id for c in objects.filter(query="Петров")] == [created.id]
    objects.update(created.id, name="Иван Сидоров")
    assert objects.get(created.id).name == "Иван Сидоров"


def test_library_accepts_sandbox_oauth_tokens_and_reads_their_expiry(sandbox: Running) -> None:
    opts = sandbox.sandbox.options
    oauth = OAuthSession(
        sandbox.url,
        client_id=opts.client_id,
        client_secret=opts.client_secret,
        redirect_uri=opts.redirect_uri,
        on_tokens=lambda tokens: None,
    )
    tokens = oauth.exchange_code(sandbox.admin("oauth-code")["code"])
    manager = token_manager(sandbox, tokens.access_token)
    assert manager.get_access_token() == tokens.access_token  # a JWT whose exp the library can read
    objects = contacts(sandbox, manager)
    objects.create(name="Анна")
    assert [c.name for c in objects.all()] == ["Анна"]


def test_library_sees_an_empty_list_as_204(sandbox: Running) -> None:
    objects = contacts(sandbox, token_manager(sandbox, sandbox.sandbox.long_lived_token))
    assert list(objects.all()) == []


def test_library_generic_interaction_reads_leads_pipelines(sandbox: Running) -> None:
    session = LoopbackSession(sandbox.sandbox.options.subdomain, sandbox.url)
    manager = token_manager(sandbox, sandbox.sandbox.long_lived_token)
    pipelines = GenericInteraction(token_manager=manager, session=session, path="leads/pipelines", field="pipelines")
    names = [p["name"] for p in pipelines.get_all()]
    assert names == ["Воронка", "Партнёры"]
