"""Dead letters at volume: pages and filters (sink, error kind, age), one line a letter off a terminal, --json,
replay and discard by filter; a letter's error tells how it ended, not that it "will retry"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from hub.cli import cli
from hub.core import schema as s
from hub.core.dlq import dead_letter_error, record_dead_letter
from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.events import ClientObservation, SourceRef
from hub.core.plugins import PluginHost
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin


@pytest.fixture
def run_cli(backend, monkeypatch):
    for key, value in backend.env().items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), obj=PluginHost(autoload=False), input=input, catch_exceptions=False)

    return invoke


def fill(hub, letters: list[tuple[str, BaseException, timedelta]]) -> None:
    """Dead letters as the workers write them, each of some age."""
    with hub.store.write() as conn:
        for i, (queue, exc, _age) in enumerate(letters):
            record_dead_letter(
                conn,
                queue=queue,
                payload="{}",
                error=dead_letter_error(exc, 8),
                attempts=8,
                context={},
                event_id=f"e{i}",
            )
        now = datetime.now(UTC)
        for i, (_queue, _exc, age) in enumerate(letters):
            conn.execute(
                update(s.dead_letters).where(s.dead_letters.c.event_id == f"e{i}").values(created_at=now - age)
            )


def volume(hub) -> None:
    down = ExternalAPIError("amoCRM /api/v4/leads failed on amoCRM's side (502: bad gateway); will retry")
    fill(
        hub,
        [("amocrm:acme", down, timedelta(hours=3))] * 120
        + [("bitrix24:acme", FatalDelivery("contact rejected: PHONE invalid"), timedelta(minutes=5))] * 30
        + [("inbox:bitrix24.event", ValueError("no such entity"), timedelta(days=2))] * 5,
    )


def test_list_pages_through_every_letter_once(backend, run_cli):
    volume(backend.hub())
    seen: list[int] = []
    after = 0
    while True:
        result = run_cli("dlq", "list", "--limit", "40", "--after", str(after))
        lines = result.stdout.splitlines()
        if not lines:
            break
        seen += [int(line.split("\t")[0]) for line in lines]
        after = seen[-1]
    assert len(seen) == 155 and len(set(seen)) == 155 and seen == sorted(seen)


def test_off_a_terminal_it_is_one_line_a_letter(backend, run_cli):
    volume(backend.hub())
    result = run_cli("dlq", "list", "--sink", "bitrix24:acme", "--limit", "1000")
    lines = result.stdout.splitlines()
    assert len(lines) == 30
    fields = lines[0].split("\t")
    assert fields[1] == "bitrix24:acme" and fields[2] == "open" and fields[5] == "FatalDelivery"
    assert "more:" not in result.stdout  # paging hints go to stderr


def test_filters_by_kind_and_age_with_json(backend, run_cli):
    volume(backend.hub())
    api = json.loads(run_cli("dlq", "list", "--kind", "ExternalAPIError", "--limit", "1000", "--json").stdout)
    assert len(api) == 120 and {d["queue"] for d in api} == {"amocrm:acme"}
    old = json.loads(run_cli("dlq", "list", "--older-than", "1d", "--json").stdout)
    assert [d["queue"] for d in old] == ["inbox:bitrix24.event"] * 5 and old[0]["kind"] == "ValueError"
    recent = json.loads(run_cli("dlq", "list", "--newer-than", "1h", "--limit", "1000", "--json").stdout)
    assert {d["kind"] for d in recent} == {"FatalDelivery"} and len(recent) == 30


def test_the_error_says_how_it_ended_not_will_retry(backend, run_cli):
    volume(backend.hub())
    letter = json.loads(run_cli("dlq", "list", "--kind", "ExternalAPIError", "--limit", "1", "--json").stdout)[0]
    assert "will retry" not in letter["error"]
    assert letter["error"].endswith("(502: bad gateway) (gave up after 8 attempts)")


def test_discard_by_filter_and_the_rest_stays(backend, run_cli):
    hub = backend.hub()
    volume(hub)
    assert run_cli("dlq", "discard", "--kind", "FatalDelivery").exit_code == 2  # off a terminal: needs --yes
    assert "30 dead letter(s) discarded" in run_cli("dlq", "discard", "--kind", "FatalDelivery", "--yes").stdout
    assert hub.dlq.count() == 125
    assert run_cli("dlq", "discard").exit_code == 2  # nothing given: nothing touched
    assert hub.dlq.count() == 125


def test_replay_by_filter_delivers_only_those(backend, run_cli):
    crm, other = RecordingSink("crm", "bitrix24"), RecordingSink("other", "amocrm")
    crm.fail_times = other.fail_times = 10**6
    hub = backend.hub([("s", SinkPlugin(crm, other))], sink={"max_attempts": 1})
    hub.start("all")
    for i in range(3):
        hub.ingest(
            ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), phones=[f"+791612345{i:02d}"])
        )
    wait_for(lambda: hub.dlq.count() == 6)
    error = hub.dlq.list(limit=1)[0].error
    assert error == "ExternalAPIError: remote is down (test) (gave up after 1 attempt)"
    crm.fail_times = 0
    assert "3 dead letter(s) replayed" in run_cli("dlq", "replay", "--sink", "crm").stdout
    wait_for(lambda: len(crm.event_ids()) == 3)
    assert hub.dlq.count() == 3 and {d.queue for d in hub.dlq.list()} == {"other"}
