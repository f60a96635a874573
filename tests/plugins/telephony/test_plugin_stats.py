"""Call statistics from the timeline: GET /api/calls/stats and `hub calls stats` count what was ingested."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from fastapi.testclient import TestClient

from crm_hub_plugins.telephony import plugin as telephony_plugin
from crm_hub_plugins.telephony.calls import CallRecord, CallStatus, parse_number
from crm_hub_plugins.telephony.runtime import telephony
from hub.cli import build_cli
from hub.core.plugins import PluginHost
from hub.web.app import create_app

MSK = ZoneInfo("Europe/Moscow")


def call(call_id: str, direction: str, status: CallStatus, ext: str, phone: str, at: str, talk: int = 0) -> CallRecord:
    start = datetime.fromisoformat(at).replace(tzinfo=MSK)
    answered = start + timedelta(seconds=5) if status == "answered" else None
    return CallRecord(
        call_id=call_id,
        system="generic",
        direction=direction,  # type: ignore[arg-type]
        number=parse_number(phone),
        extension=ext,
        status=status,
        started_at=start,
        answered_at=answered,
        ended_at=(answered or start) + timedelta(seconds=talk or 20),
    )


CALLS = [
    call("c1", "in", "answered", "101", "+79160000011", "2025-11-17T10:00:00", talk=60),
    call("c2", "in", "missed", "101", "+79160000012", "2025-11-17T11:00:00"),  # nobody called back
    call("c3", "in", "no_answer", "102", "+79160000013", "2025-11-17T12:00:00"),
    call("c4", "out", "answered", "102", "+79160000013", "2025-11-18T09:00:00", talk=120),  # c3 returned next day
    call("c5", "out", "no_answer", "101", "+79160000011", "2025-11-18T01:30:00"),  # still the 17th in UTC
]


def rows(report: dict) -> dict[tuple[str, str, str], tuple[int, int, int, int, float]]:
    return {
        (r["day"], r["operator"], r["direction"]): (
            r["calls"], r["answered"], r["missed"], r["missed_not_called_back"], r["talk_s"]
        )
        for r in report["rows"]
    }  # fmt: skip


def test_stats_endpoint_and_cli_count_the_ingested_calls(telephony_hub, backend, monkeypatch) -> None:
    hub = telephony_hub(extensions__101="Анна")
    hub.prepare()
    for record in CALLS + CALLS[:2]:  # a call reported twice counts once
        telephony(hub).intake.apply(record)
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    day = api.get("/api/calls/stats", params={"since": "2025-11-17", "until": "2025-11-17", "tz": "Europe/Moscow"})
    assert day.status_code == 200
    assert rows(day.json()) == {
        ("2025-11-17", "Анна", "in"): (2, 1, 1, 1, 60.0),
        ("2025-11-17", "102", "in"): (1, 0, 1, 0, 0.0),
    }
    assert day.json()["totals"] == {"calls": 3, "answered": 1, "missed": 2, "missed_not_called_back": 1, "talk_s": 60.0}
    utc = api.get("/api/calls/stats", params={"since": "2025-11-17", "until": "2025-11-17"}).json()
    assert rows(utc)[("2025-11-17", "Анна", "out")] == (1, 0, 1, 0, 0.0)
    bad = api.get("/api/calls/stats", params={"since": "yesterday"})
    assert bad.status_code == 422 and "not a date" in bad.json()["detail"]
    assert api.get("/api/calls/stats", params={"tz": "Mars/Olympus"}).status_code == 422

    for key, value in backend.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    host = PluginHost(autoload=False, extra=[("telephony", telephony_plugin)])
    cli = build_cli(host)
    args = ["calls", "stats", "--since", "2025-11-17", "--until", "2025-11-18", "--tz", "Europe/Moscow"]
    result = CliRunner().invoke(cli, [*args, "--json"], obj=host, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    two_days = rows(json.loads(result.stdout))
    assert two_days[("2025-11-18", "102", "out")] == (1, 1, 0, 0, 120.0)
    assert two_days[("2025-11-18", "Анна", "out")] == (1, 0, 1, 0, 0.0)
    table = CliRunner().invoke(cli, args, obj=host, catch_exceptions=False).stdout
    assert "Анна" in table and "0:01:00" in table and "0:02:00" in table
    total = next(line for line in table.splitlines() if "total" in line).split("│")
    assert [cell.strip() for cell in total[4:8]] == ["5", "2", "3", "1"]
