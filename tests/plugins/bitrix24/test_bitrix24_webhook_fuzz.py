"""Any body sent to /webhooks/bitrix24 gets an answer below 500, and a refused one stores nothing (hypothesis)."""

from __future__ import annotations

from typing import Any

from bitrix24_testing import Wired
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.core import schema as s
from hub.web.app import create_app

ROUTE = "/webhooks/bitrix24"
FORM = {"content-type": "application/x-www-form-urlencoded"}
KEYS = st.sampled_from(
    ["event", "data[FIELDS][ID]", "ts", "auth[domain]", "auth[member_id]", "data[FIELDS]", "data", "a[]", "a[][]"]
) | st.text(alphabet="ab[]%&=", max_size=12)
VALUES = st.sampled_from(
    ["ONCRMCONTACTADD", "ONCRMDEALUPDATE", "ONCRMCONTACTDELETE", "1", "0", str(2**62), str(2**63), "-5", "", "１"]
) | st.text(max_size=20)


def inbox_count(hub: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.inbox)).scalar_one())


def test_any_body_gets_a_4xx_or_2xx_and_a_refused_one_stores_nothing(wired_embedded: Wired) -> None:
    hub = wired_embedded.hub()
    hub.prepare()
    token = wired_embedded.portal.sandbox.application_token

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        pairs=st.lists(st.tuples(KEYS, VALUES), max_size=8),
        signed=st.booleans(),
        raw=st.none() | st.binary(max_size=64),
    )
    def check(pairs: list[tuple[str, str]], signed: bool, raw: bytes | None) -> None:
        body = raw if raw is not None else "&".join(f"{k}={v}" for k, v in pairs).encode()
        if signed:
            body += f"&auth[application_token]={token}".encode()
        before = inbox_count(hub)
        answer = http.post(ROUTE, content=body, headers=FORM)
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert inbox_count(hub) == before

    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        check()


def test_a_ts_of_2_to_the_62_and_a_non_utf8_body_are_4xx(wired_embedded: Wired) -> None:
    hub = wired_embedded.hub()
    hub.prepare()
    token = wired_embedded.portal.sandbox.application_token
    signed = f"event=ONCRMCONTACTADD&data[FIELDS][ID]=1&auth[application_token]={token}"
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post(ROUTE, content=f"{signed}&ts={2**62}", headers=FORM).status_code == 400
        assert http.post(ROUTE, content=signed.encode() + b"&x=\xff\xfe", headers=FORM).status_code == 400
        deep = f'{{"event": "ONCRMCONTACTADD", "auth": {{"application_token": "{token}"}}, "x": {"[" * 100_000}'
        assert http.post(ROUTE, content=deep, headers=FORM).status_code == 400
    assert inbox_count(hub) == 0


def test_a_megabyte_of_appended_pairs_is_refused_without_decoding(wired_embedded: Wired) -> None:
    hub = wired_embedded.hub()
    hub.prepare()
    token = wired_embedded.portal.sandbox.application_token
    flood = "&".join(["a[]="] * 199_000)  # just under the 1 MB body limit
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post(ROUTE, content=flood, headers=FORM).status_code == 401
        answer = http.post(ROUTE, content=f"{flood}&auth[application_token]={token}", headers=FORM)
        assert answer.status_code == 400 and "more than 2000 key=value pairs" in answer.json()["detail"]
    assert inbox_count(hub) == 0
