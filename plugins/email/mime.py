"""One raw message (RFC 5322 bytes) to what the hub keeps of it: decoded headers, a plain-text body, attachments.

The stdlib ``email`` package parses the structure, with ``policy.compat32`` so that headers stay as sent: every
header is decoded here (the header registry of ``policy.default`` would cost most of the parse and replaces what it
cannot read). Every piece of text goes through the charset chain of :mod:`crm_hub_plugins.email.charsets`, so that an
unknown charset label, 8-bit headers or broken MIME never crash and never turn text into ``?``. No hub imports.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from .charsets import decode_bytes
from .html import html_to_text

_MSGID = re.compile(r"<([^<>\s]+)>")
_WS = re.compile(r"[ \t]*\r?\n[ \t]+")
_STABLE_HEADERS = ("from", "to", "cc", "date", "subject")


@dataclass(frozen=True)
class Address:
    email: str
    name: str = ""


@dataclass(frozen=True)
class Attachment:
    name: str | None
    content_type: str
    size: int


@dataclass
class ParsedEmail:
    """A message as the hub reads it. ``decoded`` is false when some text could not be read; ``raw`` then holds
    the bytes of that text so nothing is lost."""

    message_id: str | None
    subject: str
    sender: list[Address]
    to: list[Address]
    cc: list[Address]
    date: datetime | None
    in_reply_to: str | None
    references: list[str]
    body: str
    body_truncated: bool = False
    decoded: bool = True
    raw: bytes | None = None
    attachments: list[Attachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"
    problems: list[str] = field(default_factory=list)
    header_hash: str = ""

    @property
    def key(self) -> str:
        """The message's identity across folders and mailboxes: its Message-ID, else a hash of stable headers."""
        if self.message_id:
            key = self.message_id
            return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        return "hdr:" + self.header_hash


# --- headers ----------------------------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> list[str]:
    """The header values as sent: 8-bit bytes back as bytes decoded through the charset chain, folding undone."""
    values = []
    for key, value in msg.raw_items():
        if key.lower() != name:
            continue
        text = str(value)
        if not text.isascii():
            data = text.encode("utf-8", "surrogateescape")
            decoded, _ = decode_bytes(data)
            text = decoded if decoded is not None else data.decode("utf-8", "replace")
        values.append(_WS.sub(" ", text).strip())
    return values


def decode_words(value: str) -> tuple[str, bool]:
    """RFC 2047 encoded words (B and Q, split words, any charset label) to text; ``(text, fully decoded)``."""
    if "=?" not in value:
        return value, True
    try:
        chunks = email.header.decode_header(value)
    except (ValueError, LookupError, AssertionError):
        return value, False
    parts: list[str] = []
    ok = True
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
            continue
        text, _ = decode_bytes(chunk, charset)
        if text is None:
            ok = False
            text = chunk.decode("latin-1")
        parts.append(text)
    return "".join(parts), ok


def _header(msg: Message, name: str) -> tuple[str, bool]:
    values = _raw_header(msg, name)
    if not values:
        return "", True
    return decode_words(values[0])


def _addresses(msg: Message, *names: str) -> list[Address]:
    raw = [v for name in names for v in _raw_header(msg, name)]
    found: list[Address] = []
    seen: set[str] = set()
    for display, address in email.utils.getaddresses(raw):
        address = address.strip().strip("<>")
        if "@" not in address:
            continue
        key = address.lower()
        if key in seen:
            continue
        seen.add(key)
        name, _ = decode_words(display)
        found.append(Address(address, name.strip().strip('"').strip()))
    return found


def _message_ids(value: str) -> list[str]:
    return _MSGID.findall(value)


def _message_id(msg: Message) -> str | None:
    values = _raw_header(msg, "message-id")
    if not values:
        return None
    ids = _message_ids(values[0])
    if ids:
        return ids[0]
    token = values[0].strip()
    return token or None


def _date(msg: Message) -> datetime | None:
    values = _raw_header(msg, "date")
    if not values:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(values[0])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1980 <= parsed.year <= 2200:
        return None
    return parsed.astimezone(UTC)


def _header_hash(msg: Message) -> str:
    digest = hashlib.sha256()
    for name in _STABLE_HEADERS:
        for value in _raw_header(msg, name):
            digest.update(f"{name}:{value}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:40]


# --- body -------------------------------------------------------------------------------------------------------


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, LookupError, TypeError, AttributeError):
        name = None
    if name and not any(0xDC80 <= ord(ch) <= 0xDCFF or ch == "\ufffd" for ch in name):
        # Outlook puts RFC 2047 words inside the quoted parameter, which RFC 2231 parsing leaves as they are.
        return decode_words(str(name))[0] if "=?" in name else str(name)
    # 8-bit names or unknown charsets: read the raw parameter through the chain.
    for header in ("content-disposition", "content-type"):
        for value in _raw_header(part, header):
            found = re.search(r'(?:file)?name\s*=\s*"?([^";]+)"?', value, re.I)
            if found:
                text, _ = decode_words(found.group(1))
                return text
    return str(name) if name else None


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("content-disposition") or "").split(";", 1)[0].strip().lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart", "message") and disposition != "attachment":
        return bool(part.get_filename() and part.get_content_type() not in ("text/plain", "text/html"))
    return True


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a parser defect must never stop the sync; the raw text is the best we have
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    undecoded: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    is_report: bool = False


def _walk(msg: Message, body: _Body) -> None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "multipart/report":
            body.is_report = True
        if part.is_multipart():
            continue
        if _is_attachment(part):
            body.attachments.append(Attachment(_filename(part), ctype, len(_payload(part))))
            continue
        if part.get_content_maintype() != "text":
            continue
        data = _payload(part)
        text, _codec = decode_bytes(data, part.get_content_charset())
        if text is None:
            body.undecoded.append(data)
            body.problems.append(f"{ctype} part in an unknown charset ({part.get_content_charset() or 'undeclared'})")
            continue
        (body.html if ctype == "text/html" else body.plain).append(text)


def _clean(text: str) -> str:
    # Trailing blanks go, except in "-- ", the signature separator (RFC 3676 §4.3).
    lines = [
        line if line == "-- " else line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def parse_message(data: bytes, *, max_body_chars: int = 100_000) -> ParsedEmail:
    """Parse raw message bytes; never raises on bad input (defects are listed in ``problems``)."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    problems = [type(d).__name__ for d in getattr(msg, "defects", [])]
    subject, subject_ok = _header(msg, "subject")
    body = _Body()
    try:
        _walk(msg, body)
    except Exception as exc:  # the structure itself is unreadable: keep the whole message as raw bytes
        problems.append(f"unreadable MIME structure: {type(exc).__name__}")
        body.undecoded.append(data)
    text = "\n\n".join(t for t in body.plain if t.strip())
    if not text.strip() and body.html:
        text = "\n\n".join(html_to_text(h) for h in body.html)
    text = _clean(text)
    truncated = len(text) > max_body_chars
    in_reply_to = _message_ids(" ".join(_raw_header(msg, "in-reply-to")))
    headers = {
        name: " ".join(_raw_header(msg, name))
        for name in ("auto-submitted", "precedence", "x-autoreply", "x-autorespond", "x-loop", "x-failed-recipients")
        if _raw_header(msg, name)
    }
    undecoded = b"\n".join(body.undecoded)
    return ParsedEmail(
        message_id=_message_id(msg),
        subject=subject,
        sender=_addresses(msg, "from"),
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        date=_date(msg),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_message_ids(" ".join(_raw_header(msg, "references"))),
        body=text[:max_body_chars],
        body_truncated=truncated,
        decoded=subject_ok and not body.undecoded,
        raw=undecoded or None,
        attachments=body.attachments,
        headers=headers,
        content_type="multipart/report" if body.is_report else msg.get_content_type(),
        problems=problems + body.problems,
        header_hash=_header_hash(msg),
    )


def summary(parsed: ParsedEmail) -> dict[str, Any]:
    """A JSON-ready view for logs and the CLI (no body)."""
    return {
        "message_id": parsed.message_id,
        "subject": parsed.subject,
        "from": [a.email for a in parsed.sender],
        "to": [a.email for a in parsed.to],
        "decoded": parsed.decoded,
    }
