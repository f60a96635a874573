"""Any body sent to the amoCRM webhook path gets an answer below 500, and a refused one stores nothing."""

from __future__ import annotations

from typing import Any

from amocrm_testing import WEBHOOK_SECRET, Connected
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.core import schema as s
from hub.web.app import create_app

ROUTE = f"/webhooks/amocrm/{WEBHOOK_SECRET}"
FORM = {"content-type": "application/x-www-form-urlencoded"}
KEYS = st.sampled_from(
    [
        "account[id]",
        "account[subdomain]",
        "contacts[add][0][id]",
        "contacts[update][0][id]",
        "contacts[note][0][note][id]",
        "contacts[note][0][note][type]",
        "contacts[note][0][note][type][x]",
        "leads[status][0][id]",
        "task[add][0][element_type]",
        "contacts[add][0][custom_fields][0][values][0]",
        "contacts[add][]",
        "contacts",
        "0",
    ]
) | st.text(alphabet="ab[]%&=0", max_size=12)
VALUES = st.sampled_from(["1", "12345", "", "abc", "company", str(2**63), "²"]) | st.text(max_size=20)


def inbox_count(hub: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.inbox)).scalar_one())


def test_any_body_gets_a_4xx_or_2xx_and_a_refused_one_stores_nothing(connected_embedded: Connected) -> None:
    hub = connected_embedded.hub()
    hub.prepare()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=8), raw=st.none() | st.binary(max_size=64))
    def check(pairs: list[tuple[str, str]], raw: bytes | None) -> None:
        body = raw if raw is not None else "&".join(f"{k}={v}" for k, v in pairs).encode()
        before = inbox_count(hub)
        answer = http.post(ROUTE, content=body, headers=FORM)
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert inbox_count(hub) == before

    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        check()


def test_a_non_utf8_body_and_a_flood_of_pairs_are_4xx(connected_embedded: Connected) -> None:
    hub = connected_embedded.hub()
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post(ROUTE, content=b"contacts[add][0][id]=1&x=\xff\xfe", headers=FORM).status_code == 400
        assert http.post(ROUTE, content=b"contacts[add][0][id]=1&x=%ff", headers=FORM).status_code == 400
        flood = "&".join(["a[]="] * 199_000)  # just under the 1 MB body limit
        answer = http.post(ROUTE, content=flood, headers=FORM)
        assert answer.status_code == 400 and "more than 10000 key=value pairs" in answer.json()["detail"]
    assert inbox_count(hub) == 0
