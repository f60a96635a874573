"""Phones and e-mails of a whole sheet normalised quickly, with exactly the results of ``hub.core.identity``.

Parsing text is what makes ``normalize_phone`` and ``normalize_email`` costly (tens of microseconds each); a sheet
of 100,000 rows holds as many distinct numbers, so a cache alone does not help. For the common shapes (Russian
numbers written with digits and punctuation, plain ASCII addresses) the canonical form is built directly and
checked against the same phonenumbers metadata; everything else takes the general path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from hub.core.errors import BadInput
from hub.core.identity import normalize_email, normalize_phone

SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE]\+?\d+")
_PHONE_PUNCTUATION = str.maketrans("", "", " ()-.\u00a0\t")
_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})"
)
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


@dataclass(frozen=True)
class _Desc:
    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    def matches(self, national: str) -> bool:
        if self.lengths and len(national) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(national) is not None


@dataclass(frozen=True)
class _RegionRules:
    leading: re.Pattern[str] | None
    general: _Desc
    types: tuple[_Desc, ...]
    by_length: dict[int, re.Pattern[str] | None]

    def any_type(self, national: str) -> bool:
        if not self.general.matches(national):
            return False
        length = len(national)
        if length not in self.by_length:
            # one alternation of every number type possible at this length: a single match instead of ten
            patterns = [
                f"(?:{d.pattern.pattern})"
                for d in self.types
                if d.pattern is not None and (not d.lengths or length in d.lengths)
            ]
            self.by_length[length] = re.compile("|".join(patterns)) if patterns else None
        combined = self.by_length[length]
        return combined is not None and combined.fullmatch(national) is not None


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc:
    if desc is None:
        return _Desc(frozenset(), None)
    pattern = desc.national_number_pattern
    return _Desc(frozenset(desc.possible_length or ()), re.compile(pattern) if pattern else None)


@cache
def _rules(region: str) -> _RegionRules | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if meta is None:
        return None
    kinds = (
        meta.premium_rate,
        meta.toll_free,
        meta.shared_cost,
        meta.voip,
        meta.personal_number,
        meta.pager,
        meta.uan,
        meta.voicemail,
        meta.fixed_line,
        meta.mobile,
    )
    return _RegionRules(
        leading=re.compile(meta.leading_digits) if meta.leading_digits else None,
        general=_desc(meta.general_desc),
        types=tuple(_desc(kind) for kind in kinds if kind is not None),
        by_length={},
    )


def valid_plus7(national: str) -> bool:
    """``phonenumbers.is_valid_number`` for +7 numbers, with the regular expressions compiled once."""
    for region in COUNTRY_CODE_TO_REGION_CODE.get(7, ()):
        rules = _rules(region)
        if rules is None:
            continue
        if rules.leading is not None:
            if rules.leading.match(national):
                return rules.any_type(national)
        elif rules.any_type(national):
            return True
    return False


def fast_ru_phone(piece: str) -> str | None:
    """The E.164 form ``normalize_phone(piece, "RU")`` gives, for a number of digits and punctuation; else None.

    None means "take the general path", not "invalid".
    """
    text = piece.translate(_PHONE_PUNCTUATION)
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    if len(digits) == 11 and (digits[0] == "7" or (digits[0] == "8" and not plus)):
        national = digits[1:]
    elif len(digits) == 10 and not plus and digits[0] in "34569":
        national = digits
    else:
        return None
    if national[0] == "0":
        return None
    return "+7" + national if valid_plus7(national) else None


def phone_or_reason(piece: str, region: str) -> tuple[str | None, str]:
    """``(e164, "")`` or ``(None, why)``: the why says what the user can do about it."""
    if SCIENTIFIC.fullmatch(piece):
        whole = _from_scientific(piece)
        if whole is None:
            return None, (
                f"phone {piece!r} was saved in scientific notation and lost its last digits; "
                "format the column as text in Excel and export again"
            )
        piece = whole
    if region == "RU":
        fast = fast_ru_phone(piece)
        if fast is not None:
            return fast, ""
        digits = sum(ch.isdigit() for ch in piece)
        # a local number read as international ("+1234567") would be a stranger's: refuse it before parsing
        if 5 <= digits <= 7 and not piece.lstrip().startswith("+"):
            return None, (
                f"phone {piece!r} has {digits} digits: a local number without an area code; "
                "write it with the city code, e.g. 8 495 123-45-67"
            )
    try:
        return normalize_phone(piece, region), ""
    except BadInput:
        return None, f"phone {piece!r} is not a valid number (region {region})"


def _from_scientific(piece: str) -> str | None:
    """``7.9161234567E10`` → ``79161234567``; None when the notation dropped digits (``7,92E+10``)."""
    text = piece.replace(",", ".")
    try:
        whole = str(int(Decimal(text)))
    except (InvalidOperation, ValueError):
        return None
    mantissa = text.lower().split("e")[0].lstrip("+-")
    significant = len(mantissa.replace(".", "").lstrip("0"))
    if significant < 10 or significant < len(whole.rstrip("0")):
        return None
    return whole


def email_or_reason(piece: str) -> tuple[str | None, str]:
    """``(address, "")`` as ``normalize_email`` gives it, or ``(None, why)``."""
    text = piece.strip().strip("<>").lower()
    match = _SIMPLE_EMAIL.fullmatch(text)
    if (
        match is not None
        and match.group(1) not in _SPECIAL_USE_TLDS
        and len(text) <= 254
        and len(text.partition("@")[0]) <= 64
    ):
        return text, ""
    try:
        return normalize_email(piece), ""
    except BadInput:
        return None, f"e-mail {piece!r} is not a valid address"
