"""`hub excel import`: a messy Russian list becomes clients found by phone and e-mail, once, whatever happens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from excel_hub import PLUGINS, excel_hub, snapshot
from excel_workbooks import set_cached_values, write_csv, write_ole, write_xlsx
from openpyxl import Workbook, load_workbook

from crm_hub_plugins.excel.apply import run_import
from hub.core.events import ClientView

TITLE = ["Клиенты отдела продаж на 01.03.2024", None, None, None, None, None, None]
HEADER = ["ФИО", "Тел.", "Почта", "Организация", "ИНН", "Дата", "Комментарий"]
PEOPLE: list[list[object]] = [
    ["Иванов Иван Иванович", 79161234567.0, "Ivan@Mail.RU", "ООО Ромашка", "7707083893", 45352, "VIP"],
    ["Петрова Анна Сергеевна", "8 (916) 222-33-44, +7 495 123 45 67", "", "ООО Ромашка", 7707083893, None, ""],
    ["Сидоров Пётр", "", "petr@example.com", "АО Вектор", 274062111.0, None, ""],
    ["", "123-45-67", "", "", "", None, "только местный номер"],
    ["Иванов Иван", "+7 916 123-45-67", "ivan.work@mail.ru", "", "", None, ""],
]


def russian_list(path: Path, people: list[list[object]] = PEOPLE) -> Path:
    return write_xlsx(path, [TITLE, [], HEADER, *people], merged=["A1:G1"])


def company_of(hub, client: ClientView) -> ClientView:
    assert client.company_id is not None, client
    return hub.get_client(client.company_id)


def test_a_russian_list_becomes_clients_found_by_phone_and_email(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    path = russian_list(tmp_path / "клиенты.xlsx")
    summary = env.import_json(path)
    assert summary["rows read"] == 5
    assert summary["duplicates in file"] == 1  # "Иванов Иван" shares Ivanov's mobile
    assert summary["rejected"] == 1
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (5, 0, 0)  # 3 people, 2 companies

    hub = env.hub
    (ivanov,) = hub.find_clients(phone="8 916 123-45-67")
    assert ivanov.name == "Иванов Иван Иванович"
    assert ivanov.phones == ["+79161234567"]
    assert ivanov.emails == ["ivan@mail.ru", "ivan.work@mail.ru"]
    assert ivanov.fields["date"] == "2024-03-01" and ivanov.fields["comment"] == "VIP"
    assert [c.id for c in hub.find_clients(email="IVAN.WORK@mail.ru")] == [ivanov.id]
    (petrova,) = hub.find_clients(phone="+74951234567")
    assert petrova.name == "Петрова Анна Сергеевна"
    romashka = company_of(hub, ivanov)
    assert romashka.kind == "company" and romashka.name == "ООО Ромашка"
    assert company_of(hub, petrova).id == romashka.id  # the INN written as a number is the same company
    (sidorov,) = hub.find_clients(email="petr@example.com")
    assert company_of(hub, sidorov).name == "АО Вектор"  # INN 0274062111 lost its leading zero in Excel

    rejected = tmp_path / "клиенты.rejected.xlsx"
    sheet = load_workbook(rejected).active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:3] == ["Причина / Reason", "Строка / Row", "ФИО"]
    assert rows[1][1] == 7 and "7 digits" in rows[1][0] and rows[1][3] == "123-45-67"


def test_importing_the_same_file_again_changes_nothing(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    path = russian_list(tmp_path / "clients.xlsx")
    env.import_json(path)
    before, events = snapshot(env.hub), env.events
    again = env.import_json(path)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 5)
    assert again["merge candidates"] == 0
    assert env.events == events  # no event, so no sink hears of it again
    assert snapshot(env.hub) == before


def test_a_dry_run_shows_the_layout_and_the_counts_and_writes_nothing(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    path = russian_list(tmp_path / "clients.xlsx")
    result = env.cli("excel", "import", path, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dry run" in out and "nothing was written" in out
    assert "header row 3" in out and "A (ФИО) → name" in out and "B (Тел.) → phone" in out
    assert "row 7:" in out and "7 digits" in out
    assert env.clients == 0 and env.events == 0
    assert not (tmp_path / "clients.rejected.xlsx").exists()


def test_rejected_rows_go_where_asked_and_the_output_names_the_file(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    target = tmp_path / "fix-me.xlsx"
    result = env.cli("excel", "import", russian_list(tmp_path / "clients.xlsx"), "--rejected", target)
    assert result.exit_code == 0, result.output
    assert "1 rows not imported" in result.stdout and str(target) in result.stdout.replace("\n", "")
    assert target.exists() and not (tmp_path / "clients.rejected.xlsx").exists()


def test_an_interrupted_import_run_again_ends_as_a_clean_one(backend, monkeypatch, tmp_path: Path) -> None:
    people: list[list[object]] = [
        [f"Клиент Номер{i}", f"+7916{i:07d}", f"client{i}@example.ru", f"ООО Фирма {i % 4}", "", None, ""]
        for i in range(60)
    ]
    path = russian_list(tmp_path / "big.xlsx", people)
    env = excel_hub(backend, monkeypatch)

    class Stop(Exception):
        pass

    chunks = []

    def stop_after_three(total: int, advanced: int) -> None:
        chunks.append(advanced)
        if len(chunks) == 3:
            raise Stop

    with pytest.raises(Stop):
        run_import(env.hub, path, chunk_size=10, applying=stop_after_three)
    assert env.hub.find_clients(phone="+79160000000") and not env.hub.find_clients(phone="+79160000059")
    resumed = run_import(env.hub, path, chunk_size=10)
    # the 4 companies (no INN) came in with the first people naming them, before the stop
    assert resumed.plan.unchanged == 30 and resumed.plan.created == 30 and resumed.plan.updated == 0

    reference = backend.hub(PLUGINS, database_url=f"sqlite:///{tmp_path / 'clean.db'}")
    run_import(reference, path, chunk_size=10)
    assert snapshot(env.hub) == snapshot(reference)
    assert env.clients == len(snapshot(reference)) == 64  # 60 people and 4 companies, no duplicate


def test_a_company_in_two_files_with_one_inn_is_one_client(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    first = write_xlsx(
        tmp_path / "выставка.xlsx", [HEADER, ["Иванов Иван", "+79161234567", "", "ООО Ромашка", "7707083893"]]
    )
    second = write_csv(
        tmp_path / "из_1с.csv",
        [["Контакт", "Телефон", "Контрагент", "ИНН"], ["Петров Пётр", "+79162223344", 'ООО "Ромашка"', "7707083893"]],
    )
    env.import_json(first)
    env.import_json(second)
    (ivanov,) = env.hub.find_clients(phone="+79161234567")
    (petrov,) = env.hub.find_clients(phone="+79162223344")
    assert ivanov.company_id == petrov.company_id
    companies = [c for c in env.hub.iter_clients() if c.kind == "company"]
    assert len(companies) == 1
    assert {r.account for r in companies[0].refs} == {"выставка", "из_1с"}


def test_messy_cells_are_read_as_a_person_reads_them(backend, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(backend, monkeypatch)
    book = tmp_path / "messy.xlsx"
    write_xlsx(
        book,
        [
            ["ФИО", "Телефон", "Почта", "Дата"],
            ["Отдел продаж: Смирнова Ольга", None, "olga@example.ru", None],  # merged across B1:B3 below
            ["Кузнецов Алексей", "=7*10^10+9165554433", '=LOWER("ALEX@EXAMPLE.RU")', 45000],
            ["Попов Дмитрий", 7.9163334455e10, None, "01.03.2024"],
        ],
        merged=["C5:C6"],
    )
    set_cached_values(book, {"B3": 79165554433, "C3": "alex@example.ru"})
    env.import_json(book)
    (kuznetsov,) = env.hub.find_clients(phone="+79165554433")
    assert (kuznetsov.name, kuznetsov.emails) == ("Кузнецов Алексей", ["alex@example.ru"])
    assert kuznetsov.fields["date"] == "2023-03-15"
    (popov,) = env.hub.find_clients(phone="8 916 333-44-55")
    assert popov.fields["date"] == "2024-03-01"

    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(
        "ФИО;Телефон\r\n".encode()
        + "Ёлкина Юлия;+79167778899\r\n".encode()
        + "Щукин Эдуард;+79168889900\r\n".encode("cp1251")
    )
    result = env.cli("excel", "import", mixed)
    assert result.exit_code == 0, result.output
    assert "mixed encodings" in result.stdout
    assert env.hub.find_clients(phone="+79167778899")[0].name == "Ёлкина Юлия"
    assert env.hub.find_clients(phone="+79168889900")[0].name == "Щукин Эдуард"


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("notes.xlsx", lambda p: p.write_text("just some text, not a workbook\n"), "plain text file"),
        ("cut.xlsx", lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 40), "damaged or truncated"),
        ("locked.xlsx", lambda p: write_ole(p, ["EncryptionInfo", "EncryptedPackage"]), "password-protected"),
        ("report.docx", lambda p: p.write_bytes(b"%PDF-1.7\n\x00\x01binary"), "binary file"),
        ("empty.xlsx", lambda p: Workbook().save(p), "is empty"),
        ("missing.xlsx", lambda p: None, "no such file"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_with_a_message_and_nothing_imported(
    embedded,
    monkeypatch,
    tmp_path: Path,
    name: str,
    make,
    message: str,
) -> None:
    env = excel_hub(embedded, monkeypatch)
    path = tmp_path / name
    make(path)
    result = env.cli("excel", "import", path)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert env.clients == 0 and not (tmp_path / f"{path.stem}.rejected.xlsx").exists()


def test_a_bad_mapping_file_is_named_in_the_message(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[columns]\n"ФИО" = "surname_and_more"\n', encoding="utf-8")
    result = env.cli("excel", "import", russian_list(tmp_path / "clients.xlsx"), "--mapping", mapping)
    assert result.exit_code != 0 and "mapping.toml" in result.output and "not a hub field" in result.output
    assert env.clients == 0


def test_two_people_sharing_an_office_phone_stay_two_clients_across_imports(
    backend, monkeypatch, tmp_path: Path
) -> None:
    env = excel_hub(backend, monkeypatch)
    office: list[list[object]] = [
        ["Петров Пётр", "+74951234567", "petrov@firm.ru", "ООО Ромашка", "", None, ""],
        ["Иванов Иван", "+74951234567", "", "ООО Ромашка", "", None, ""],
    ]
    path = russian_list(tmp_path / "office.xlsx", office)
    first = env.import_json(path)
    assert first["created"] == 3 and first["notes"] == 1  # two people and their company; the note: who kept the phone
    (ivanov,) = env.hub.find_clients(phone="+74951234567")
    assert ivanov.name == "Иванов Иван"  # the first name in alphabetical order keeps the shared number
    assert env.hub.find_clients(email="petrov@firm.ru")[0].phones == []
    again = env.import_json(path)
    assert (again["created"], again["updated"]) == (0, 0)


def test_import_progress_is_logged_off_a_terminal_and_never_mixed_into_stdout(
    embedded, monkeypatch, tmp_path: Path
) -> None:
    env = excel_hub(embedded, monkeypatch)
    result = env.cli("excel", "import", russian_list(tmp_path / "clients.xlsx"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["created"] == 5  # stdout holds the report and nothing else
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    finished = {e["task"]: e for e in logged if e["event"] == "progress finished"}
    assert finished["reading rows"]["done"] == finished["reading rows"]["total"] == 8
    assert finished["applying clients"]["done"] == finished["applying clients"]["total"] == 5
