"""A parsed email ↔ the hub's vocabulary: one email interaction per client it is with, keyed so it is stored once.

The SourceRef of an entry is the message's identity (Message-ID, else a header hash) and the client's address,
with no mailbox or folder in it: the same email read from INBOX and Sent, or from two mailboxes, is one entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hub.core.events import ClientKey, InteractionObservation, SourceRef

from .matching import Decision, canonical
from .mime import ParsedEmail

SYSTEM = "email"
ENTITY = "message"
MAX_RAW_BYTES = 256_000  # raw bytes kept for text no charset could read; more would bloat the timeline
_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|rv|отв|ответ|пересл)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*)+", re.I)


def entry_ref(message_key: str, client_address: str) -> SourceRef:
    entry = f"{message_key}|{canonical(client_address)}"
    if len(entry) > 255:
        entry = "sha256:" + hashlib.sha256(entry.encode()).hexdigest()
    return SourceRef(system=SYSTEM, entity=ENTITY, id=entry)


def base_subject(subject: str) -> str:
    """The subject without ``Re:``/``Fwd:``/``Отв:`` prefixes, in lower case, for threading by subject."""
    return re.sub(r"\s+", " ", _REPLY_PREFIX.sub("", subject)).strip().lower()


def is_reply_subject(subject: str) -> bool:
    return bool(_REPLY_PREFIX.match(subject))


def _addresses(parsed_list: Any) -> str:
    return ", ".join(f"{a.name} <{a.email}>" if a.name else a.email for a in parsed_list)


def observations(
    parsed: ParsedEmail,
    decision: Decision,
    *,
    thread_of: Callable[[str], str],
    mailbox: str,
    folder: str,
    internal_date: datetime | None,
    create_clients: bool,
) -> list[InteractionObservation]:
    """One observation per client of the message (none for robots and internal mail).

    ``thread_of(client address)`` names the conversation: the same email can continue a different thread with
    each of its clients (a subject-only reply is matched per correspondent).
    """
    if decision.skipped:
        return []
    fields: dict[str, str | int | float | bool | None] = {
        "message_id": parsed.message_id,
        "message_key": parsed.key,
        "from": _addresses(parsed.sender),
        "to": _addresses(parsed.to),
        "cc": _addresses(parsed.cc) or None,
        "in_reply_to": parsed.in_reply_to,
        "references": " ".join(f"<{r}>" for r in parsed.references) or None,
        "mailbox": mailbox,
        "folder": folder,
        "decoded": parsed.decoded,
        "date_from": "header" if parsed.date else "internaldate",
    }
    if parsed.attachments:
        fields["attachments"] = json.dumps(
            [{"name": a.name, "type": a.content_type, "size": a.size} for a in parsed.attachments], ensure_ascii=False
        )
    if parsed.body_truncated:
        fields["body_truncated"] = True
    if parsed.raw is not None:
        fields["raw_base64"] = base64.b64encode(parsed.raw[:MAX_RAW_BYTES]).decode("ascii")
    occurred = parsed.date or internal_date
    found = []
    for client in decision.clients:
        found.append(
            InteractionObservation(
                source=entry_ref(parsed.key, client.email),
                channel="email",
                client=ClientKey(emails=[client.email], name=client.name or None, create=create_clients),
                direction="out" if decision.direction == "out" else "in",
                occurred_at=occurred,
                subject=parsed.subject[:1000] or None,
                body=parsed.body or None,
                # The client's address of this entry: CRM sinks put it in the activity's communications.
                fields={**fields, "email": client.email, "thread": thread_of(client.email)},
            )
        )
    return found
