"""Normalising contact points: phones to E.164 with ``phonenumbers``, emails to one canonical form."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from hub.core.errors import BadInput

_SPLIT = re.compile(r"[;,\n]|\s{2,}|\s/\s")


@lru_cache(maxsize=16384)
def normalize_phone(raw: str, region: str = "RU") -> str:
    """Return the number in E.164 or raise :class:`BadInput`.

    ``8 (916) 123-45-67``, ``+7 916 123 45 67``, ``79161234567`` and ``9161234567`` are all ``+79161234567``
    with region ``RU``. Russian trunk prefix 8 and a missing ``+`` before a full international number are
    handled; a number that is not valid for its region is refused rather than stored half-right.
    """
    text = str(raw).strip()
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
    """Split a cell such as ``+7 916 123-45-67, 8 495 123 45 67`` into separate numbers."""
    return [p.strip() for p in _SPLIT.split(raw) if p and p.strip()]


@lru_cache(maxsize=16384)
def normalize_email(raw: str) -> str:
    """Return the address with its domain in IDNA-compatible lower case and the local part lower-cased.

    Raise :class:`BadInput` when it is not an address. Local parts are lower-cased too: every mail system the
    hub meets treats them case-insensitively, and two records that differ only in case are one person.
    """
    text = str(raw).strip().strip("<>").strip()
    if not text:
        raise BadInput("empty email address")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise BadInput(f"not a valid email address: {text!r} ({exc})") from exc
    return f"{result.local_part.lower()}@{result.domain.lower()}"
