"""Mailbox → timeline on the core's Reconciler: read each folder past its cursor, decode, match, store once, then
move the cursor.

The cursor is (mailbox, folder, UIDVALIDITY, last UID) and moves only after a batch is stored, so a crash or a
lost link re-reads at most one batch and a changed UIDVALIDITY re-reads the folder; the entry's SourceRef
(Message-ID and client, see :mod:`crm_hub_plugins.email.mapping`) makes both re-reads store nothing twice. Memory stays
bounded: messages are fetched in batches of ``fetch_batch`` and at most ``BATCH_BYTES`` at a time; a message over
``max_message_bytes`` is read as header, structure and the start of its text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from hub.core.errors import BadInput, ExternalAPIError
from hub.core.events import InteractionObservation
from hub.core.reconciler import Page, Progress, Reconciler

from .charsets import decode_bytes
from .client import Fetched, FolderGone, ImapMailbox
from .connection import Cursor, MailboxAccount
from .html import html_to_text
from .mapping import base_subject, is_reply_subject, observations
from .matching import canonical, decide
from .mime import Attachment, ParsedEmail, parse_message
from .structure import decode_transfer

log = structlog.get_logger("crm_hub_plugins.email")

BATCH_BYTES = 16_000_000  # whole messages held at once, at most (one bigger message is read capped instead)


@dataclass
class FolderReport:
    messages: int = 0
    stored: int = 0
    already_stored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    undecoded: int = 0
    rejected: int = 0
    capped: int = 0
    resynced: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False, {}) or k == "messages"}


@dataclass
class SyncReport:
    mailbox: str
    folders: dict[str, FolderReport] = field(default_factory=dict)

    @property
    def stored(self) -> int:
        return sum(f.stored for f in self.folders.values())

    @property
    def messages(self) -> int:
        return sum(f.messages for f in self.folders.values())

    def as_dict(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "folders": {k: v.as_dict() for k, v in self.folders.items()}}


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Prefixed:
    """Progress tasks named after the mailbox too, so two mailboxes' INBOXes are two bars."""

    def __init__(self, progress: Progress, mailbox: str) -> None:
        self.progress, self.mailbox = progress, mailbox

    def advance(self, name: str, n: int = 1, *, total: int | None = None) -> None:
        self.progress.advance(f"email {self.mailbox}/{name}", n, total=total)


class MailboxSync(Reconciler):
    """One pass over the folders of one mailbox: the core's Reconciler with each folder an entity, its cursor
    ``[UIDVALIDITY, last UID]`` and a page a UID batch. ``sync`` may be called again on the same open connection."""

    cursor_field = "uid"
    overlap = 0.0
    bulk_size = 200
    ordered = True  # UIDs ascend: the cursor may move after every stored bulk

    def __init__(self, account: MailboxAccount, progress: Progress | None = None) -> None:
        super().__init__(account.facade, account.key, scope=account.scope)
        self.facade = account.facade
        self.mailbox = account
        self.section = account.section
        self.progress = _Prefixed(progress, account.key) if progress is not None else None
        self._threads: dict[tuple[str, str], str] = {}  # (client, base subject) → thread, for header-less replies
        self._conn: ImapMailbox | None = None
        self._report = SyncReport(account.key)
        self._folder = FolderReport()
        self._seen: set[str] = set()

    # --- one pass ---------------------------------------------------------------------------------------------
    def sync(self, conn: ImapMailbox) -> SyncReport:
        self._conn, self._report = conn, SyncReport(self.mailbox.key)
        folders = self.mailbox.settings.imap.folders or conn.default_folders()
        summary = self.run(entities=folders, progress=self.progress)
        for outcome in summary.outcomes:
            folder = self._report.folders.setdefault(outcome.entity, FolderReport())
            folder.error = outcome.error
            folder.rejected += outcome.refused
            if outcome.refused and not self.mailbox.create_clients:
                folder.skipped["unknown correspondent"] = outcome.refused
                folder.rejected = 0
            elif outcome.refused:
                log.warning(
                    "email.entries_rejected", mailbox=self.mailbox.key, folder=outcome.entity, count=outcome.refused
                )
            folder.stored = outcome.stored + outcome.unchanged
        self._mark_health(folders)
        return self._report

    def _mark_health(self, folders: list[str]) -> None:
        gone = [f for f, r in self._report.folders.items() if r.error]
        if gone and len(gone) == len(folders):
            self.mailbox.mark_down(f"no folder can be opened: {', '.join(gone)}")
        elif gone:
            self.mailbox.mark_ok()
            self.mailbox.mark_degraded(
                f"folder(s) {', '.join(gone)} cannot be opened (deleted or renamed?)",
                for_seconds=2 * self.mailbox.settings.imap.poll_interval,
            )
        else:
            self.mailbox.mark_ok()

    # --- the Reconciler's side --------------------------------------------------------------------------------
    def cursor_of(self, entity: str, item: dict[str, Any]) -> Any:
        return Cursor(item["uidvalidity"], item["uid"]).dump()

    def pages(self, entity: str, since: Any) -> Iterator[Page]:
        conn = self._conn
        assert conn is not None, "MailboxSync.pages runs inside sync()"
        report = self._folder = self._report.folders[entity] = FolderReport()
        self._seen = set()
        try:
            status = conn.examine(entity)
        except FolderGone as exc:
            # One folder gone (deleted, renamed) must not stop the others; its cursor is kept for its return.
            log.warning("email.folder_unavailable", mailbox=self.mailbox.key, folder=entity, error=str(exc))
            raise ExternalAPIError(str(exc)) from None
        cursor = Cursor.load(since)
        last_uid = cursor.last_uid if cursor is not None and cursor.uidvalidity == status.uidvalidity else 0
        if cursor is not None and cursor.uidvalidity != status.uidvalidity:
            report.resynced = True
            log.warning(
                "email.uidvalidity_changed",
                mailbox=self.mailbox.key,
                folder=entity,
                was=cursor.uidvalidity,
                now=status.uidvalidity,
                action="reading the folder again; entries already stored are kept once",
            )
        if cursor is None or report.resynced:
            # The cursor starts (again) at this UIDVALIDITY, so a folder that stays empty is not re-read each pass.
            self.hub.state.put(self.cursor_scope, entity, Cursor(status.uidvalidity, 0).dump())
        uids = conn.uids_after(last_uid)
        for batch in _chunks(uids, self.section.fetch_batch):
            items = [
                {"uid": uid, "uidvalidity": status.uidvalidity, "message": message, "internal_date": date}
                for uid, message, date in self._read(conn, batch, report)
            ]
            report.messages += len(batch)
            if items and items[-1]["uid"] != batch[-1]:  # the batch's last message was expunged meanwhile
                items.append({"uid": batch[-1], "uidvalidity": status.uidvalidity, "message": None})
            yield Page(items, total=len(uids))

    def observe(self, entity: str, item: dict[str, Any]) -> Iterable[Any]:
        message: ParsedEmail | None = item.get("message")
        if message is None:
            return []
        return self._observations(message, item.get("internal_date"), entity, self._folder)

    # --- reading ----------------------------------------------------------------------------------------------
    def _read(
        self, conn: ImapMailbox, batch: list[int], report: FolderReport
    ) -> Iterator[tuple[int, ParsedEmail, datetime | None]]:
        sizes = conn.sizes(batch)
        limit = self.section.max_message_bytes
        group: list[int] = []
        held = 0
        for uid in batch:
            size, date = sizes.get(uid, (0, None))
            if uid not in sizes:
                continue
            if size > limit:
                report.capped += 1
                fetched = conn.fetch_capped(uid, size, date, self.section.max_body_chars * 2)
                if fetched is not None:
                    yield uid, self._parse_capped(fetched), fetched.internal_date
                continue
            if group and held + size > BATCH_BYTES:
                yield from self._parse_all(conn.fetch_whole(group, sizes))
                group, held = [], 0
            group.append(uid)
            held += size
        if group:
            yield from self._parse_all(conn.fetch_whole(group, sizes))

    def _parse_all(self, fetched: Iterator[Fetched]) -> Iterator[tuple[int, ParsedEmail, datetime | None]]:
        for item in fetched:
            yield item.uid, self._parse(item.data, item.uid), item.internal_date

    def _parse(self, data: bytes, uid: int) -> ParsedEmail:
        try:
            return parse_message(data, max_body_chars=self.section.max_body_chars)
        except Exception as exc:  # no parser reads it: keep the raw bytes, flagged, rather than lose it
            log.error("email.unparseable", mailbox=self.mailbox.key, uid=uid, error=f"{type(exc).__name__}: {exc}")
            try:
                parsed = parse_message(data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
            except Exception:  # not even the header block: an entry with nothing but the bytes
                parsed = ParsedEmail(None, "", [], [], [], None, None, [], "", header_hash=f"uid{uid}")
            parsed.decoded = False
            parsed.raw = data
            return parsed

    def _parse_capped(self, fetched: Fetched) -> ParsedEmail:
        parsed = self._parse(fetched.data, fetched.uid)
        parts = fetched.parts or []
        parsed.attachments = [
            Attachment(p.filename, p.content_type, p.size) for p in parts if not p.is_text or p.filename is not None
        ]
        text_part = next((p for p in parts if p.is_text and p.filename is None and p.subtype == "plain"), None)
        text_part = text_part or next((p for p in parts if p.is_text and p.filename is None), None)
        parsed.body_truncated = True
        if text_part is not None and fetched.text_part:
            raw = decode_transfer(fetched.text_part, text_part.encoding)
            text, _ = decode_bytes(raw, text_part.charset)
            if text is None:
                # Cut at an arbitrary byte: a multi-byte character may be split at the very end.
                text, _ = decode_bytes(raw[:-3], text_part.charset)
            if text is None:
                parsed.decoded, parsed.raw = False, raw
            else:
                body = html_to_text(text) if text_part.subtype == "html" else text.strip()
                parsed.body = body[: self.section.max_body_chars]
        log.warning(
            "email.message_capped",
            mailbox=self.mailbox.key,
            uid=fetched.uid,
            size=fetched.size,
            limit=self.section.max_message_bytes,
            kept="headers, attachment list, start of the text",
        )
        return parsed

    # --- storing ----------------------------------------------------------------------------------------------
    def thread_of(self, parsed: ParsedEmail, client: str) -> str:
        """References' root, else In-Reply-To, else an earlier message with the same correspondent and subject."""
        if parsed.references:
            return parsed.references[0]
        if parsed.in_reply_to:
            return parsed.in_reply_to
        key = (canonical(client), base_subject(parsed.subject))
        if is_reply_subject(parsed.subject) and key[1]:
            found = self._threads.get(key) or self._earlier_thread(*key)
            if found:
                return found
        self._threads.setdefault(key, parsed.key)
        return parsed.key

    def _earlier_thread(self, client: str, subject: str) -> str | None:
        try:
            clients = self.facade.find_clients(email=client, limit=1)
        except BadInput:
            return None
        for item in self.facade.timeline(clients[0].id, limit=500, kinds=["interaction"]) if clients else []:
            if item.channel == "email" and base_subject(str(item.fields.get("subject") or "")) == subject:
                thread = item.fields.get("thread")
                if thread:
                    return str(thread)
        return None

    def _observations(
        self, message: ParsedEmail, internal_date: datetime | None, folder: str, report: FolderReport
    ) -> list[InteractionObservation]:
        """The entries of one message not stored yet (the Reconciler ingests them and then moves the cursor)."""
        if not message.decoded:
            report.undecoded += 1
            log.warning(
                "email.not_decoded",
                mailbox=self.mailbox.key,
                folder=folder,
                message=message.key,
                problems=message.problems[:5],
                kept="raw bytes of the unreadable text",
            )
        decision = decide(message, self.mailbox.company)
        if decision.skipped:
            report.skipped[decision.skipped] = report.skipped.get(decision.skipped, 0) + 1
            return []
        found = []
        for obs in observations(
            message,
            decision,
            thread_of=partial(self.thread_of, message),
            mailbox=self.mailbox.key,
            folder=folder,
            internal_date=internal_date,
            create_clients=self.mailbox.create_clients,
        ):
            ref = str(obs.source)
            if ref in self._seen or self.facade.find_item(obs.source) is not None:
                report.already_stored += 1
                continue
            self._seen.add(ref)
            found.append(obs)
        return found
