"""Which numbers click-to-call may dial: allowed country codes and number types (phonenumbers' classification).

A page, a script or a stolen token that makes the PBX dial a premium-rate or satellite number costs real money
(toll fraud), so only ordinary numbers of the allowed countries are dialled unless the operator widens the policy.
"""

from __future__ import annotations

from typing import Annotated, Any

import phonenumbers
from phonenumbers import PhoneNumberType
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from hub.core.errors import BadInput

NUMBER_TYPES: dict[str, int] = {
    name.lower(): value for name, value in vars(PhoneNumberType).items() if name.isupper() and isinstance(value, int)
}
SAFE_TYPES = ["fixed_line", "mobile", "fixed_line_or_mobile", "toll_free"]


class DialPolicy(BaseModel):
    """``HUB_TELEPHONY__DIAL__COUNTRY_CODES=7,375``, ``HUB_TELEPHONY__DIAL__NUMBER_TYPES=fixed_line,mobile``."""

    country_codes: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Country calling codes click-to-call may dial; default: the region's."
    )
    number_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(SAFE_TYPES),
        description="Number types it may dial (premium_rate, shared_cost, voip, personal_number, uan, pager... "
        "are refused unless listed).",
    )
    allow_non_geographic: bool = Field(
        default=False, description="Allow non-geographic codes (satellite +881, +870, international networks +882)."
    )

    @field_validator("country_codes", "number_types", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip().lstrip("+") for v in value.strip("[]").split(",") if v.strip().strip("'\"")]
        return value

    @field_validator("number_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip().strip("'\"").lower() for v in value]
        unknown = [v for v in cleaned if v not in NUMBER_TYPES]
        if unknown:
            raise ValueError(f"unknown number type(s) {', '.join(unknown)}; use {', '.join(sorted(NUMBER_TYPES))}")
        return cleaned


def check_dialable(e164: str, policy: DialPolicy, region: str) -> None:
    """Raise :class:`BadInput` with the reason unless ``e164`` may be dialled under ``policy``."""
    parsed = phonenumbers.parse(e164)
    allowed = policy.country_codes or [phonenumbers.country_code_for_region(region)]
    if phonenumbers.region_code_for_number(parsed) == "001" and not policy.allow_non_geographic:
        raise BadInput(
            f"{e164} is a non-geographic number (satellite or international network, +{parsed.country_code}); "
            "click-to-call refuses it (HUB_TELEPHONY__DIAL__ALLOW_NON_GEOGRAPHIC)"
        )
    if parsed.country_code not in allowed:
        codes = ", ".join(f"+{c}" for c in allowed)
        raise BadInput(
            f"{e164} is outside the countries click-to-call may dial ({codes}); "
            "widen HUB_TELEPHONY__DIAL__COUNTRY_CODES to allow it"
        )
    kind = phonenumbers.number_type(parsed)
    name = next((n for n, v in NUMBER_TYPES.items() if v == kind), "unknown")
    if name not in policy.number_types:
        raise BadInput(
            f"{e164} is a {name.replace('_', '-')} number; click-to-call dials only "
            f"{', '.join(policy.number_types)} (HUB_TELEPHONY__DIAL__NUMBER_TYPES)"
        )
