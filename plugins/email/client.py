"""The IMAP side of one mailbox, on IMAPClient: connect (TLS, STARTTLS or loopback plain), list folders, read new
messages by UID with ``BODY.PEEK`` (flags never change: folders are opened with EXAMINE), IDLE, append. No hub
imports; every error is one of the typed ones below, and no message carries the password."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import imapclient
from imapclient import IMAPClient
from imapclient import exceptions as imap_errors

from .structure import Part, parts_of

IDLE_SLICE_S = 1.0  # how often a wait in IDLE looks at the stop event


class MailboxError(Exception):
    """The mailbox cannot be read right now; ``retriable`` says whether trying again later can help."""

    retriable = True


class LoginRefused(MailboxError):
    retriable = False


class Unreachable(MailboxError):
    pass


class FolderGone(MailboxError):
    """The folder was deleted or renamed on the server."""


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    exists: int


@dataclass
class Fetched:
    """One message as read: ``data`` is the whole message, or its header only when ``parts`` is given (too big)."""

    uid: int
    size: int
    internal_date: datetime | None
    data: bytes
    parts: list[Part] | None = None
    text_part: bytes | None = None


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ImapMailbox:
    """A connection to one mailbox. Not thread-safe: one per listener or command."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        security: str = "tls",
        timeout: float = 60.0,
        ca_file: str | None = None,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self._password = password
        self.security = security
        self.timeout = timeout
        self.ca_file = ca_file
        self._conn: IMAPClient | None = None
        self.capabilities: frozenset[str] = frozenset()

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    # --- connection --------------------------------------------------------------------------------------------
    def connect(self) -> None:
        try:
            conn = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.security == "tls",
                ssl_context=tls_context(self.ca_file) if self.security == "tls" else None,
                timeout=self.timeout,
            )
            if self.security == "starttls":
                conn.starttls(tls_context(self.ca_file))
        except ssl.SSLError as exc:
            raise Unreachable(
                f"TLS with IMAP server {self.host}:{self.port} failed ({exc.reason or exc}); check "
                "HUB_EMAIL__IMAP__SECURITY and, for a private certificate, HUB_EMAIL__IMAP__CA_FILE"
            ) from None
        except (OSError, imaplib_errors()) as exc:
            raise Unreachable(f"cannot reach IMAP server {self.host}:{self.port}: {exc}") from None
        try:
            conn.login(self.username, self._password)
        except imap_errors.LoginError as exc:
            _close_quietly(conn)
            detail = str(exc).replace(self._password, "***")
            if "UNAVAILABLE" in detail:
                raise Unreachable(f"IMAP server {self.host} cannot check logins right now: {detail}") from None
            raise LoginRefused(
                f"IMAP login as {self.username} to {self.host} was refused ({detail}); check "
                "HUB_EMAIL__IMAP__USERNAME and HUB_EMAIL__IMAP__PASSWORD"
            ) from None
        except (OSError, imaplib_errors()) as exc:
            _close_quietly(conn)
            raise Unreachable(f"IMAP server {self.host} dropped the connection while logging in: {exc}") from None
        self._conn = conn
        self.capabilities = frozenset(c.decode().upper() for c in conn.capabilities())

    @property
    def conn(self) -> IMAPClient:
        if self._conn is None:
            self.connect()
        assert self._conn is not None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an IMAP command; a dropped link or a server error becomes :class:`Unreachable` (and is closed)."""
        try:
            return fn(*args, **kwargs)
        except (TimeoutError, OSError, imap_errors.IMAPClientAbortError) as exc:
            self.close()
            raise Unreachable(
                f"IMAP connection to {self.host} lost during {what}: {exc or type(exc).__name__}"
            ) from None

    # --- folders -----------------------------------------------------------------------------------------------
    def default_folders(self) -> list[str]:
        """INBOX and the folder the server marks ``\\Sent`` (RFC 6154), when it marks one."""
        found = ["INBOX"]
        for flags, _delim, name in self._call("LIST", self.conn.list_folders):
            if b"\\Sent" in flags and name not in found:
                found.append(name)
        return found

    def sent_folder(self) -> str | None:
        for flags, _delim, name in self._call("LIST", self.conn.list_folders):
            if b"\\Sent" in flags:
                return str(name)
        return None

    def examine(self, folder: str) -> FolderStatus:
        """Open ``folder`` read-only (EXAMINE), so nothing the hub does can change a flag."""
        try:
            info = self._call(f"EXAMINE {folder}", self.conn.select_folder, folder, readonly=True)
        except imap_errors.IMAPClientError as exc:
            if isinstance(exc, imap_errors.IMAPClientAbortError):
                raise
            raise FolderGone(
                f"folder {folder!r} of {self.where} cannot be opened (deleted or renamed?): {exc}"
            ) from None
        return FolderStatus(int(info[b"UIDVALIDITY"]), int(info.get(b"UIDNEXT") or 0), int(info.get(b"EXISTS") or 0))

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` in the open folder, ascending. (``UID n:*`` also names the last message when
        every UID is below n, hence the filter.)"""
        found = self._call("UID SEARCH", self.conn.search, ["UID", f"{last_uid + 1}:*"])
        return sorted(int(u) for u in found if int(u) > last_uid)

    # --- reading -----------------------------------------------------------------------------------------------
    def sizes(self, uids: list[int]) -> dict[int, tuple[int, datetime | None]]:
        found = self._call("FETCH sizes", self.conn.fetch, uids, ["RFC822.SIZE", "INTERNALDATE"])
        return {int(uid): (int(d.get(b"RFC822.SIZE") or 0), _aware(d.get(b"INTERNALDATE"))) for uid, d in found.items()}

    def fetch_whole(self, uids: list[int], sizes: dict[int, tuple[int, datetime | None]]) -> Iterator[Fetched]:
        found = self._call("FETCH BODY.PEEK[]", self.conn.fetch, uids, ["BODY.PEEK[]"])
        for uid in uids:
            data = found.get(uid, {}).get(b"BODY[]")
            if data is None:  # expunged between SEARCH and FETCH
                continue
            size, date = sizes.get(uid, (len(data), None))
            yield Fetched(uid, size, date, bytes(data))

    def fetch_capped(self, uid: int, size: int, date: datetime | None, body_bytes: int) -> Fetched | None:
        """A message too big to hold: its header, its structure, and the first ``body_bytes`` of its text."""
        found = self._call("FETCH header", self.conn.fetch, [uid], ["BODY.PEEK[HEADER]", "BODYSTRUCTURE"]).get(uid)
        if not found:
            return None
        parts = parts_of(found.get(b"BODYSTRUCTURE"))
        text = next((p for p in parts if p.is_text and p.filename is None and p.subtype == "plain"), None)
        text = text or next((p for p in parts if p.is_text and p.filename is None), None)
        fetched = Fetched(uid, size, date, bytes(found.get(b"BODY[HEADER]") or b""), parts=parts)
        if text is not None:
            section = f"BODY.PEEK[{text.section}]<0.{body_bytes}>"
            got = self._call("FETCH text", self.conn.fetch, [uid], [section]).get(uid, {})
            fetched.text_part = next((bytes(v) for k, v in got.items() if k.startswith(b"BODY[")), None)
        return fetched

    # --- waiting -----------------------------------------------------------------------------------------------
    @property
    def can_idle(self) -> bool:
        return "IDLE" in self.capabilities

    def idle(self, seconds: float, stop: threading.Event) -> bool:
        """IDLE in the open folder for up to ``seconds``; True as soon as the server reports a change."""
        conn = self.conn
        self._call("IDLE", conn.idle)
        changed = False
        try:
            waited = 0.0
            while waited < seconds and not stop.is_set():
                responses = self._call("IDLE", conn.idle_check, timeout=IDLE_SLICE_S)
                waited += IDLE_SLICE_S
                if any(_is_change(r) for r in responses):
                    changed = True
                    break
                if any(isinstance(r, tuple) and r[:1] == (b"BYE",) for r in responses):
                    raise Unreachable(f"IMAP server {self.host} closed the connection during IDLE")
        finally:
            if self._conn is not None:
                self._call("DONE", conn.idle_done)
        return changed

    def noop(self) -> None:
        """The watchdog: a command the server must answer, so a dead link shows within the socket timeout."""
        self._call("NOOP", self.conn.noop)

    def append(self, folder: str, message: bytes) -> None:
        self._call("APPEND", self.conn.append, folder, message, flags=[imapclient.SEEN])


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates and host names are always checked; ``ca_file`` adds a private CA to the system's."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _is_change(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"EXPUNGE", b"RECENT")


def imaplib_errors() -> type[Exception]:
    import imaplib

    return imaplib.IMAP4.error


def _close_quietly(conn: IMAPClient) -> None:
    try:
        conn.logout()
    except Exception:  # the link may be dead already; closing is all that is left
        with contextlib.suppress(Exception):
            conn.shutdown()
