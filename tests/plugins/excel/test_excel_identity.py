"""Identity on messy client lists: against a generated base with a known truth, across formats and files."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from excel_hub import PLUGINS, ExcelHub, excel_hub, snapshot
from excel_workbooks import write_xlsx
from messy_base import MessyBase, generate, score
from openpyxl import load_workbook

from crm_hub_plugins.excel.apply import run_import
from hub.core import schema as s
from tests.conftest import Backend

ROWS = 2000
HEADER = ["ФИО", "Телефон", "E-mail", "Организация", "ИНН"]


@pytest.fixture(scope="module")
def base() -> MessyBase:
    return generate(ROWS)


@pytest.fixture(scope="module")
def base_imported(tmp_path_factory: pytest.TempPathFactory, base: MessyBase) -> Path:
    """A hub database holding the base imported once from .xlsx, copied by each test that starts from it."""
    folder = tmp_path_factory.mktemp("base-imported")
    backend = Backend("embedded", folder)
    try:
        run_import(backend.hub(PLUGINS), base.write_xlsx(folder / "base.xlsx"))
    finally:
        backend.close()
    return folder / "hub.db"


def imported(env: ExcelHub, path: Path) -> dict[str, int]:
    outcome = run_import(env.hub, path)
    assert not outcome.refused
    return {k: v for k, v in outcome.summary().items() if isinstance(v, int) and not isinstance(v, bool)}


# --- the generated base -------------------------------------------------------------------------------------


def test_the_generator_is_seeded_and_deterministic() -> None:
    one, two, other = generate(300, seed=3), generate(300, seed=3), generate(300, seed=4)
    assert one.table() == two.table() and one.persons == two.persons
    assert one.table() != other.table()
    assert len(one.rows) == 300
    variant = generate(300, seed=3, variant=1)
    assert variant.persons == one.persons and variant.table() != one.table()


def test_the_base_holds_the_defects_lists_have(base: MessyBase) -> None:
    cells = [c for r in base.rows for c in r.cells]
    text = "\n".join(str(c) for c in cells)
    assert any(isinstance(c, float) for c in cells)  # phones and INNs as number cells
    for defect in ("\u00a0", "\u200b", "\t", "доб", "вн.", "«", "Общество с ограниченной ответственностью", "Итого"):
        assert defect in text, defect
    assert any(len(str(c)) == 9 and str(c).isdigit() for r in base.rows for c in r.cells[4:5])  # INN lost its 0
    assert len({(p.last, p.first, p.middle) for p in base.persons}) < len(base.persons)  # namesakes


def test_a_messy_base_of_2000_rows_gives_each_true_person_and_inn_company_once(
    embedded, monkeypatch, tmp_path: Path, base: MessyBase
) -> None:
    env = excel_hub(embedded, monkeypatch)
    counts = imported(env, base.write_xlsx(tmp_path / "base.xlsx"))
    result = score(base, env.hub)
    assert result.persons_split == 0 and result.persons_merged_wrongly == 0
    assert result.persons_hub == result.persons_true
    assert result.person_precision == result.person_recall == 1.0
    assert result.inn_companies_exact == result.companies_with_inn
    assert result.company_precision == 1.0  # no two true companies silently made one
    assert result.junk_clients == 0
    # spellings of a company without an INN stay apart, each suggested to a person as the same company
    assert result.merge_candidates == result.true_candidates > 0
    assert counts["rejected"] == sum(1 for r in base.rows if r.person is None and str(r.cells[0]).strip())


def _libreoffice_round_trip(source: Path, target: Path) -> Path:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed here (apt-get install libreoffice-calc-nogui)")
    out = target.parent / "lo"
    subprocess.run(
        [soffice, "--headless", f"-env:UserInstallation=file://{target.parent / 'lo-profile'}", "--convert-to",
         target.suffix.lstrip("."), "--outdir", str(out), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    return (out / f"{source.stem}{target.suffix}").rename(target)


FORMATS: dict[str, Callable[[MessyBase, Path], Path]] = {
    "xlsx again": lambda b, d: b.write_xlsx(d / "base.xlsx"),
    "xlsm": lambda b, d: b.write_xlsx(d / "base.xlsm"),
    "xls": lambda b, d: b.write_xls(d / "base.xls"),
    "ods": lambda b, d: b.write_ods(d / "base.ods"),
    "cp1251 csv": lambda b, d: b.write_csv(d / "base.csv"),
    "utf-8 csv": lambda b, d: b.write_csv(d / "base.csv", encoding="utf-8-sig", delimiter=","),
    "csv from pandas (5058417129.0)": lambda b, d: b.write_csv(d / "base.csv", pandas=True),
    "LibreOffice round trip": lambda b, d: _libreoffice_round_trip(b.write_xlsx(d / "lo-in.xlsx"), d / "base.ods"),
}
SLOW = {"LibreOffice round trip"}  # LibreOffice takes ten seconds to start and convert


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FORMATS])
def test_the_same_people_from_another_format_change_nothing_and_emit_nothing(
    embedded, monkeypatch, tmp_path: Path, base: MessyBase, base_imported: Path, fmt: str
) -> None:
    shutil.copy(base_imported, tmp_path / "hub.db")
    env = excel_hub(embedded, monkeypatch)
    before, events = snapshot(env.hub), env.events
    assert events > 0
    again = tmp_path / "again"
    again.mkdir()
    counts = imported(env, FORMATS[fmt](base, again))
    assert (counts["created"], counts["updated"]) == (0, 0)
    assert env.events == events
    assert snapshot(env.hub) == before


def test_another_list_of_the_same_people_joins_them_without_duplicates(
    embedded, monkeypatch, tmp_path: Path, base: MessyBase, base_imported: Path
) -> None:
    shutil.copy(base_imported, tmp_path / "hub.db")
    env = excel_hub(embedded, monkeypatch)
    companies = score(base, env.hub).companies_hub
    other = generate(ROWS, variant=1)  # the same people, other rows and spellings
    counts = imported(env, other.write_csv(tmp_path / "выгрузка из 1С.csv"))
    assert counts["created"] == 0
    for which in (base, other):
        result = score(which, env.hub)
        assert result.persons_split == 0 and result.persons_merged_wrongly == 0
        assert result.persons_hub == result.persons_true
        assert result.inn_companies_exact == result.companies_with_inn
    assert score(other, env.hub).companies_hub == companies


# --- the rules, one by one ----------------------------------------------------------------------------------


def test_cells_padded_with_any_whitespace_are_read_as_their_value(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    path = write_xlsx(
        tmp_path / "padded.xlsx",
        [
            HEADER,
            [
                "\u200bИванов Иван\u00a0",
                " \t+7 916 123-45-67\u200b",
                "\tIvan@Mail.ru  ",
                "ООО Ромашка",
                " 7707083893\u00a0",
            ],
            ["Петров Пётр", "8\u00a0916\u00a0222\u00a033\u00a044\n", "\u200bpetrov@mail.ru\n", "", ""],
        ],
    )
    counts = imported(env, path)
    assert counts["notes"] == 0 and counts["rejected"] == 0
    (ivanov,) = env.hub.find_clients(phone="+79161234567")
    assert ivanov.name == "Иванов Иван" and ivanov.emails == ["ivan@mail.ru"]
    assert env.hub.get_client(ivanov.company_id or 0).name == "ООО Ромашка"
    (petrov,) = env.hub.find_clients(email="petrov@mail.ru")
    assert petrov.phones == ["+79162223344"]


def test_number_cells_and_float_text_are_the_digits_a_person_sees(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    path = write_xlsx(
        tmp_path / "numbers.xlsx",
        [
            HEADER,
            ["Иванов Иван", 79161234567.0, "", "ООО Атлант", 274062111.0],  # the INN 0274062111 lost its zero
            ["Петров Пётр", "79162223344.0", "", "Атлант, ООО", "274062111.0"],
            ["Сидоров Пётр", 89163334455, "", "АО Вектор", "5058417129.0"],
        ],
    )
    imported(env, path)
    (ivanov,) = env.hub.find_clients(phone="+79161234567")
    (petrov,) = env.hub.find_clients(phone="+79162223344")
    (sidorov,) = env.hub.find_clients(phone="+79163334455")
    assert ivanov.company_id == petrov.company_id
    atlant = env.hub.get_client(ivanov.company_id or 0)
    with env.hub.store.read() as conn:
        inns = {r.value for r in conn.execute(s.contact_points.select().where(s.contact_points.c.kind == "inn"))}
    assert inns == {"0274062111", "5058417129"}
    assert atlant.kind == "company" and sidorov.company_id != atlant.id


def test_several_phones_and_emails_in_one_cell_and_extensions_set_apart(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    path = write_xlsx(
        tmp_path / "many.xlsx",
        [
            HEADER,
            ["Иванов Иван", "+7 495 123-45-67 доб. 123 / 8 916 111-22-33", "a@x.ru; b@x.ru", "", ""],
            ["Петров Пётр", "8 (495) 765-43-21, вн. 12\n+7 916 222 33 44", "c@x.ru / d@x.ru", "", ""],
            ["Сидоров Пётр", "+7 916 333-44-55 ext 7, 89164445566 #8", "e@x.ru,f@x.ru\ng@x.ru", "", ""],
        ],
    )
    counts = imported(env, path)
    assert counts["notes"] == 0
    (ivanov,) = env.hub.find_clients(email="a@x.ru")
    assert ivanov.phones == ["+74951234567", "+79161112233"] and ivanov.emails == ["a@x.ru", "b@x.ru"]
    assert ivanov.fields["extension"] == "+74951234567 доб. 123"
    (petrov,) = env.hub.find_clients(email="d@x.ru")
    assert petrov.phones == ["+74957654321", "+79162223344"] and petrov.fields["extension"] == "+74957654321 доб. 12"
    (sidorov,) = env.hub.find_clients(email="g@x.ru")
    assert sidorov.phones == ["+79163334455", "+79164445566"]
    assert sidorov.fields["extension"] == "+79163334455 доб. 7; +79164445566 доб. 8"


def test_initials_typos_capitals_and_word_order_never_split_a_person(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    path = write_xlsx(
        tmp_path / "names.xlsx",
        [
            HEADER,
            ["Емельянова Людмила Сергеевна", "+7 916 123-45-67", "", "", ""],
            ["Емельянова Л.С.", "", "emelyanova@mail.ru", "", ""],
            ["ЕМЕЛЬЯНОВА ЛЮДМИЛА", "89161234567", "emelyanova@mail.ru", "", ""],
            ["Людмила Сергеевна Емельнова", "+79161234567", "", "", ""],  # a typo in the surname
            ["Л. С. Емельянова", "", "Emelyanova@Mail.ru", "", ""],
        ],
    )
    imported(env, path)
    people = [c for c in env.hub.iter_clients() if c.kind == "person"]
    assert len(people) == 1
    assert people[0].name == "Емельянова Людмила Сергеевна"
    assert people[0].phones == ["+79161234567"] and people[0].emails == ["emelyanova@mail.ru"]


def test_two_rows_with_different_typos_stay_one_person_when_a_third_spells_the_name_right(
    embedded, monkeypatch, tmp_path: Path
) -> None:
    # found at 100,000 rows: each typo is one edit from the right spelling, but two edits from the other typo;
    # both orders of the rows must give one person holding both phones, and no client left without contacts
    env = excel_hub(embedded, monkeypatch)
    rows = [
        ["ГЕАСИМОВ КОНСТАНТИН ГЕОРГИЕВИЧ", "8\xa0917\xa0441\xa034\xa050 / 8-812-587-38-99", "ivanov@", "", ""],
        ["Герасимов Константин Георгиевич", "8-917-441-34-50, 8 (812) 587-38-99\xa0", "", "", ""],
        ["Герасиомв Константин Георгиевич", "+7(917)4413450", "", "", ""],
        ["Герасимоов Константин Георгиевич", "79174413450", "", "", ""],
    ]
    imported(env, write_xlsx(tmp_path / "a.xlsx", [HEADER, *rows]))
    imported(env, write_xlsx(tmp_path / "b.xlsx", [HEADER, rows[0], rows[2], rows[3], rows[1]]))
    (person,) = [c for c in env.hub.iter_clients() if c.kind == "person"]
    assert sorted(person.phones) == ["+78125873899", "+79174413450"]
    assert person.name == "Герасимов Константин Георгиевич"


def test_a_later_list_in_initials_joins_the_person_and_keeps_the_full_name(
    embedded, monkeypatch, tmp_path: Path
) -> None:
    env = excel_hub(embedded, monkeypatch)
    imported(
        env, write_xlsx(tmp_path / "a.xlsx", [HEADER, ["Емельянова Людмила Сергеевна", "", "lud@mail.ru", "", ""]])
    )
    events = env.events
    counts = imported(env, write_xlsx(tmp_path / "b.xlsx", [HEADER, ["ЕМЕЛЬЯНОВА Л.С.", "", " lud@mail.ru\t", "", ""]]))
    assert (counts["created"], counts["updated"]) == (0, 0) and env.events == events
    (person,) = env.hub.find_clients(email="lud@mail.ru")
    assert person.name == "Емельянова Людмила Сергеевна" and person.fields["first_name"] == "Людмила"


def test_namesakes_without_a_shared_contact_stay_two_people(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    rows = [HEADER, ["Иванов Иван Иванович", "+79161234567", "", "", ""]]
    imported(env, write_xlsx(tmp_path / "a.xlsx", rows))
    imported(env, write_xlsx(tmp_path / "b.xlsx", [HEADER, ["Иванов Иван Иванович", "", "other@mail.ru", "", ""]]))
    imported(env, write_xlsx(tmp_path / "c.xlsx", [*rows, ["иванов иван иванович", "+79169990000", "", "", ""]]))
    assert len([c for c in env.hub.iter_clients() if c.kind == "person"]) == 3


def test_a_row_joins_the_person_any_of_its_contacts_belongs_to(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    imported(env, write_xlsx(tmp_path / "a.xlsx", [HEADER, ["Петров Пётр", "+79161234567", "", "", ""]]))
    imported(
        env, write_xlsx(tmp_path / "b.xlsx", [HEADER, ["Петров П.", "+79165550000, +79161234567", "p@x.ru", "", ""]])
    )
    imported(env, write_xlsx(tmp_path / "c.xlsx", [HEADER, ["Пётр Петров", "", "p@x.ru", "", ""]]))
    (person,) = [c for c in env.hub.iter_clients() if c.kind == "person"]
    assert person.phones == ["+79161234567", "+79165550000"] and person.emails == ["p@x.ru"]
    assert person.name == "Петров Пётр"


def test_one_phone_of_two_existing_clients_is_a_merge_candidate_not_a_merge(
    embedded, monkeypatch, tmp_path: Path
) -> None:
    env = excel_hub(embedded, monkeypatch)
    imported(env, write_xlsx(tmp_path / "a.xlsx", [HEADER, ["Петров Пётр", "+79161234567", "", "", ""]]))
    imported(env, write_xlsx(tmp_path / "b.xlsx", [HEADER, ["Петров Пётр", "", "p@x.ru", "", ""]]))
    counts = imported(env, write_xlsx(tmp_path / "c.xlsx", [HEADER, ["Петров Пётр", "+79161234567", "p@x.ru", "", ""]]))
    assert counts["created"] == 0 and counts["merge candidates"] == 1
    assert len([c for c in env.hub.iter_clients() if c.kind == "person"]) == 2


def test_one_inn_is_one_company_whatever_its_spelling(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    spellings = ["ООО «Атлант 2000»", "ООО Атлант 2000", 'Общество с ограниченной ответственностью "Атлант 2000"']
    rows = [[f"Клиент Номер{i}", f"+7916000000{i}", "", name, "5058417129"] for i, name in enumerate(spellings)]
    imported(env, write_xlsx(tmp_path / "a.xlsx", [HEADER, *rows]))
    imported(
        env,
        write_xlsx(
            tmp_path / "b.xlsx", [HEADER, ["Клиент Другой", "+79160000009", "", "атлант 2000, ооо", 5058417129]]
        ),
    )
    companies = [c for c in env.hub.iter_clients() if c.kind == "company"]
    assert len(companies) == 1 and companies[0].name in spellings
    assert {p.company_id for p in env.hub.iter_clients() if p.kind == "person"} == {companies[0].id}
    assert env.hub.merge_candidates() == []


def test_companies_without_an_inn_whose_names_match_are_merge_candidates(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    rows = [
        HEADER,
        ["Клиент Первый", "+79160000001", "", "ООО «Атлант 2000»", ""],
        ["Клиент Второй", "+79160000002", "", 'Общество с ограниченной ответственностью "Атлант 2000"', ""],
        ["Клиент Третий", "+79160000003", "", "Атлант 2000, ООО", ""],
        ["Клиент Четвёртый", "+79160000004", "", "ООО «Вектор»", "7707083893"],
        ["Клиент Пятый", "+79160000005", "", "АО Вектор", "0274062111"],  # another INN: surely another company
    ]
    imported(env, write_xlsx(tmp_path / "a.xlsx", rows))
    companies = {c.id: c.name for c in env.hub.iter_clients() if c.kind == "company"}
    assert len(companies) == 5  # nothing merged silently
    pairs = {frozenset((companies[c["client_id"]], companies[c["other_id"]])) for c in env.hub.merge_candidates()}
    atlant = [n for n in companies.values() if n and "Атлант" in n]
    assert pairs == {frozenset((a, b)) for a in atlant for b in atlant if a < b}


def test_totals_and_broken_rows_go_to_the_rejected_file_with_a_reason(embedded, monkeypatch, tmp_path: Path) -> None:
    env = excel_hub(embedded, monkeypatch)
    path = write_xlsx(
        tmp_path / "totals.xlsx",
        [
            HEADER,
            ["Иванов Иван", "+79161234567", "", "", ""],
            ["Итого", "", "", "", 1],
            ["", "123-45-67", "нет", "", ""],
            ["Петров Пётр", "", "p@x.ru", "", ""],
        ],
    )
    counts = imported(env, path)
    assert counts["rejected"] == 2 and counts["created"] == 2
    sheet = load_workbook(tmp_path / "totals.rejected.xlsx").active
    assert sheet is not None
    reasons = {row[1]: row[0] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert "totals row" in str(reasons[3])
    assert "7 digits" in str(reasons[4]) and "not a valid address" in str(reasons[4])
    assert {c.name for c in env.hub.iter_clients()} == {"Иванов Иван", "Петров Пётр"}


def test_a_known_persons_employer_spelt_anew_stays_the_same_company_unless_an_inn_says_otherwise(
    embedded, monkeypatch, tmp_path: Path
) -> None:
    env = excel_hub(embedded, monkeypatch)
    imported(env, write_xlsx(tmp_path / "a.xlsx", [HEADER, ["Петров Пётр", "+79161234567", "", "ООО «Атлант»", ""]]))
    (first,) = [c for c in env.hub.iter_clients() if c.kind == "company"]
    counts = imported(
        env, write_xlsx(tmp_path / "b.xlsx", [HEADER, ["Петров Пётр", "+79161234567", "", "Атлант, ООО", ""]])
    )
    assert counts["created"] == counts["updated"] == 0  # no second Атлант, no move
    imported(
        env, write_xlsx(tmp_path / "c.xlsx", [HEADER, ["Петров Пётр", "+79161234567", "", "ООО Атлант", "7707083893"]])
    )
    (person,) = env.hub.find_clients(phone="+79161234567")
    assert person.company_id != first.id  # the INN names a company for sure: the person works there now
    with env.hub.store.read() as conn:
        owner = conn.execute(
            s.contact_points.select().where(s.contact_points.c.kind == "inn", s.contact_points.c.value == "7707083893")
        ).first()
    assert owner is not None and owner.client_id == person.company_id
