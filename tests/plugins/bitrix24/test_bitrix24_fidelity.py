"""Fidelity: the third-party client fast_bitrix24 drives the sandbox over a real port and gets correct results."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from bitrix24_testing import Portal
from fast_bitrix24 import BitrixAsync


class FastBitrix:
    """fast_bitrix24's async client, each call run on a fresh event loop (no dependence on a global loop)."""

    def __init__(self, portal: Portal) -> None:
        self._client = BitrixAsync(portal.webhook_url, verbose=False)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method: Callable[..., Coroutine[Any, Any, Any]] = getattr(self._client, name)
        return lambda *args, **kwargs: asyncio.run(method(*args, **kwargs))


def test_get_all_reads_every_contact(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(1_234)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rows = FastBitrix(portal).get_all("crm.contact.list", {"select": ["ID", "NAME", "PHONE"]})
    assert len(rows) == 1_234 and len({r["ID"] for r in rows}) == 1_234
    by_id = {r["ID"]: r for r in rows}
    assert by_id["17"]["NAME"] == "Контакт 17" and by_id["17"]["PHONE"][0]["VALUE"] == "+79160000017"
    assert portal.sandbox.requests == 2, "a first page, then one batch of 24 pages"


def test_get_all_with_a_filter(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(300)
    rows = FastBitrix(portal).get_all("crm.contact.list", {"filter": {">ID": 180}, "select": ["ID"]})
    assert sorted(int(r["ID"]) for r in rows) == list(range(181, 301))


def test_call_adds_one_and_many(portal: Portal) -> None:
    client = FastBitrix(portal)
    fields = {"NAME": "Иван", "LAST_NAME": "Петров", "PHONE": [{"VALUE": "+79161234567", "VALUE_TYPE": "WORK"}]}
    new_id = client.call("crm.contact.add", {"fields": fields})
    stored = portal.sandbox.crm.records["contact"][int(new_id)]
    assert (stored["NAME"], stored["PHONE"][0]["VALUE"]) == ("Иван", "+79161234567")
    many = client.call("crm.contact.add", [{"fields": {"NAME": f"Имя {i}"}} for i in range(60)])
    assert len(many) == 60 and len(set(many)) == 60
    # Two batches run concurrently, so the tuple follows their completion order: compare as sets.
    names = {portal.sandbox.crm.records["contact"][int(i)]["NAME"] for i in many}
    assert names == {f"Имя {i}" for i in range(60)}


def test_call_batch_with_references(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(2)
    result = FastBitrix(portal).call_batch(
        {
            "halt": 0,
            "cmd": {
                "company": "crm.company.add?fields[TITLE]=Ромашка",
                "link": "crm.contact.update?id=2&fields[COMPANY_ID]=$result[company]",
                "read": "crm.contact.get?id=2",
            },
        }
    )
    assert result["link"] is True
    assert result["read"]["COMPANY_ID"] == str(result["company"])


def test_get_by_id_reads_each_entity(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(3)
    got = FastBitrix(portal).get_by_ID("crm.contact.get", [1, 3])
    assert {key: value["NAME"] for key, value in got.items()} == {"1": "Контакт 1", "3": "Контакт 3"}
