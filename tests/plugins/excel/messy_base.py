"""A seeded, deterministic messy Russian client base with its known truth, and how to score an import against it.

``generate(rows, seed)`` draws true people (ФИО, phones, e-mails, an employer) and true companies (name, legal
form, maybe an INN), then writes each person as one or more rows the way real lists look: ФИО in capitals, with
ё as е, swapped order, initials or a typo; phones as number cells, with ``8``/``+7``, NBSP, tabs, zero-width
spaces, extensions and several to a cell; 7-digit local numbers; e-mails padded with spaces or tabs, in angle
brackets, two to a cell, beside garbage; INNs as numbers that lost their leading zero or as ``5058417129.0``
text; company names with «», quotes, case and legal forms spelled out; blank rows and "Итого" rows. Every row of a
person shows at least one of the person's valid phones or e-mails, so a correct import can find them all.

``score(base, hub)`` compares what a hub holds with the truth: people split and wrongly merged, companies with an
INN exact, and pairwise precision and recall of people and of companies.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.core import schema as s

HEADER = ["ФИО", "Телефон", "E-mail", "Организация", "ИНН", "Должность", "Комментарий"]

MALE_LAST = [
    "Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Васильев", "Соколов", "Михайлов", "Новиков",
    "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов",
    "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев",
    "Григорьев", "Романов", "Воробьёв", "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв",
    "Гусев", "Киселёв", "Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев",
    "Антонов", "Тарасов", "Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев", "Герасимов", "Богданов",
    "Осипов", "Сидоренков", "Матвеев", "Титов", "Марков", "Миронов", "Крылов", "Куликов", "Карпов", "Власов",
    "Мельников", "Денисов", "Гаврилов", "Тихонов", "Казаков", "Афанасьев", "Данилов", "Савельев", "Тимофеев",
    "Фомин", "Чернов", "Абрамов", "Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров", "Калинин", "Исаев",
    "Чернышёв", "Быков", "Маслов", "Родионов", "Коновалов", "Лазарев", "Воронин", "Климов", "Филатов", "Пономарёв",
    "Голубев", "Кудрявцев", "Прохоров", "Наумов", "Потапов", "Журавлёв", "Овчинников", "Трофимов", "Леонов",
    "Соболев", "Ермаков", "Колесников", "Гончаров", "Емельянов", "Никифоров", "Грачёв", "Котов", "Гришин",
]  # fmt: skip
UNGENDERED_LAST = ["Шевченко", "Ким", "Коваленко", "Бондаренко", "Лысенко", "Цой", "Мельниченко", "Гуревич"]
MALE_FIRST = [
    ("Александр", "Александров"), ("Алексей", "Алексеев"), ("Андрей", "Андреев"), ("Антон", "Антонов"),
    ("Артём", "Артёмов"), ("Борис", "Борисов"), ("Вадим", "Вадимов"), ("Валерий", "Валерьев"),
    ("Василий", "Васильев"), ("Виктор", "Викторов"), ("Владимир", "Владимиров"), ("Геннадий", "Геннадьев"),
    ("Георгий", "Георгиев"), ("Григорий", "Григорьев"), ("Денис", "Денисов"), ("Дмитрий", "Дмитриев"),
    ("Евгений", "Евгеньев"), ("Егор", "Егоров"), ("Иван", "Иванов"), ("Игорь", "Игорев"), ("Илья", "Ильин"),
    ("Кирилл", "Кириллов"), ("Константин", "Константинов"), ("Леонид", "Леонидов"), ("Максим", "Максимов"),
    ("Михаил", "Михайлов"), ("Никита", "Никитин"), ("Николай", "Николаев"), ("Олег", "Олегов"), ("Павел", "Павлов"),
    ("Пётр", "Петров"), ("Роман", "Романов"), ("Семён", "Семёнов"), ("Сергей", "Сергеев"), ("Степан", "Степанов"),
    ("Юрий", "Юрьев"), ("Ярослав", "Ярославов"), ("Фёдор", "Фёдоров"), ("Тимур", "Тимуров"), ("Руслан", "Русланов"),
]  # fmt: skip
PATRONYMIC_BASES = [base for _, base in MALE_FIRST if base.endswith(("ов", "ев", "ёв"))]
FEMALE_FIRST = [
    "Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Екатерина", "Юлия", "Анастасия",
    "Людмила", "Галина", "Марина", "Дарья", "Ксения", "Алёна", "Вера", "Надежда", "Любовь", "Валентина", "Полина",
    "Софья", "Виктория", "Евгения", "Жанна", "Лариса", "Нина", "Оксана", "Кристина", "Алина", "Яна", "Зоя", "Тамара",
]  # fmt: skip
COMPANY_WORDS = [
    "Атлант", "Ромашка", "Вектор", "Горизонт", "Меридиан", "Альянс", "Прогресс", "Восход", "Север", "Гарант",
    "Стройинвест", "Техносфера", "Энергия", "Импульс", "Сигма", "Омега", "Логистик", "Партнёр", "Квант", "Флагман",
    "Промснаб", "Авангард", "Монолит", "Эталон", "Спектр", "Фаворит", "Регион", "Навигатор", "Капитал", "Форвард",
    "Магистраль", "Профи", "Медиана", "Орбита", "Аврора", "Зенит", "Континент", "Лидер", "Паритет", "Стандарт",
]  # fmt: skip
SUFFIXES = ["", "", "", " 2000", " Плюс", "-М", " Групп", " Трейд", "-Сервис", " Юг", " СПб", " Девелопмент"]
LEGAL_FORMS = [
    ("ООО", "Общество с ограниченной ответственностью"),
    ("АО", "Акционерное общество"),
    ("ПАО", "Публичное акционерное общество"),
    ("ЗАО", "Закрытое акционерное общество"),
]
POSITIONS = ["менеджер", "директор", "бухгалтер", "главный инженер", "менеджер по закупкам", "", "", ""]
COMMENTS = ["перезвонить", "выставка 2024", "с сайта", "", "", "", "", "VIP"]
MAIL_DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru", "rambler.ru", "ya.ru"]
MOBILE_CODES = [903, 905, 906, 909, 910, 912, 915, 916, 917, 919, 920, 925, 926, 929, 950, 960, 963, 965, 977, 985]
CITY_CODES = [495, 499, 812, 343, 383, 846, 863]
GARBAGE_EMAILS = ["нет", "-", "не дал", "ivanov@", "@mail.ru", "info.mail.ru", "manager@mail", "почта@", "n/a"]
TOTALS = ["Итого", "ИТОГО:", "Итого по менеджеру", "Всего клиентов"]
ZERO_WIDTH = "\u200b"
NBSP = "\u00a0"
_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e e zh z i y k l m n o p r s t u f h ts ch sh sch - y - e yu ya".split(),  # noqa: SIM905
        strict=True,
    )
)
_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)


# --- the truth ------------------------------------------------------------------------------------------------


@dataclass
class TrueCompany:
    id: int
    name: str  # without legal form, e.g. "Атлант 2000"
    form: tuple[str, str]
    inn: str | None


@dataclass
class TruePerson:
    id: int
    last: str
    first: str
    middle: str
    phones: list[str]  # E.164
    emails: list[str]  # canonical
    company: int | None
    position: str


@dataclass
class Row:
    """One data row as written, with its truth: the person (None for a junk row) and the valid contacts it shows."""

    cells: list[object]
    person: int | None
    contacts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class MessyBase:
    seed: int
    persons: list[TruePerson]
    companies: list[TrueCompany]
    rows: list[Row]

    @property
    def person_rows(self) -> list[Row]:
        return [r for r in self.rows if r.person is not None]

    def table(self) -> list[list[object]]:
        """The sheet: a title, a blank row, the header, the data rows."""
        return [[f"Клиенты (выгрузка {self.seed})"], [], list(HEADER), *(list(r.cells) for r in self.rows)]

    def write_xlsx(self, path: Path) -> Path:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("Клиенты")
        for cells in self.table():
            sheet.append(cells)
        book.save(path)
        return path

    def write_xls(self, path: Path) -> Path:
        import xlwt

        book = xlwt.Workbook(encoding="utf-8")
        sheet = book.add_sheet("Клиенты")
        for r, cells in enumerate(self.table()):
            for c, value in enumerate(cells):
                if value not in (None, ""):
                    sheet.write(r, c, value)
        book.save(str(path))
        return path

    def write_ods(self, path: Path) -> Path:
        from odf.opendocument import OpenDocumentSpreadsheet
        from odf.table import Table, TableCell, TableRow
        from odf.text import P

        doc = OpenDocumentSpreadsheet()
        table = Table(name="Клиенты")
        for cells in self.table():
            row = TableRow()
            for value in cells:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    cell = TableCell(valuetype="float", value=value)
                    cell.addElement(P(text=str(value)))
                else:
                    cell = TableCell(valuetype="string")
                    for line in str(value or "").split("\n") if value not in (None, "") else []:
                        cell.addElement(P(text=line))
                row.addElement(cell)
            table.addElement(row)
        doc.spreadsheet.addElement(table)
        doc.save(str(path))
        return path

    def write_csv(self, path: Path, *, encoding: str = "cp1251", delimiter: str = ";", pandas: bool = False) -> Path:
        """As Russian Excel saves "CSV (разделители - запятые)": windows-1251, ``;``, numbers as shown.

        ``pandas=True`` writes number cells as a pandas float column does (``5058417129.0``). Characters the code
        page cannot hold (zero-width spaces) are dropped, as a user would see them: not at all.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        for cells in self.table():
            writer.writerow([_csv_text(value, pandas=pandas) for value in cells])
        text = buffer.getvalue()
        path.write_bytes(text.encode(encoding, errors="ignore"))
        return path


def _csv_text(value: object, *, pandas: bool) -> str:
    if isinstance(value, float):
        return repr(value) if pandas else (str(int(value)) if value.is_integer() else repr(value).replace(".", ","))
    if isinstance(value, int):
        return f"{value}.0" if pandas else str(value)
    return "" if value is None else str(value)


# --- generation -----------------------------------------------------------------------------------------------


def inn10(rng: random.Random, *, leading_zero: bool = False) -> str:
    region = rng.randrange(1, 10) if leading_zero else rng.randrange(10, 99)
    body = f"{region:02d}{rng.randrange(10**7):07d}"
    check = sum(int(d) * w for d, w in zip(body, _INN10, strict=True)) % 11 % 10
    return body + str(check)


def _translit(word: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in word.lower()).replace("-", "")


def _female(last: str) -> str:
    if last in UNGENDERED_LAST:
        return last
    return last + "а"


def _mobile(rng: random.Random, taken: set[str]) -> str:
    while True:
        number = f"+7{rng.choice(MOBILE_CODES)}{rng.randrange(10**7):07d}"
        if number not in taken:
            taken.add(number)
            return number


def _city(rng: random.Random, taken: set[str]) -> str:
    from hub.core.errors import BadInput
    from hub.core.identity import normalize_phone

    while True:
        code = rng.choice(CITY_CODES)
        number = f"+7{code}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
        try:
            valid = normalize_phone(number) == number
        except BadInput:
            valid = False
        if valid and number not in taken:
            taken.add(number)
            return number


def _companies(rng: random.Random, count: int) -> list[TrueCompany]:
    names: set[str] = set()
    companies = []
    while len(companies) < count:
        name = rng.choice(COMPANY_WORDS) + rng.choice(SUFFIXES)
        if len(names) < len(COMPANY_WORDS) * len(SUFFIXES) // 2:
            if name in names:
                continue
        else:
            name = f"{name} {len(companies)}"
        names.add(name)
        inn = inn10(rng, leading_zero=rng.random() < 0.15) if rng.random() < 0.75 else None
        form = LEGAL_FORMS[0] if rng.random() < 0.7 else rng.choice(LEGAL_FORMS[1:])
        companies.append(TrueCompany(len(companies), name, form, inn))
    return companies


def _persons(rng: random.Random, count: int, companies: list[TrueCompany]) -> list[TruePerson]:
    taken_phones: set[str] = set()
    taken_emails: set[str] = set()
    # cumulative weights once: choices() would add the weights up again for every person
    cumulative = list(accumulate(1.0 / (1 + i % 5) for i in range(len(companies))))
    persons: list[TruePerson] = []
    for index in range(count):
        if persons and rng.random() < 0.03:  # a namesake: same ФИО, nothing else in common
            twin = rng.choice(persons)
            last, first, middle = twin.last, twin.first, twin.middle
        elif rng.random() < 0.5:
            last = rng.choice(MALE_LAST + UNGENDERED_LAST)
            first, middle = rng.choice(MALE_FIRST)[0], rng.choice(PATRONYMIC_BASES) + "ич"
        else:
            last = _female(rng.choice(MALE_LAST + UNGENDERED_LAST))
            first, middle = rng.choice(FEMALE_FIRST), rng.choice(PATRONYMIC_BASES) + "на"
        phones = [_mobile(rng, taken_phones)]
        if rng.random() < 0.3:
            phones.append(_mobile(rng, taken_phones) if rng.random() < 0.5 else _city(rng, taken_phones))
        emails: list[str] = []
        if rng.random() < 0.75:
            while True:
                local = f"{_translit(last)}.{_translit(first)[0]}{rng.randrange(1, 999) if rng.random() < 0.6 else ''}"
                email = f"{local}@{rng.choice(MAIL_DOMAINS)}"
                if email not in taken_emails:
                    taken_emails.add(email)
                    emails.append(email)
                    break
        company = rng.choices(range(len(companies)), cum_weights=cumulative)[0] if rng.random() < 0.8 else None
        persons.append(TruePerson(index, last, first, middle, phones, emails, company, rng.choice(POSITIONS)))
    return persons


def generate(rows: int = 2000, seed: int = 15, *, variant: int = 0) -> MessyBase:
    """A base of ``rows`` data rows (people's rows plus a few blank and "Итого" rows), the same every time.

    ``variant`` writes the same people and companies as another list would: other rows, other spellings.
    """
    rng = random.Random(seed)
    person_count = max(1, round(rows * 0.714))
    companies = _companies(rng, max(1, round(person_count * 0.287)))
    persons = _persons(rng, person_count, companies)
    rng = random.Random(seed * 7919 + variant)
    junk = 2 * (rows // 400 + 1)
    rows_of: list[Row] = []
    for person in persons:  # every person once, then more rows of some people up to the size asked for
        rows_of.append(_person_row(rng, person, companies, first=True))
    while len(rows_of) < rows - junk:
        rows_of.append(_person_row(rng, rng.choice(persons), companies, first=False))
    rng.shuffle(rows_of)
    del rows_of[max(rows - junk, 1) :]
    for _ in range(junk // 2):
        rows_of.insert(rng.randrange(len(rows_of) + 1), Row(["", "", "", "", "", "", ""], None))
    for _ in range(junk // 2):
        total = rng.choice(TOTALS)
        rows_of.insert(rng.randrange(len(rows_of) + 1), Row([total, "", "", "", "", "", rng.randrange(100, 999)], None))
    return MessyBase(seed, persons, companies, rows_of)


# --- one row ------------------------------------------------------------------------------------------------


def _person_row(rng: random.Random, person: TruePerson, companies: list[TrueCompany], *, first: bool) -> Row:
    contacts: list[tuple[str, str]] = []
    # which of the person's contacts this row shows: at least the main phone or the main e-mail, validly
    show_phone = first or not person.emails or rng.random() < 0.75
    show_email = bool(person.emails) and (first or not show_phone or rng.random() < 0.5)
    phones = [person.phones[0]] if show_phone else []
    if len(person.phones) > 1 and rng.random() < 0.6:
        phones.append(person.phones[1])
    phone_cell = _phone_cell(rng, phones)
    contacts.extend(("phone", p) for p in phones)
    if rng.random() < 0.05:  # a 7-digit local number beside the others: not usable, left out
        local = f"{rng.randrange(200, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}"
        phone_cell = f"{phone_cell}, {local}" if phone_cell != "" else local
    email_cell = ""
    if show_email:
        email_cell = _email_text(rng, person.emails[0])
        contacts.append(("email", person.emails[0]))
        if rng.random() < 0.05:
            email_cell = f"{email_cell}; {rng.choice(GARBAGE_EMAILS)}"
    elif rng.random() < 0.1:
        email_cell = rng.choice(GARBAGE_EMAILS)
    company_cell, inn_cell = "", ""
    if person.company is not None:
        company = companies[person.company]
        company_cell = _company_text(rng, company)
        if company.inn:
            inn_cell = _inn_cell(rng, company.inn)
    cells: list[object] = [
        _name_text(rng, person, first=first),
        phone_cell,
        email_cell,
        company_cell,
        inn_cell,
        person.position,
        rng.choice(COMMENTS),
    ]
    return Row(cells, person.id, contacts)


def _pad(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.06:
        return " " + text + "  "
    if roll < 0.09:
        return "\t" + text
    if roll < 0.12:
        return text + NBSP
    if roll < 0.14:
        return ZERO_WIDTH + text
    if roll < 0.16:
        return text + "\n"
    return text


def _phone_text(rng: random.Random, e164: str) -> object:
    national = e164[2:]
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    shape = rng.randrange(14)
    if shape == 0:
        return float("7" + national)  # a number cell: 79161234567.0 to the reader of the file
    if shape == 1:
        return int("8" + national)
    if shape == 2:
        return f"8 ({a}) {b}-{c}-{d}"
    if shape == 3:
        return f"+7 {a} {b} {c} {d}"
    if shape == 4:
        return f"+7({a}){b}{c}{d}"
    if shape == 5:
        return f"8{NBSP}{a}{NBSP}{b}{NBSP}{c}{NBSP}{d}"
    if shape == 6:
        return f"{a}{b}{c}{d}"
    if shape == 7:
        return f"+7 ({a}) {b}-{c}-{d} {rng.choice(['доб.', 'доб', 'вн.', 'ext.', 'ext', '#'])} {rng.randrange(1, 999)}"
    if shape == 8:
        return f"8-{a}-{b}-{c}-{d}"
    if shape == 9:
        return f"7{national}"
    return f"+7{national}"


def _phone_cell(rng: random.Random, phones: Sequence[str]) -> object:
    if not phones:
        return ""
    texts = [_phone_text(rng, p) for p in phones]
    if len(texts) == 1:
        value = texts[0]
        return value if not isinstance(value, str) else _pad(rng, value)
    separator = rng.choice([", ", "; ", " / ", "\n", ",", " ;"])
    return _pad(rng, separator.join(str(t) if not isinstance(t, float) else str(int(t)) for t in texts))


def _email_text(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        email = email.capitalize()
    elif roll < 0.2:
        email = email.upper()
    elif roll < 0.23:
        email = f"<{email}>"
    return _pad(rng, email)


def _initials(*words: str) -> str:
    return "".join(f"{w[0]}." for w in words)


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _name_text(rng: random.Random, person: TruePerson, *, first: bool) -> str:
    last, name, middle = person.last, person.first, person.middle
    roll = rng.random()
    if first or roll < 0.45:
        text = f"{last} {name} {middle}"
    elif roll < 0.55:
        text = f"{name} {middle} {last}"
    elif roll < 0.62:
        text = f"{name} {last}"
    elif roll < 0.72:
        text = rng.choice(
            [
                f"{last} {_initials(name, middle)}",
                f"{_initials(name, middle)} {last}",
                f"{last} {name[0]}. {middle[0]}.",
            ]
        )
    elif roll < 0.8:
        text = f"{_typo(rng, last)} {name} {middle}"
    elif roll < 0.86:
        text = f"{last} {name}"
    else:
        text = f"{last} {name} {middle}"
    roll = rng.random()
    if roll < 0.1:
        text = text.upper()
    elif roll < 0.14:
        text = text.lower()
    if rng.random() < 0.3:
        text = text.replace("ё", "е").replace("Ё", "Е")
    if rng.random() < 0.05:
        text = text.replace(" ", "  ", 1)
    return _pad(rng, text)


def _company_text(rng: random.Random, company: TrueCompany) -> str:
    short, long = company.form
    name = company.name
    shape = rng.randrange(9)
    if shape == 0:
        text = f"{short} «{name}»"
    elif shape == 1:
        text = f'{short} "{name}"'
    elif shape == 2:
        text = f"{short} {name}"
    elif shape == 3:
        text = f"{name}, {short}"
    elif shape == 4:
        text = f"{long} «{name}»"
    elif shape == 5:
        text = f"{short} {name}".upper()
    elif shape == 6:
        text = f"{short.lower()} «{name.lower()}»"
    elif shape == 7:
        text = f"{name} {short}"
    else:
        text = f"{short} «{name}»"
    return _pad(rng, text)


def _inn_cell(rng: random.Random, inn: str) -> object:
    shape = rng.randrange(8)
    if shape in (0, 1):
        return float(inn)  # a number cell: 274062111 when the INN began with 0
    if shape == 2:
        return int(inn)
    if shape == 3:
        return f"{int(inn)}.0"
    if shape == 4:
        return _pad(rng, inn)
    if shape == 5:
        return f" {inn}{NBSP}"
    return inn


# --- scoring --------------------------------------------------------------------------------------------------


@dataclass
class Score:
    persons_true: int
    persons_hub: int
    persons_split: int
    persons_merged_wrongly: int
    person_precision: float
    person_recall: float
    companies_true: int
    companies_hub: int
    companies_with_inn: int
    inn_companies_exact: int
    company_precision: float
    company_recall: float
    junk_clients: int
    merge_candidates: int
    true_candidates: int

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pairs(groups: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in groups)


def pairwise(truth: Sequence[Any], found: Sequence[Any]) -> tuple[float, float]:
    """Precision and recall of "these two items are one" over all pairs of items (None in ``found``: alone)."""
    alone = iter(range(-1, -len(found) - 1, -1))
    found = [f if f is not None else ("alone", next(alone)) for f in found]
    both = _pairs(Counter(zip(truth, found, strict=True)).values())
    said = _pairs(Counter(found).values())
    true = _pairs(Counter(truth).values())
    return (both / said if said else 1.0), (both / true if true else 1.0)


def score(base: MessyBase, hub: Any) -> Score:
    """What the hub holds against the truth of ``base``."""
    person_rows = base.person_rows  # a list built on each access: once here
    with hub.store.read() as conn:
        clients = {
            r.id: (r.kind, r.name, r.company_id)
            for r in conn.execute(
                select(s.clients.c.id, s.clients.c.kind, s.clients.c.name, s.clients.c.company_id).where(
                    s.clients.c.merged_into.is_(None)
                )
            )
        }
        owners: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in conn.execute(select(s.contact_points.c.kind, s.contact_points.c.value, s.contact_points.c.client_id)):
            if r.client_id in clients:
                owners[(r.kind, r.value)].append(r.client_id)
        candidates = [
            (r.client_id, r.other_id)
            for r in conn.execute(
                select(s.merge_candidates.c.client_id, s.merge_candidates.c.other_id).where(
                    s.merge_candidates.c.status == "open"
                )
            )
        ]
    persons = {cid for cid, (kind, _, _) in clients.items() if kind == "person"}
    companies = {cid for cid, (kind, _, _) in clients.items() if kind == "company"}
    holders_of: dict[int, set[int]] = defaultdict(set)  # true person -> hub people holding its contacts
    truths_of: dict[int, set[int]] = defaultdict(set)  # hub person -> true people whose contacts it holds
    row_client: list[int | None] = []
    for row in person_rows:
        assert row.person is not None
        held = [cid for point in row.contacts for cid in owners.get(point, []) if cid in persons]
        row_client.append(held[0] if held else None)
        if not held:
            holders_of[row.person].add(-1)  # a contact the hub lost
        for cid in held:
            holders_of[row.person].add(cid)
            truths_of[cid].add(row.person)
    seen_persons = {r.person for r in person_rows}
    person_p, person_r = pairwise([r.person for r in person_rows], row_client)

    company_truth: list[int] = []
    company_found: list[int | None] = []
    for row, cid in zip(person_rows, row_client, strict=True):
        assert row.person is not None
        true_company = base.persons[row.person].company
        if true_company is None:
            continue
        company_truth.append(true_company)
        company_found.append(clients[cid][2] if cid is not None else None)
    company_p, company_r = pairwise(company_truth, company_found)
    seen_companies = {base.persons[p].company for p in seen_persons if p is not None} - {None}
    with_inn = [c for c in base.companies if c.id in seen_companies and c.inn]
    linked_to: dict[int, set[int | None]] = defaultdict(set)  # true company -> hub companies its people link to
    for row, cid in zip(person_rows, row_client, strict=True):
        employer = base.persons[row.person].company if row.person is not None else None
        if cid is not None and employer is not None:
            linked_to[employer].add(clients[cid][2])
    exact = 0
    for company in with_inn:
        holders = [cid for cid in owners.get(("inn", company.inn or ""), []) if cid in companies]
        if len(holders) == 1 and linked_to[company.id] == {holders[0]}:
            exact += 1
    junk = len(persons - set(truths_of))
    truth_of_client = {cid: next(iter(t)) for cid, t in truths_of.items() if len(t) == 1}
    company_truths: dict[int, set[int | None]] = defaultdict(set)
    for cid, person in truth_of_client.items():
        company_id = clients[cid][2]
        if company_id is not None:
            company_truths[company_id].add(base.persons[person].company)
    true_candidates = 0
    for a, b in candidates:
        if a in persons:
            true_candidates += a in truth_of_client and truth_of_client.get(a) == truth_of_client.get(b)
        else:
            true_candidates += len(company_truths[a]) == 1 and company_truths[a] == company_truths[b]
    return Score(
        persons_true=len(seen_persons),
        persons_hub=len(persons),
        persons_split=sum(1 for holders in holders_of.values() if len(holders) > 1),
        persons_merged_wrongly=sum(1 for truths in truths_of.values() if len(truths) > 1),
        person_precision=person_p,
        person_recall=person_r,
        companies_true=len(seen_companies),
        companies_hub=len(companies),
        companies_with_inn=len(with_inn),
        inn_companies_exact=exact,
        company_precision=company_p,
        company_recall=company_r,
        junk_clients=junk,
        merge_candidates=len(candidates),
        true_candidates=true_candidates,
    )
