"""One message's bytes (RFC 5322, as an IMAP server or an MTA hands them over) onto the timeline, through the same
parsing, matching and mapping as a mailbox sync: for mail that arrives other than by IMAP (``hub demo``'s local
mail, a saved ``.eml``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.core.errors import BadInput

from .mapping import observations
from .matching import Company, decide
from .mime import parse_message


def record_message(
    hub: Any,
    data: bytes,
    *,
    company_addresses: Iterable[str],
    company_domains: Iterable[str] = (),
    mailbox: str,
    folder: str = "INBOX",
) -> list[int]:
    """Store one message once per client it is with (robots and internal mail: nothing); the timeline item ids.

    Threads follow References (their root), then In-Reply-To, as the mailbox sync does; a message read twice is
    stored once (its entries are keyed by Message-ID and client)."""
    parsed = parse_message(data)
    found = observations(
        parsed,
        decide(parsed, Company.of(company_addresses, company_domains)),
        thread_of=lambda _client: parsed.references[0] if parsed.references else parsed.in_reply_to or parsed.key,
        mailbox=mailbox,
        folder=folder,
        internal_date=None,
        create_clients=True,
    )
    ids = []
    for result in hub.ingest_many(found):
        if isinstance(result, BadInput):
            raise result
        if result.item_id is not None:
            ids.append(result.item_id)
    return ids
