"""Normalising what identifies a client: phones (E.164 with ``phonenumbers``), e-mails, names of people and companies.

Values come from spreadsheets and forms as people typed them: every kind of whitespace and the invisible
zero-width characters around them are dropped first (:func:`clean_text`), numbers saved as floats lose their
``.0``, extensions (``доб. 12``) are set apart. Names are compared the way a person reads them: case, ё/е, word
order, initials and a one-letter typo do not make two people (:func:`names_compatible`).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from hub.core.errors import BadInput

_SPLIT = re.compile(r"[;,\n\r/]|\s{2,}")
# zero-width space, non-joiner, joiner, word joiner, BOM, soft hyphen, Mongolian vowel separator: invisible in a cell
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
_HAS_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e]")
_EXTENSION_HINT = re.compile(r"[#a-zA-Zа-яА-Я]")  # no letter and no '#': no extension, skip the long pattern
_EXTENSION = re.compile(
    r"[\s,;]*(?:доб(?:авочный)?|вн(?:утр(?:енний)?)?|ext(?:ension)?|x|#)\s*\.?\s*[:№]?\s*(\d{1,6})\s*\Z", re.IGNORECASE
)
_FLOAT_TAIL = re.compile(r"(\d)\.0+\Z")
_NAME_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*\.?")
_QUOTES = str.maketrans("«»\"“”„‘’'`", "          ")
_LEGAL_FORM_PHRASES = re.compile(
    r"\b(?:общество\s+с\s+ограниченной\s+ответственностью|(?:публичное|закрытое|открытое|непубличное)?\s*"
    r"акционерное\s+общество|индивидуальный\s+предприниматель|автономная\s+некоммерческая\s+организация|"
    r"некоммерческая\s+организация|(?:федеральное|государственное|муниципальное)\s+унитарное\s+предприятие)\b"
)
_LEGAL_FORM_WORDS = frozenset(
    "ооо оао зао пао ао нао ип чп нко ано фгуп гуп муп тоо llc ltd inc jsc gmbh corp co".split()  # noqa: SIM905
)


def clean_text(raw: str) -> str:
    """The value as a person reads it: zero-width characters removed, all whitespace around it (space, tab, NBSP,
    line breaks) stripped."""
    if not raw.isascii() and _HAS_INVISIBLE.search(raw) is not None:
        raw = raw.translate(_INVISIBLE)
    return raw.strip()


def split_extension(raw: str) -> tuple[str, str | None]:
    """``"+7 495 123-45-67 доб. 123"`` → ``("+7 495 123-45-67", "123")``; also ``вн.``, ``ext``, ``x``, ``#``."""
    match = _EXTENSION.search(raw) if _EXTENSION_HINT.search(raw) is not None else None
    if match is None:
        return raw, None
    return raw[: match.start()].strip(), match.group(1)


def number_text(raw: str) -> str:
    """A number saved as a float, as the digits a person typed: ``"79161234567.0"`` → ``"79161234567"``."""
    return _FLOAT_TAIL.sub(r"\1", raw) if raw.endswith("0") and "." in raw else raw


@lru_cache(maxsize=16384)
def normalize_phone(raw: str, region: str = "RU") -> str:
    """Return the number in E.164 or raise :class:`BadInput`.

    ``8 (916) 123-45-67``, ``+7 916 123 45 67``, ``79161234567`` and ``9161234567`` are all ``+79161234567``
    with region ``RU``. Russian trunk prefix 8 and a missing ``+`` before a full international number are
    handled; a number that is not valid for its region is refused rather than stored half-right.
    """
    text = number_text(split_extension(clean_text(str(raw)))[0])
    if not text:
        raise BadInput("empty phone number")
    digits = re.sub(r"\D", "", text)
    candidates: list[tuple[str, str | None]] = [(text, region)]
    if not text.startswith("+") and digits:
        if region == "RU" and len(digits) == 11 and digits[0] in "78":
            candidates.insert(0, ("+7" + digits[1:], None))
        candidates.append(("+" + digits, None))
    for candidate, reg in candidates:
        try:
            parsed = phonenumbers.parse(candidate, reg)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise BadInput(f"not a valid phone number: {text!r} (default region {region})")


def split_phones(raw: str) -> list[str]:
    """Split a cell such as ``+7 916 123-45-67, 8 495 123 45 67`` into separate numbers (``,`` ``;`` ``/`` or a line
    break between them); an extension written after a comma (``…-67, доб. 12``) stays with its number."""
    pieces: list[str] = []
    for piece in _SPLIT.split(clean_text(raw)):
        piece = clean_text(piece)
        if not piece:
            continue
        if pieces and _EXTENSION_HINT.search(piece) is not None:
            number, extension = split_extension(piece)
            if extension and not any(ch.isdigit() for ch in number):
                pieces[-1] = f"{pieces[-1]} {piece}"
                continue
        pieces.append(piece)
    return pieces


@lru_cache(maxsize=16384)
def normalize_email(raw: str) -> str:
    """Return the address with its domain in IDNA-compatible lower case and the local part lower-cased.

    Raise :class:`BadInput` when it is not an address. Local parts are lower-cased too: every mail system the
    hub meets treats them case-insensitively, and two records that differ only in case are one person.
    """
    text = clean_text(clean_text(str(raw)).strip("<>").removeprefix("mailto:"))
    if not text:
        raise BadInput("empty email address")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise BadInput(f"not a valid email address: {text!r} ({exc})") from exc
    return f"{result.local_part.lower()}@{result.domain.lower()}"


# --- names ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def name_tokens(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words and the initials of a person's name, in lower case with ё as е: ``"Емельянова Л.С."`` →
    ``(("емельянова",), ("л", "с"))``."""
    words: list[str] = []
    initials: list[str] = []
    for token in _NAME_TOKEN.findall(clean_text(name).casefold().replace("ё", "е")):
        bare = token.rstrip(".")
        if len(bare) == 1:
            initials.append(bare)
        else:
            words.append(bare)
    return tuple(words), tuple(initials)


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter added, dropped, changed or two neighbours swapped (words of four letters or more)."""
    if min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def _match_words(small: tuple[str, ...], big: tuple[str, ...], *, fuzzy: bool) -> list[str] | None:
    """The words of ``big`` left once each word of ``small`` took one of them; None when one finds none."""
    left = list(big)
    for word in small:
        if word in left:
            left.remove(word)
            continue
        near = next((w for w in left if fuzzy and _one_edit_apart(word, w)), None)
        if near is None:
            return None
        left.remove(near)
    return left


def _initials_fit(initials: tuple[str, ...], others: list[str]) -> bool:
    """Each initial stands for one of the other side's unclaimed words; with none left it stands for a word the
    other side leaves out (``Коваленко О. А.`` and ``Оксана Коваленко``), which contradicts nothing."""
    left = list(others)
    for letter in initials:
        hit = next((w for w in left if w[0] == letter), None)
        if hit is not None:
            left.remove(hit)
        elif left:
            return False
    return True


@lru_cache(maxsize=65536)
def names_compatible(a: str, b: str) -> bool:
    """Whether two spellings can name one person: case, ё/е, word order, missing words, initials (``Емельянова
    Л.С.``) and a one-letter typo do not contradict; a different surname or first name does."""
    (wa, ia), (wb, ib) = name_tokens(a), name_tokens(b)
    if not (wa or ia) or not (wb or ib):
        return True
    if len(wa) > len(wb):
        (wa, ia), (wb, ib) = (wb, ib), (wa, ia)
    left = _match_words(wa, wb, fuzzy=True)
    if left is None:
        return False
    # initials on either side stand for words (or initials) of the other that no word has claimed
    return _initials_fit(ia, left + list(ib)) and _initials_fit(ib, [w for w in wa if w not in wb] + list(ia))


def name_adds_nothing(new: str, old: str) -> bool:
    """Whether ``new`` only repeats or shortens ``old`` (case, ё/е, order, fewer words, initials): a list that
    writes ``Емельянова Л.С.`` must not replace the ``Емельянова Людмила Сергеевна`` the hub already holds."""
    (wn, i_n), (wo, io) = name_tokens(new), name_tokens(old)
    if not (wo or io):
        return False
    left = _match_words(wn, wo, fuzzy=False)
    return left is not None and _initials_fit(i_n, left + list(io))


@lru_cache(maxsize=65536)
def company_name_key(name: str) -> str | None:
    """A company's name without what varies between lists: case, ё/е, quotes («», ""), punctuation and the legal
    form in words or letters (``Общество с ограниченной ответственностью`` = ``ООО``). None when nothing is left.

    Equal keys are a hint for a person to confirm (a merge candidate), never proof: only an INN is that.
    """
    text = clean_text(name).casefold().replace("ё", "е").translate(_QUOTES)
    text = _LEGAL_FORM_PHRASES.sub(" ", text)
    words = [w for w in re.split(r"[\s,.;:()]+", text) if w and w not in _LEGAL_FORM_WORDS]
    return " ".join(sorted(words))[:320] or None
