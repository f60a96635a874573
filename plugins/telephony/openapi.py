"""How the telephony routes look in the hub's OpenAPI description: their parameters and request bodies, so that
a reader (or a fuzzer) knows what each route takes. The handlers read raw requests; this is their contract."""

from __future__ import annotations

from typing import Any

from .generic import GenericCallEvent
from .zadarma import SIGNED_FIELDS

_TEXT = {"type": "string", "maxLength": 255}
_ERROR = {"description": "Refused, with the reason in 'detail'; nothing is stored"}


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": properties, "required": required}
            }
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


MANGO_EVENT: dict[str, Any] = {
    "parameters": [
        {
            "name": "kind",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": ["call", "summary", "recording"]},
            "description": "The VPBX event: events/call, events/summary or events/recording.",
        }
    ],
    "requestBody": _form(
        {
            "vpbx_api_key": {"type": "string", "description": "The VPBX API key (HUB_TELEPHONY__MANGO__API_KEY)."},
            "sign": {"type": "string", "description": "sha256(vpbx_api_key + json + vpbx_api_salt), hex."},
            "json": {"type": "string", "description": "The event, a JSON object, exactly as signed."},
        },
        ["vpbx_api_key", "sign", "json"],
    ),
    "responses": {"400": _ERROR, "401": {"description": "The signature does not match; nothing is stored"}},
}

_ZADARMA_FIELDS = sorted({name for names in SIGNED_FIELDS.values() for name in names} | {"disposition", "duration"})
ZADARMA_URL_CHECK: dict[str, Any] = {
    "parameters": [
        {
            "name": "zd_echo",
            "in": "query",
            "required": True,
            "schema": _TEXT,
            "description": "Zadarma's URL check: the value is answered back as plain text.",
        }
    ],
    "responses": {"400": _ERROR},
}
ZADARMA_NOTIFICATION: dict[str, Any] = {
    "parameters": [
        {
            "name": "Signature",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "base64(hex(HMAC-SHA1(secret, the event's signed fields))).",
        }
    ],
    "requestBody": _form(
        {"event": {"type": "string", "enum": sorted(SIGNED_FIELDS)}, "pbx_call_id": _TEXT}
        | {name: {"type": "string"} for name in _ZADARMA_FIELDS if name != "pbx_call_id"},
        ["event", "pbx_call_id"],
    ),
    "responses": {"400": _ERROR, "401": {"description": "The signature does not match; nothing is stored"}},
}

GENERIC_EVENT: dict[str, Any] = {
    "requestBody": _json(GenericCallEvent.model_json_schema(by_alias=True)),
    "responses": {"202": {"description": "Stored (or a repeat)"}, "400": _ERROR, "401": _ERROR, "422": _ERROR},
}

CLICK_TO_CALL: dict[str, Any] = {
    "requestBody": _json(
        {
            "type": "object",
            "properties": {
                "extension": {**_TEXT, "description": "The operator's extension to ring first."},
                "phone": {**_TEXT, "description": "The customer's number, any format."},
            },
            "required": ["extension", "phone"],
        }
    ),
    "responses": {"202": {"description": "Placed; follow it at Location"}, "409": _ERROR, "422": _ERROR},
}

CLICK_TO_CALL_STATUS: dict[str, Any] = {
    "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": _TEXT}],
    "responses": {"404": {"description": "No such request"}},
}

CALL_STATS: dict[str, Any] = {
    "parameters": [
        {"name": "since", "in": "query", "required": False, "schema": _TEXT, "description": "ISO date or time."},
        {"name": "until", "in": "query", "required": False, "schema": _TEXT, "description": "ISO date or time."},
        {"name": "tz", "in": "query", "required": False, "schema": _TEXT, "description": "IANA zone, default UTC."},
    ],
    "responses": {"422": _ERROR},
}
