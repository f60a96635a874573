"""Which column holds what: header detection from Russian and English names, and the TOML mapping file.

A mapping file overrides detection column by column::

    header_row = 3            # optional: where the header is, when detection guesses wrong
    [columns]
    "Моб. тел" = "phone"      # a header text ...
    "F" = "email"             # ... or a column letter
    "Откуда" = "fields.source"
    "Служебное" = "ignore"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.core.errors import BadInput

HEADER_SCAN_ROWS = 20

# hub field -> header names, compared after normalise_header (case, punctuation and spaces do not matter)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": (
        "фио",
        "фамилияимяотчество",
        "клиент",
        "контакт",
        "контактноелицо",
        "имяклиента",
        "полноеимя",
        "покупатель",
        "name",
        "fullname",
        "contact",
        "contactname",
        "client",
        "clientname",
        "customer",
        "customername",
    ),
    "last_name": ("фамилия", "lastname", "surname", "familyname"),
    "first_name": ("имя", "firstname", "givenname"),
    "middle_name": ("отчество", "middlename", "patronymic"),
    "phone": (
        "телефон",
        "тел",
        "телефоны",
        "мобильный",
        "мобильныйтелефон",
        "моб",
        "мобтел",
        "мобтелефон",
        "сотовый",
        "сотовыйтелефон",
        "рабочийтелефон",
        "домашнийтелефон",
        "номертелефона",
        "контактныйтелефон",
        "phone",
        "phones",
        "mobile",
        "mobilephone",
        "tel",
        "telephone",
        "cell",
        "cellphone",
        "phonenumber",
        "workphone",
    ),
    "email": (
        "email",
        "emails",
        "емейл",
        "емайл",
        "имейл",
        "почта",
        "элпочта",
        "электроннаяпочта",
        "адресэлектроннойпочты",
        "mail",
        "emailaddress",
    ),
    "company": (
        "компания",
        "организация",
        "названиекомпании",
        "наименованиеорганизации",
        "контрагент",
        "юрлицо",
        "фирма",
        "company",
        "companyname",
        "organization",
        "organisation",
        "employer",
    ),
    "inn": ("инн", "иннорганизации", "иннклиента", "inn", "taxid"),
    "position": ("должность", "position", "jobtitle", "title", "role"),
    "comment": (
        "комментарий",
        "комментарии",
        "примечание",
        "примечания",
        "заметка",
        "заметки",
        "описание",
        "comment",
        "comments",
        "note",
        "notes",
        "remark",
        "remarks",
        "description",
    ),
    "date": ("дата", "датасоздания", "датарегистрации", "датадобавления", "date", "created", "createdat"),
    "birthday": ("датарождения", "деньрождения", "birthday", "birthdate", "dateofbirth"),
    "city": ("город", "city", "town"),
    "address": ("адрес", "address"),
    "website": ("сайт", "вебсайт", "website", "site", "url"),
}
# headers that only start with these still count: "Телефон (моб.)", "E-mail 2", "Комментарий менеджера"
PREFIXES: dict[str, str] = {
    "телефон": "phone",
    "мобильный": "phone",
    "сотовый": "phone",
    "phone": "phone",
    "mobile": "phone",
    "email": "email",
    "электроннаяпочта": "email",
    "компания": "company",
    "организация": "company",
    "company": "company",
    "фамилия": "last_name",
    "отчество": "middle_name",
    "должность": "position",
    "комментарий": "comment",
    "примечание": "comment",
    "comment": "comment",
    "датарождения": "birthday",
    "адрес": "address",
    "address": "address",
}
FIELDS = frozenset(SYNONYMS)
MULTI_COLUMN = frozenset({"phone", "email", "comment"})
IGNORE = "ignore"
CUSTOM_PREFIX = "fields."

_BY_SYNONYM = {synonym: target for target, names in SYNONYMS.items() for synonym in names}
_LETTERS = re.compile(r"[A-Za-z]{1,3}")


def normalise_header(text: str) -> str:
    """``"Тел. (моб.)"`` → ``"телмоб"``: lower case, ё as е, letters and digits only."""
    return "".join(ch for ch in text.casefold().replace("ё", "е") if ch.isalnum())


def field_for_header(text: str) -> str | None:
    """The hub field a header names, or None when it is not one of the known names."""
    key = normalise_header(text)
    if not key:
        return None
    found = _BY_SYNONYM.get(key)
    if found is not None:
        return found
    for prefix in sorted((p for p in PREFIXES if key.startswith(p)), key=len, reverse=True):
        return PREFIXES[prefix]
    return None


def column_letter_index(letters: str) -> int:
    """``"A"`` → 0, ``"AA"`` → 26."""
    index = 0
    for ch in letters.upper():
        index = index * 26 + (ord(ch) - 64)
    return index - 1


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# --- mapping file -------------------------------------------------------------------------------------------


class MappingFile(BaseModel):
    """The user's column mapping: header text or column letter → hub field (``fields.<name>`` or ``ignore``)."""

    model_config = ConfigDict(extra="forbid")

    header_row: int | None = Field(default=None, ge=1, description="1-based row of the header; detected when absent.")
    columns: dict[str, str] = Field(default_factory=dict)


def load_mapping(path: Path) -> MappingFile:
    """Read and check a mapping file; errors name the file and the bad key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise BadInput(f"mapping file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path.name}: not valid TOML ({exc}); see the example in the Excel import guide") from None
    try:
        mapping = MappingFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(f"{path.name}: {where!r}: {first['msg']}") from None
    check_mapping(mapping, origin=path.name)
    return mapping


def check_mapping(mapping: MappingFile, *, origin: str = "mapping") -> None:
    for key, target in mapping.columns.items():
        if not key.strip():
            raise BadInput(f"{origin}: [columns] has an empty column name")
        if target in FIELDS or target == IGNORE:
            continue
        if target.startswith(CUSTOM_PREFIX) and target[len(CUSTOM_PREFIX) :].strip():
            continue
        known = ", ".join(sorted(FIELDS))
        raise BadInput(
            f"{origin}: [columns] {key!r} = {target!r} is not a hub field; use one of {known}, "
            f"'{CUSTOM_PREFIX}<name>' for a custom field, or '{IGNORE}'"
        )


# --- layout -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnLayout:
    """Where the header is and what each column holds: targets are hub fields or ``fields.<name>``."""

    header_row: int | None
    headers: tuple[str, ...]
    targets: Mapping[int, str]

    def columns_for(self, target: str) -> list[int]:
        return [index for index, name in self.targets.items() if name == target]

    @property
    def first_data_row(self) -> int:
        return (self.header_row or 0) + 1

    def header_label(self, index: int) -> str:
        text = self.headers[index].strip() if index < len(self.headers) else ""
        return text or f"column {column_letter(index)}"

    def describe(self) -> str:
        """``"B (ФИО) → name, C (Тел.) → phone"``: for the dry-run report."""
        return ", ".join(f"{column_letter(i)} ({self.header_label(i)}) → {t}" for i, t in sorted(self.targets.items()))


def score_header(cells: Sequence[str], extra_names: Iterable[str] = ()) -> int:
    """How many distinct known fields (or names from the mapping file) a row would name as a header."""
    extra = {normalise_header(n) for n in extra_names}
    found: set[str] = set()
    for cell in cells:
        if not cell:
            continue
        target = field_for_header(cell)
        if target is not None:
            found.add(target)
        elif normalise_header(cell) in extra:
            found.add("mapped:" + normalise_header(cell))
    return len(found)


def find_header(rows: Sequence[tuple[int, list[str]]], mapping: MappingFile | None = None) -> int | None:
    """Row number of the best header among the first rows; the earliest wins a tie; None when nothing fits."""
    if mapping is not None and mapping.header_row is not None:
        return mapping.header_row
    named = [k for k in (mapping.columns if mapping else {}) if not _LETTERS.fullmatch(k)]
    best_row, best_score = None, 0
    for number, cells in rows[:HEADER_SCAN_ROWS]:
        score = score_header(cells, named)
        if score > best_score:
            best_row, best_score = number, score
    return best_row


def build_layout(
    header_row: int | None, header_cells: Sequence[str], mapping: MappingFile | None, *, origin: str
) -> ColumnLayout:
    """Assign a target to each column: mapping file first, then the synonym table, then the header as-is."""
    headers = tuple(cell.strip() for cell in header_cells)
    targets: dict[int, str] = {}
    ignored: set[int] = set()
    for key, target in (mapping.columns if mapping else {}).items():
        index = _resolve_key(key, headers, origin=origin, header_row=header_row)
        if target == IGNORE:
            ignored.add(index)
        else:
            targets[index] = target
    taken = {t for t in targets.values() if t not in MULTI_COLUMN}
    for index, text in enumerate(headers):
        if index in targets or index in ignored or not text:
            continue
        known = field_for_header(text)
        if known is not None and (known in MULTI_COLUMN or known not in taken):
            targets[index] = known
            taken.add(known)
        else:
            targets[index] = CUSTOM_PREFIX + text
    if not any(t in ("name", "last_name", "first_name", "phone", "email", "company", "inn") for t in targets.values()):
        raise BadInput(
            f"{origin}: no column holds a name, phone, e-mail, company or INN (header row {header_row}: "
            f"{', '.join(h for h in headers if h) or 'empty'}); name the columns or give a mapping file"
        )
    return ColumnLayout(header_row=header_row, headers=headers, targets=targets)


def _resolve_key(key: str, headers: Sequence[str], *, origin: str, header_row: int | None) -> int:
    stripped = key.strip()
    for index, text in enumerate(headers):
        if text == stripped:
            return index
    wanted = normalise_header(stripped)
    for index, text in enumerate(headers):
        if wanted and normalise_header(text) == wanted:
            return index
    if _LETTERS.fullmatch(stripped):
        return column_letter_index(stripped)
    shown = ", ".join(repr(h) for h in headers if h) or "none"
    raise BadInput(
        f"{origin}: [columns] {key!r} matches no column of the header row {header_row} ({shown}); "
        "use the header text exactly as in the file, or a column letter such as 'C'"
    )
