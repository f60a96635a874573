"""The command line: find and show clients, ingest JSON Lines, operate dead letters and migrations."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from hub.cli import cli
from hub.core.events import ClientObservation, SourceRef
from hub.core.plugins import PluginHost
from hub.core.schema import metadata
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin


@pytest.fixture
def run_cli(backend, monkeypatch):
    for key, value in backend.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        result = runner.invoke(cli, list(args), obj=PluginHost(autoload=False), input=input, catch_exceptions=False)
        return result

    return invoke


def test_ingest_then_find_and_show_with_cyrillic(run_cli):
    lines = "\n".join(
        json.dumps(o, ensure_ascii=False)
        for o in [
            {
                "kind": "client",
                "source": {"system": "excel", "entity": "row", "id": "1"},
                "name": "Анна Смирнова",
                "phones": ["8 (916) 555-44-33"],
                "emails": ["Anna@Firma.ru"],
            },
            {
                "kind": "interaction",
                "channel": "email",
                "source": {"system": "mail", "entity": "msg", "id": "m1"},
                "client": {"emails": ["anna@firma.ru"]},
                "subject": "Коммерческое предложение",
                "direction": "in",
            },
            {"kind": "client", "source": {"system": "excel", "entity": "row", "id": "2"}, "phones": ["000"]},
        ]
    )
    result = run_cli("ingest", "-", input=lines)
    assert result.exit_code == 1  # one line was rejected, and said so
    assert "2 applied, 0 unchanged, 1 rejected" in result.output and "line 3" in result.output
    found = json.loads(run_cli("clients", "find", "--phone", "+79165554433", "--json").output)
    assert [c["name"] for c in found] == ["Анна Смирнова"]
    assert json.loads(run_cli("clients", "find", "--name", "смирнова", "--json").output)[0]["id"] == found[0]["id"]
    shown = json.loads(run_cli("clients", "show", str(found[0]["id"]), "--json").output)
    assert shown["timeline"][0]["fields"]["subject"] == "Коммерческое предложение"
    table = run_cli("clients", "show", str(found[0]["id"])).output
    assert "Анна Смирнова" in table and "Коммерческое предложение" in table


def test_show_unknown_client_is_a_clear_error(run_cli):
    result = run_cli("clients", "show", "4242")
    assert result.exit_code == 1 and "client 4242 does not exist" in result.output


def test_merge_unmerge_and_candidates(run_cli):
    run_cli(
        "ingest",
        "-",
        input="\n".join(
            json.dumps(o)
            for o in [
                {
                    "kind": "client",
                    "source": {"system": "b24", "entity": "c", "id": "1"},
                    "name": "A",
                    "phones": ["+79161111111"],
                },
                {
                    "kind": "client",
                    "source": {"system": "b24", "entity": "c", "id": "2"},
                    "name": "B",
                    "emails": ["b@x.ru"],
                },
                {"kind": "client", "source": {"system": "b24", "entity": "c", "id": "2"}, "phones": ["+79161111111"]},
            ]
        ),
    )
    candidates = json.loads(run_cli("clients", "candidates", "--json").output)
    assert [(c["client_id"], c["other_id"]) for c in candidates] == [(1, 2)]
    merged = run_cli("clients", "merge", "1", "2")
    assert "merged client 2 into 1" in merged.output
    assert run_cli("clients", "candidates", "--json").output.strip() == "[]"
    assert "undone" in run_cli("clients", "unmerge", "1").output


def test_dlq_list_show_replay(backend, run_cli):
    sink = RecordingSink("crm", "bitrix24")
    sink.fail_times = 10**6
    hub = backend.hub([("s", SinkPlugin(sink))], sink={"max_attempts": 1})
    hub.start("all")
    hub.ingest(ClientObservation(source=SourceRef(system="excel", entity="row", id="1"), phones=["+79161234567"]))
    wait_for(lambda: hub.dlq.list())
    listed = json.loads(run_cli("dlq", "list", "--json").stdout)
    assert listed[0]["queue"] == "crm" and "remote is down" in listed[0]["error"]
    shown = json.loads(run_cli("dlq", "show", str(listed[0]["id"])).stdout)
    assert shown["payload"]["type"] == "client.changed" and shown["context"]["sink"] == "crm"
    sink.fail_times = 0
    assert "1 dead letter(s) replayed" in run_cli("dlq", "replay", "--all").output
    wait_for(lambda: len(sink.event_ids()) == 1)
    assert run_cli("dlq", "list").output.strip() == "no dead letters"
    assert run_cli("dlq", "replay").exit_code == 2


def test_db_upgrade_creates_the_schema_the_code_expects(backend, run_cli):
    from alembic.script import ScriptDirectory

    from hub.core.store import alembic_config

    head = ScriptDirectory.from_config(alembic_config(backend.database_url)).get_current_head()
    result = run_cli("db", "upgrade")
    assert f"database at revision {head}" in result.output
    assert run_cli("db", "current").output.strip() == head
    hub = backend.hub()
    tables = set(inspect(hub.store.engine).get_table_names())
    assert set(metadata.tables) <= tables


def test_migrations_match_the_schema_module(backend):
    """An autogenerate diff between the migrated database and schema.py must be empty."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from hub.core.schema import SEARCH_INDEX_TABLES

    def include_name(name, type_, _parents):  # the SQLite search index is a virtual table made by the migration
        return not (type_ == "table" and name in SEARCH_INDEX_TABLES)

    hub = backend.hub()
    with hub.store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, metadata)
    assert diff == []
