"""A sheet row → a client in the hub's words: phones and e-mails normalised, ФИО split, INN checked, company linked.

Rows that name the same person (a shared phone or e-mail, and names that do not contradict: initials, a typo,
capitals and word order do not) are merged into one observation; rows that identify nobody (and "Итого" rows)
become :class:`RejectedRow` with the reason.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from hub.core.events import ClientKey, ClientObservation, SourceRef
from hub.core.identity import clean_text, name_tokens, names_compatible, number_text, split_extension, split_phones

from .columns import CUSTOM_PREFIX, ColumnLayout
from .contacts import SCIENTIFIC, email_or_reason, phone_or_reason

SYSTEM = "excel"
ROW_ENTITY = "row"
COMPANY_ENTITY = "company"

_EMAIL_SPLIT = re.compile(r"[;,/\s]+")
# a totals line under the list ("Итого: 57", "Всего клиентов"), not a client
_TOTALS = re.compile(r"(?:итого|всего|итог|total|subtotal|sum)\b", re.IGNORECASE)
_PATRONYMIC_ENDINGS = ("вич", "вна", "ична", "оглы", "кызы")
_DOTTED_DATE = re.compile(r"(\d{1,2})[./](\d{1,2})[./](\d{4})")
_EXCEL_EPOCH = date(1899, 12, 30)
_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_DATE_FIELDS = ("date", "birthday")
_PLAIN_FIELDS = ("city", "address", "website")


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not imported: its number in the file, why, and its cells as they were."""

    row_number: int
    reason: str
    cells: list[str]


@dataclass(frozen=True)
class RowNote:
    """Something dropped from a row that was imported all the same (an invalid second phone, a bad INN)."""

    row_number: int
    message: str


# --- single values ------------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def checked_inn(text: str) -> str | None:
    """The INN with its leading zeros, or None when its check digits are wrong.

    An INN stored as a number loses its leading zero (``0274062111`` → ``274062111``); a 9- or 11-digit value
    whose zero-padded form passes the checksum is taken as that form.
    """
    digits = number_text("".join(clean_text(text).split()))
    if not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) in (9, 11):
        digits = "0" + digits
    if len(digits) == 10:
        return digits if _check_digit(digits, _INN10) == int(digits[9]) else None
    if len(digits) == 12:
        ok = _check_digit(digits, _INN11) == int(digits[10]) and _check_digit(digits, _INN12) == int(digits[11])
        return digits if ok else None
    return None


def _check_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def split_full_name(text: str) -> tuple[str | None, str | None, str | None]:
    """``"Иванов Иван Иванович"`` → (last, first, middle).

    Russian order (Фамилия Имя Отчество) unless the patronymic sits second (``"Иван Иванович Иванов"``); two
    Latin words are read as "First Last". Anything longer is left whole. Initials are not names: ``"Емельянова
    Л.С."`` gives the last name only, so it never replaces the first name a fuller row gave.
    """
    words = text.split()
    if name_tokens(text)[1]:
        full = [w for w in words if len(w.rstrip(".")) > 1 and "." not in w.rstrip(".")]
        return (full[0], None, None) if len(full) == 1 else (None, None, None)
    if len(words) == 3:
        if words[1].casefold().endswith(_PATRONYMIC_ENDINGS) and not words[2].casefold().endswith(_PATRONYMIC_ENDINGS):
            return words[2], words[0], words[1]
        return words[0], words[1], words[2]
    if len(words) == 2:
        if words[0].isascii():
            return words[1], words[0], None
        return words[0], words[1], None
    return None, None, None


@lru_cache(maxsize=4096)
def excel_date(text: str) -> str:
    """A date cell as an ISO date: Excel serial numbers (``45352`` → ``2024-03-01``) and ``01.03.2024`` too."""
    try:
        serial = float(text)
    except ValueError:
        match = _DOTTED_DATE.fullmatch(text)
        if match is None:
            return text
        day, month, year = (int(part) for part in match.groups())
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            return text
    if not 1 <= serial < 2958466:
        return text
    moment = datetime.combine(_EXCEL_EPOCH, datetime.min.time()) + timedelta(days=serial)
    return moment.date().isoformat() if serial.is_integer() else moment.isoformat(timespec="minutes")


@lru_cache(maxsize=65536)
def _name_words(name: str | None) -> frozenset[str]:
    return frozenset(name.casefold().replace("ё", "е").split()) if name else frozenset()


@lru_cache(maxsize=65536)
def _name_key(name: str | None) -> str:
    """The name as a key for merging: case, ё/е and word order do not matter."""
    return " ".join(sorted(_name_words(name)))


def _stable_id(*parts: Sequence[str] | str) -> str:
    text = "\x1f".join(p if isinstance(p, str) else "\x1e".join(sorted(p)) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


# --- records ------------------------------------------------------------------------------------------------


def _name_rank(name: str, count: int, support: int = 0) -> tuple[int, int, int, int, int, str]:
    """Which spelling stands for a person: most words, fewest initials, the most rows whose spelling it is
    compatible with (of `Герасимов`, `Герасиомв`, `ГЕАСИМОВ`, each typo is one edit from the right spelling and
    two from the other typo), most rows, longest, then the text (so a re-sorted file chooses the same)."""
    words, initials = name_tokens(name)
    return len(words), -len(initials), support, count, len(name), name


def _best_spelling(counts: dict[str, int]) -> str:
    def support(name: str) -> int:
        return sum(times for other, times in counts.items() if names_compatible(name, other))

    return max(counts, key=lambda name: _name_rank(name, counts[name], support(name)))


@dataclass
class ClientRecord:
    """One client being assembled from one or more rows (merged when they share a phone or e-mail)."""

    kind: str
    first_row: int
    rows: int = 1
    name: str | None = None
    names: set[str] = field(default_factory=set)
    name_counts: dict[str, int] = field(default_factory=dict)
    last_name: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    position: str | None = None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    inn: str | None = None
    company_name: str | None = None
    company_inn: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def keys(self) -> Iterator[tuple[str, str]]:
        """What identifies this record for merging inside the file."""
        yield from ((self.kind + ":phone", p) for p in self.phones)
        yield from ((self.kind + ":email", e) for e in self.emails)
        if self.kind == "company":
            if self.inn:
                yield "company:inn", self.inn
            if self.name:
                yield "company:name", _name_key(self.name)
        elif not self.phones and not self.emails and self.name:
            yield "person:name", _name_key(self.name)

    def accepts(self, other: ClientRecord) -> bool:
        """True when the two records can be one client: names do not contradict each other."""
        if self.kind == "company" and self.inn and other.inn and self.inn != other.inn:
            return False
        if not self.name or not other.name:
            return True
        if self.kind == "company":
            mine, theirs = _name_words(self.name), _name_words(other.name)
            return mine <= theirs or theirs <= mine
        # against every spelling either side has seen: two rows with one typo each (`Герасиомв`, `ГЕАСИМОВ`) are two
        # edits apart, yet each is one edit from the `Герасимов` of a third row of the same phone
        mine_all, theirs_all = self.names or {self.name}, other.names or {other.name}
        return any(names_compatible(a, b) for a in mine_all for b in theirs_all)

    def absorb(self, other: ClientRecord) -> None:
        self.rows += other.rows
        self.first_row = min(self.first_row, other.first_row)
        self.names |= other.names
        for spelling, times in other.name_counts.items():
            self.name_counts[spelling] = self.name_counts.get(spelling, 0) + times
        if other.name and self.kind == "person":
            best = _best_spelling(self.name_counts)
            if best != self.name:
                other_parts = (other.last_name, other.first_name, other.middle_name)
                self.name = best
                self.last_name, self.first_name, self.middle_name = (
                    other_parts if best == other.name and any(other_parts) else split_full_name(best)
                )
        elif other.name and len(_name_words(other.name)) > len(_name_words(self.name)):
            self.name, self.last_name = other.name, other.last_name
            self.first_name, self.middle_name = other.first_name, other.middle_name
        for attr in ("position", "inn", "company_name", "company_inn"):
            if getattr(self, attr) is None:
                setattr(self, attr, getattr(other, attr))
        known = set(self.phones)
        self.phones.extend(p for p in other.phones if p not in known)
        known = set(self.emails)
        self.emails.extend(e for e in other.emails if e not in known)
        for key, value in other.fields.items():
            mine = self.fields.get(key)
            if mine is None:
                self.fields[key] = value
            elif key == "comment" and value not in mine.split("\n"):
                self.fields[key] = mine + "\n" + value


# --- the row mapper -----------------------------------------------------------------------------------------


class RowMapper:
    """Turns rows of one sheet into :class:`ClientRecord` or :class:`RejectedRow`, collecting notes on the way."""

    def __init__(self, layout: ColumnLayout, *, region: str = "RU") -> None:
        self.layout = layout
        self.region = region
        self.notes: list[RowNote] = []
        self._phone_cells: dict[str, tuple[list[str], list[str], list[str]]] = {}
        self._email_cells: dict[str, tuple[list[str], list[str]]] = {}
        self._width = max(layout.targets, default=-1) + 1
        first = layout.columns_for
        self._phone_cols = first("phone")
        self._email_cols = first("email")
        self._comment_cols = first("comment")
        self._single = {
            target: cols[0]
            for target in (
                "name",
                "last_name",
                "first_name",
                "middle_name",
                "company",
                "inn",
                "position",
                *_DATE_FIELDS,
                *_PLAIN_FIELDS,
            )
            if (cols := first(target))
        }
        self._custom = [(i, t[len(CUSTOM_PREFIX) :]) for i, t in layout.targets.items() if t.startswith(CUSTOM_PREFIX)]

    def map_row(self, number: int, cells: list[str]) -> ClientRecord | RejectedRow | None:
        """The client a row describes; None for a blank row."""
        if len(cells) < self._width:
            cells = cells + [""] * (self._width - len(cells))
        issues: list[str] = []
        phones: list[str] = []
        extensions: list[str] = []
        for index in self._phone_cols:
            text = cells[index]
            if text and not text.isspace():
                found, problems, extra = self._phone_cell(text)
                phones.extend(p for p in found if p not in phones)
                issues.extend(problems)
                extensions.extend(extra)
        emails: list[str] = []
        for index in self._email_cols:
            text = cells[index]
            if text and not text.isspace():
                found, problems = self._email_cell(text)
                emails.extend(e for e in found if e not in emails)
                issues.extend(problems)
        single = {target: value for target, index in self._single.items() if (value := clean_text(cells[index]))}
        name = " ".join(single["name"].split()) if "name" in single else None
        if name and not (phones or emails) and _TOTALS.match(name):
            return RejectedRow(number, f"a totals row ({name!r}), not a client", list(cells))
        last, first, middle = single.get("last_name"), single.get("first_name"), single.get("middle_name")
        if name and not (last or first or middle):
            last, first, middle = split_full_name(name)
        elif not name and (last or first or middle):
            last, first, middle = (" ".join(p.split()) if p else None for p in (last, first, middle))
            name = " ".join(part for part in (last, first, middle) if part)
        company = " ".join(single["company"].split()) if "company" in single else None
        inn: str | None = None
        bad_inn: str | None = None
        fields: dict[str, str] = {}
        if "inn" in single:
            inn = checked_inn(single["inn"])
            if inn is None:
                label = self.layout.header_label(self._single["inn"])
                fields[label] = single["inn"]
                bad_inn = f"INN {single['inn']!r} fails its check digits"
        comments = [text for index in self._comment_cols if (text := cells[index].strip())]
        if comments:
            fields["comment"] = "\n".join(comments)
        if extensions:
            fields["extension"] = "; ".join(extensions)
        for target in _DATE_FIELDS:
            if target in single:
                fields[target] = excel_date(single[target])
        for target in _PLAIN_FIELDS:
            if target in single:
                fields[target] = single[target]
        for index, key in self._custom:
            if text := cells[index].strip():
                fields[key] = text

        if not (phones or emails or name or company or inn):
            if not fields and not issues and not any(c.strip() for c in cells):
                return None
            if bad_inn:
                issues.append(bad_inn)
            reason = "; ".join(issues) if issues else "no name, phone, e-mail, company or INN"
            if issues:
                reason += "; and no other name, phone, e-mail or company to identify the client"
            return RejectedRow(number, reason, list(cells))
        for issue in issues:
            self.notes.append(RowNote(number, issue + ": left out"))
        if bad_inn:
            label = self.layout.header_label(self._single["inn"])
            self.notes.append(RowNote(number, f"{bad_inn}: kept as text in {label!r}, not used to identify"))
        if name is None and (company or inn):
            return ClientRecord(
                kind="company",
                first_row=number,
                name=company,
                names={company} if company else set(),
                phones=phones,
                emails=emails,
                inn=inn,
                fields=fields,
            )
        record = ClientRecord(
            kind="person",
            first_row=number,
            name=name,
            names={name} if name else set(),
            name_counts={name: 1} if name else {},
            last_name=last,
            first_name=first,
            middle_name=middle,
            position=single.get("position"),
            phones=phones,
            emails=emails,
            fields=fields,
        )
        if company or inn:
            if company:
                record.company_name, record.company_inn = company, inn
            else:  # an INN beside a person and no company: the person's own (an individual entrepreneur)
                record.inn = inn
        return record

    def _phone_cell(self, text: str) -> tuple[list[str], list[str], list[str]]:
        """The numbers in one cell, what was wrong with the others, and the extensions (``+7… доб. 12``); cached
        per cell text."""
        cached = self._phone_cells.get(text)
        if cached is None:
            found: list[str] = []
            problems: list[str] = []
            extensions: list[str] = []
            cell = clean_text(text)
            # a number Excel wrote in scientific notation ("7,92E+10") is one value, whatever its comma
            for piece in [cell] if SCIENTIFIC.fullmatch(cell) else split_phones(cell):
                number, extension = split_extension(piece)
                e164, reason = phone_or_reason(number_text(number), self.region)
                if e164 is None:
                    problems.append(reason)
                    continue
                if e164 not in found:
                    found.append(e164)
                if extension:
                    extensions.append(f"{e164} доб. {extension}")
            cached = self._phone_cells[text] = (found, problems, extensions)
        return cached

    def _email_cell(self, text: str) -> tuple[list[str], list[str]]:
        cached = self._email_cells.get(text)
        if cached is None:
            found: list[str] = []
            problems: list[str] = []
            for piece in _EMAIL_SPLIT.split(clean_text(text)):
                if piece:
                    address, reason = email_or_reason(piece)
                    if address is None:
                        problems.append(reason)
                    elif address not in found:
                        found.append(address)
            cached = self._email_cells[text] = (found, problems)
        return cached


# --- merging inside the file and building observations ------------------------------------------------------


class FileDeduplicator:
    """Merges records of one file that share a phone, an e-mail (or, for companies, an INN or a name)."""

    def __init__(self) -> None:
        self._records: list[ClientRecord] = []
        self._parent: list[int] = []
        self._index: dict[tuple[str, str], list[int]] = {}  # key -> the records holding it (slots, maybe merged)

    def _root(self, slot: int) -> int:
        while self._parent[slot] != slot:
            self._parent[slot] = self._parent[self._parent[slot]]
            slot = self._parent[slot]
        return slot

    def _holders(self, key: tuple[str, str]) -> list[int]:
        slots = self._index.get(key)
        if not slots:
            return []
        roots = sorted({self._root(slot) for slot in slots})
        self._index[key] = roots  # compacted: merged records are one entry
        return roots

    def add(self, record: ClientRecord) -> None:
        keys = list(record.keys())
        slot = len(self._records)
        self._records.append(record)
        self._parent.append(slot)
        # every record holding one of the keys, not only the first: a record kept apart for its name (two typos
        # are two edits apart) joins once a row that bridges the spellings has joined the group
        pending = {root for key in keys for root in self._holders(key)}
        home = slot
        merged = True
        while merged:
            merged = False
            for root in sorted(pending):
                if self._root(root) != root or root == home:
                    continue
                target = self._records[root]
                if target.accepts(self._records[home]):
                    target.absorb(self._records[home])
                    self._parent[home] = root
                    home = root
                    merged = True
            pending = {self._root(root) for root in pending} - {home}
        for key in keys:
            self._index.setdefault(key, []).append(home)

    def records(self) -> list[ClientRecord]:
        """The merged records, in the order of their first row."""
        roots = [r for i, r in enumerate(self._records) if self._parent[i] == i]
        return sorted(roots, key=lambda r: r.first_row)

    @property
    def duplicates(self) -> int:
        return sum(1 for i in range(len(self._records)) if self._parent[i] != i)


def separate_shared_points(records: Sequence[ClientRecord]) -> list[RowNote]:
    """Keep apart in the hub the clients the file keeps apart, and say what that cost.

    Two rows with one phone (an office line) and contradicting names are two people here, but the hub finds a
    client by phone or e-mail: given the number, both would land on one client whose name flips at every
    re-import. So a phone or e-mail several clients of one kind claim stays with one of them (the first name in
    alphabetical order, whatever the row order, so a re-sorted file decides the same way) and is left out of the
    others. Companies are treated alike: the hub looks companies without an INN up by phone and e-mail too.
    """
    owners: dict[tuple[str, str, str], ClientRecord] = {}
    for record in records:
        for point in _points(record):
            current = owners.get(point)
            if current is None or _owner_rank(record) < _owner_rank(current):
                owners[point] = record
    notes: list[RowNote] = []
    for record in records:
        lost = [point for point in _points(record) if owners[point] is not record]
        if not lost:
            continue
        record.phones = [p for p in record.phones if (record.kind, "phone", p) not in lost]
        record.emails = [e for e in record.emails if (record.kind, "email", e) not in lost]
        for _, kind, value in lost:
            owner = owners[(record.kind, kind, value)]
            notes.append(
                RowNote(
                    record.first_row,
                    f"{kind} {value} is also on row {owner.first_row} ({owner.name}), a different person: "
                    "kept with that row only",
                )
            )
    return notes


def _points(record: ClientRecord) -> list[tuple[str, str, str]]:
    return [(record.kind, "phone", p) for p in record.phones] + [(record.kind, "email", e) for e in record.emails]


def _owner_rank(record: ClientRecord) -> tuple[str, int]:
    return _name_key(record.name), record.first_row


def build_observations(
    records: Sequence[ClientRecord], *, account: str, observed_at: datetime
) -> list[ClientObservation]:
    """Companies first (so that people can link to them by ref), then people; ids stable across re-imports.

    A company is one per INN whatever its spelling in the rows; without an INN, one per name as written (case,
    ё/е and spacing aside). It is named by the spelling most rows use (then the longest, then the text).
    """
    companies: dict[str, ClientObservation] = {}
    spellings: dict[str, Counter[str]] = {}
    by_name: dict[str, str] = {}
    from_records: set[str] = set()
    for record in records:
        if record.kind == "company":
            ref = _company_ref(account, record.inn, record.name)
            companies[ref.id] = _observation(record, ref, observed_at)
            from_records.add(ref.id)
            spellings.setdefault(ref.id, Counter()).update(record.names)
            if record.name:
                by_name[_name_key(record.name)] = ref.id
    links: dict[tuple[str | None, str | None], str] = {}

    def company_link(name: str | None, inn: str | None) -> str:
        ref = _company_ref(account, inn, name)
        if inn is None and _name_key(name) in by_name:
            ref = companies[by_name[_name_key(name)]].source
        elif ref.id not in companies:
            companies[ref.id] = ClientObservation(
                source=ref,
                observed_at=observed_at,
                client_kind="company",
                name=name,
                identity={"inn": inn} if inn else {},
            )
            if name:
                by_name.setdefault(_name_key(name), ref.id)
        return ref.id

    linked: list[tuple[ClientRecord, str | None]] = []
    for record in records:
        if record.kind != "person":
            continue
        company_id: str | None = None
        if record.company_name or record.company_inn:
            link = (record.company_name, record.company_inn)
            company_id = links.get(link)
            if company_id is None:
                company_id = links[link] = company_link(*link)
            if record.company_name:
                spellings.setdefault(company_id, Counter())[record.company_name] += 1
        linked.append((record, company_id))
    for company_id, counts in spellings.items():
        if counts:
            best = max(counts.items(), key=lambda item: (item[1], len(item[0]), item[0]))[0]
            if best != companies[company_id].name:
                companies[company_id] = companies[company_id].model_copy(update={"name": best})
    keys = {cid: ClientKey(kind="company", name=obs.name, ref=obs.source) for cid, obs in companies.items()}
    # a company named only in people's rows, without an INN, is made by the first person who names it: the core
    # then keeps a known person's employer when a new list spells it differently, instead of a duplicate company
    standalone = [obs for cid, obs in companies.items() if obs.identity or cid in from_records]
    people: list[ClientObservation] = []
    for record, company_id in linked:
        company = keys[company_id] if company_id is not None else None
        person_id = _stable_id(
            "person", record.phones, record.emails, record.inn or "", [_name_key(n) for n in record.names]
        )
        # a plain dict is validated inside the one model call: a third cheaper than building a SourceRef first
        source = {"system": SYSTEM, "account": account, "entity": ROW_ENTITY, "id": person_id}
        people.append(_observation(record, source, observed_at, company))
    return [*standalone, *people]


def _company_ref(account: str, inn: str | None, name: str | None) -> SourceRef:
    identity = f"inn:{inn}" if inn else "name:" + _name_key(name)
    return SourceRef(system=SYSTEM, account=account, entity=COMPANY_ENTITY, id=_stable_id("company", identity))


def _observation(
    record: ClientRecord,
    source: SourceRef | dict[str, str],
    observed_at: datetime,
    company: ClientKey | None = None,
) -> ClientObservation:
    return ClientObservation.model_validate(
        {
            "source": source,
            "observed_at": observed_at,
            "client_kind": "company" if record.kind == "company" else "person",
            "name": record.name,
            "first_name": record.first_name,
            "last_name": record.last_name,
            "middle_name": record.middle_name,
            "position": record.position,
            "company": company,
            "phones": record.phones,
            "emails": record.emails,
            "identity": {"inn": record.inn} if record.inn else {},
            "fields": record.fields,
        }
    )
