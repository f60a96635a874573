"""What an IMAP BODYSTRUCTURE (RFC 3501 §7.4.2) tells about a message's parts without downloading them: section
numbers, types, transfer encodings, charsets, file names and sizes. No hub imports."""

from __future__ import annotations

import binascii
import email.utils
import quopri
from dataclasses import dataclass
from typing import Any

from .charsets import decode_bytes


@dataclass(frozen=True)
class Part:
    section: str
    maintype: str
    subtype: str
    charset: str | None
    encoding: str
    size: int
    filename: str | None

    @property
    def is_text(self) -> bool:
        return self.maintype == "text" and self.subtype in ("plain", "html")

    @property
    def content_type(self) -> str:
        return f"{self.maintype}/{self.subtype}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        decoded, _ = decode_bytes(value)
        return decoded if decoded is not None else value.decode("latin-1")
    return "" if value is None else str(value)


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, tuple | list):
        return {}
    items = list(value)
    return {_text(items[i]).lower(): _text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _name(params: dict[str, str]) -> str | None:
    from .mime import decode_words

    for key in ("filename*", "name*"):
        if key in params:  # RFC 2231 charset'lang'percent-encoded
            charset, _lang, raw = email.utils.decode_rfc2231(params[key])
            data = email.utils.unquote(raw).encode("latin-1", "replace")
            from urllib.parse import unquote_to_bytes

            decoded, _ = decode_bytes(unquote_to_bytes(data), charset)
            if decoded is not None:
                return decoded
    for key in ("filename", "name"):
        if key in params:
            return decode_words(params[key])[0]
    return None


def _disposition(fields: list[Any]) -> tuple[str, dict[str, str]]:
    for value in fields:
        if isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[0], bytes):
            return _text(value[0]).lower(), _params(value[1])
    return "", {}


def parts_of(structure: Any, prefix: str = "") -> list[Part]:
    """Every leaf part of a BODYSTRUCTURE, depth first, with its IMAP section number (``1``, ``2.1``...)."""
    if structure is None:
        return []
    fields = list(structure)
    if fields and isinstance(fields[0], list):  # multipart: a list of children, then the subtype
        found: list[Part] = []
        for i, child in enumerate(fields[0], start=1):
            found += parts_of(child, f"{prefix}{i}.")
        return found
    maintype, subtype = _text(fields[0]).lower(), _text(fields[1]).lower()
    params = _params(fields[2])
    disposition, disp_params = _disposition(fields[7:])
    filename = _name(disp_params) or _name(params)
    if disposition == "attachment" and filename is None:
        filename = ""
    size = int(fields[6]) if len(fields) > 6 and isinstance(fields[6], int) else 0
    return [
        Part(
            section=(prefix.rstrip(".") or "1"),
            maintype=maintype,
            subtype=subtype,
            charset=params.get("charset"),
            encoding=_text(fields[5]).lower() if len(fields) > 5 else "7bit",
            size=size,
            filename=filename,
        )
    ]


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding on a possibly cut-off piece of a part."""
    if encoding == "base64":
        compact = b"".join(data.split())
        compact = compact[: len(compact) - len(compact) % 4]
        try:
            return binascii.a2b_base64(compact)
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data
