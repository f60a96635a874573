"""The limits every value from outside is held to before the core touches it: lengths, integer and time ranges,
no NUL characters, no phone numbers that cannot exist.

Each limit is there because a value past it fails further in (SQLite and PostgreSQL integers end at 2^63 - 1,
PostgreSQL text refuses NUL, an offset at year 1 or 9999 overflows) or does harm once stored (a name of a
megabyte, an ``observed_at`` in the far future that wins every later conflict).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

import phonenumbers
from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo

MAX_INT = 2**63 - 1
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_MAX_CLOCK_SKEW_S = 300.0
DEFAULT_REGION = "RU"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


Word = Annotated[str, StringConstraints(max_length=255), AfterValidator(_no_nul)]
"""A status, a stage, an operator, an account: one short word or name."""
Line = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_nul)]
"""A person's or company's name, a title, a subject."""
Text = Annotated[str, StringConstraints(max_length=100_000), AfterValidator(_no_nul)]
"""A custom field's value, a summary."""
Document = Annotated[str, StringConstraints(max_length=1_000_000), AfterValidator(_no_nul)]
"""The body of an email or a note: as large as a request body may be."""
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_no_nul)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_no_nul)]
IdentityKey = Annotated[str, StringConstraints(min_length=1, max_length=16), AfterValidator(_no_nul)]
IdentityValue = Annotated[str, StringConstraints(max_length=320), AfterValidator(_no_nul)]
EmailText = Annotated[str, StringConstraints(max_length=320), AfterValidator(_no_nul)]

DbId = Annotated[int, Field(ge=1, le=MAX_INT)]
"""A row id of the hub's database."""
BigInt = Annotated[int, Field(ge=-MAX_INT - 1, le=MAX_INT)]
Duration = Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)]
"""Seconds, at most about 115 days."""
Amount = Annotated[Decimal, Field(ge=-(10**15), le=10**15, allow_inf_nan=False)]


@lru_cache(maxsize=16384)
def impossible_phone(text: str, region: str) -> str | None:
    """Why ``text`` cannot be a real phone number as written in ``region``, or ``None`` when it may be one.

    ``8 (000) 000-00-00`` is a Russian number that cannot exist; read as digits only it would pass for an
    international freephone number (+800), so it is refused here, before any normalisation reinterprets it.
    Text that does not parse at all is left to normalisation, which says so.
    """
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if parsed.national_number == 0 and not text.startswith("+"):
        return f"{text!r} is not a phone number: its digits are all zero"
    if phonenumbers.is_possible_number(parsed) and not phonenumbers.is_valid_number(parsed):
        return f"{text!r} cannot be a real phone number (default region {region})"
    return None


def _plausible_phone(value: str, info: ValidationInfo) -> str:
    region = (info.context or {}).get("region") or DEFAULT_REGION
    problem = impossible_phone(value, region)
    if problem:
        raise ValueError(problem)
    return value


PhoneText = Annotated[str, StringConstraints(max_length=64), AfterValidator(_no_nul), AfterValidator(_plausible_phone)]


def aware_in_range(value: datetime) -> datetime:
    """``value`` in UTC (naive is taken as UTC), refused outside 1900–2199, where offsets and arithmetic hold."""
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range: use a time between 1900 and 2199") from None
    if not MIN_TIME <= aware < MAX_TIME:
        raise ValueError(f"{value.isoformat()} is out of range: use a time between 1900 and 2199")
    return aware


def not_in_the_future(value: datetime, info: ValidationInfo) -> datetime:
    """Refuse an observation time past now plus the allowed clock skew: the newest observation wins a
    conflict, so a time in the future would pin the value it carries for good."""
    skew = (info.context or {}).get("max_clock_skew_s", DEFAULT_MAX_CLOCK_SKEW_S)
    limit = datetime.now(UTC) + timedelta(seconds=skew)
    if value > limit:
        raise ValueError(
            f"{value.isoformat()} is in the future; the hub accepts observation times up to {skew:g} s past its"
            " clock (HUB_MAX_CLOCK_SKEW_S)"
        )
    return value


def validation_context(
    region: str = DEFAULT_REGION, max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
) -> dict[str, Any]:
    """The context observations are validated with: the default phone region and the clock skew allowed."""
    return {"region": region, "max_clock_skew_s": max_clock_skew_s}


def in_time_range(value: datetime) -> bool:
    """Whether an aware ``value`` is within the times observations accept (1900–2199)."""
    return MIN_TIME <= value < MAX_TIME
