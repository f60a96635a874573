"""Bytes to text for real-world mail: declared charset → valid UTF-8 → windows-1251/KOI8-R detection → give up.

Giving up returns ``None``: the caller keeps the raw bytes and flags the entry as not decoded, rather than storing
text full of ``?`` or ``�``. No hub imports.
"""

from __future__ import annotations

import codecs
import re

# Labels seen in the wild that Python's codec registry does not know (1C, old Outlook, misconfigured servers).
_ALIASES = {
    "win-1251": "cp1251",
    "win1251": "cp1251",
    "windows1251": "cp1251",
    "cp-1251": "cp1251",
    "x-cp1251": "cp1251",
    "x-win-1251": "cp1251",
    "koi8r": "koi8_r",
    "koi8": "koi8_r",
    "x-koi8-r": "koi8_r",
    "koi8-ru": "koi8_u",
    "utf8": "utf-8",
    "x-unicode-2-0-utf-8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "ks_c_5601-1987": "cp949",
    "x-user-defined": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "ascii",
    "x-mac-cyrillic": "mac_cyrillic",
}
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LOWER_CYRILLIC = re.compile(r"[а-яё]")
_BAD = re.compile(r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def codec_for(label: str | None) -> str | None:
    """The Python codec of a MIME charset label, or ``None`` when the label names nothing known."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        text = data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None
    return text


def guess_cyrillic(data: bytes) -> str | None:
    """Undeclared 8-bit Russian text: windows-1251 or KOI8-R, whichever reads as Russian; ``None`` if neither.

    Both code pages decode almost any byte string, so the choice is made on the result: Russian prose is mostly
    lower case, and the lower-case letters of one code page are the capitals of the other. A result whose
    non-ASCII characters are not mostly Cyrillic letters is no decoding at all.
    """
    best: tuple[float, str] | None = None
    for codec in ("cp1251", "koi8_r"):
        text = _strict(data, codec)
        if text is None or _BAD.search(text):
            continue
        non_ascii = sum(1 for ch in text if ord(ch) > 127)
        cyrillic = len(_CYRILLIC.findall(text))
        if not non_ascii or cyrillic / non_ascii < 0.7:
            continue
        score = len(_LOWER_CYRILLIC.findall(text)) / max(cyrillic, 1)
        if best is None or score > best[0]:
            best = (score, text)
    return best[1] if best else None


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str | None, str | None]:
    """``(text, codec used)``; ``(None, None)`` when no step of the chain reads the bytes."""
    codec = codec_for(declared)
    if codec is not None:
        text = _strict(data, codec)
        # ASCII declared but 8-bit sent (1C, old scripts): the declaration is wrong, go on down the chain.
        if text is not None:
            return text, codec
    if data.isascii():
        return data.decode("ascii"), "ascii"
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    text = guess_cyrillic(data)
    if text is not None:
        return text, "cp1251" if _strict(data, "cp1251") == text else "koi8_r"
    return None, None
