"""One configured mailbox at run time, on the core's :class:`hub.core.accounts.Account`: settings, the company it
belongs to, how to connect (once per IMAP login, logins paced on the account's shared budget), its cursors and the
health ``/readyz`` and ``hub plugins list`` show. A mailbox that stops answering is ``down`` there and in the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from hub.core.accounts import Account, AccountHub, Accounts

from .client import ImapMailbox
from .matching import Company
from .settings import EmailSection, MailboxSettings

if TYPE_CHECKING:
    from hub.core.hub import Hub

SYSTEM = "email"
# IMAP servers count logins, not commands (Yandex and Mail.ru block a mailbox that logs in too often): the budget
# paces connections of every process of the hub, so a crash loop cannot lock the mailbox.
LOGIN_RATE = "10/min burst 5"


@dataclass(frozen=True)
class Cursor:
    """How far one folder has been read: valid only while the folder's UIDVALIDITY stays the same.

    Stored as ``[uidvalidity, last_uid]``, which sorts the way the cursor moves: RFC 3501 §2.3.1.1 makes a new
    UIDVALIDITY greater than every earlier one.
    """

    uidvalidity: int
    last_uid: int

    @classmethod
    def load(cls, value: Any) -> Cursor | None:
        if isinstance(value, list | tuple) and len(value) == 2:
            return cls(int(value[0]), int(value[1]))
        return None

    def dump(self) -> list[int]:
        return [self.uidvalidity, self.last_uid]


class MailboxAccount(Account):
    """A mailbox as the hub uses it. ``key`` names it in logs, health, cursors and the ``mailbox`` field."""

    system = SYSTEM

    def __init__(self, hub: Hub, settings: MailboxSettings, section: EmailSection) -> None:
        imap = settings.imap
        secrets = [imap.password.get_secret_value()]
        if settings.smtp is not None and settings.smtp.password is not None:
            secrets.append(settings.smtp.password.get_secret_value())
        # AccountHub declares ``state`` as a plain (so invariant) protocol attribute; the Hub's StateStore has it all.
        core = cast("AccountHub", hub)
        super().__init__(core, settings.key, rate_limit=LOGIN_RATE, timeout=imap.timeout, secrets=secrets)
        self.facade = hub  # the whole hub (the base class types only the part it uses)
        self.settings = settings
        self.section = section
        self.company = Company.of(
            [settings.own_address, *section.company_addresses, *settings.company_addresses],
            [*section.company_domains, *settings.company_domains],
        )
        self.create_clients = settings.create_unknown_clients and section.create_unknown_clients
        self.cursor_scope = f"{self.scope}:cursors"  # the Reconciler's scope for this account
        self._last_ok: datetime | None = None

    @property
    def login(self) -> str:
        """The remote's unique id for the connect-once claim: one IMAP login is one mailbox."""
        imap = self.settings.imap
        return f"{imap.username.lower()}@{imap.host.lower()}:{imap.effective_port}"

    def mailbox(self) -> ImapMailbox:
        """A connection not opened yet (``connect()`` it, or use :meth:`connect`)."""
        imap = self.settings.imap
        return ImapMailbox(
            imap.host,
            imap.effective_port,
            imap.username,
            imap.password.get_secret_value(),
            security=imap.security,
            timeout=imap.timeout,
            ca_file=imap.ca_file,
        )

    def connect(self) -> ImapMailbox:
        """Claim the login for this key, wait for the login budget, connect and log in."""
        self.require_claim(self.login)
        self.throttle()
        conn = self.mailbox()
        conn.connect()
        return conn

    def cursor(self, folder: str) -> Cursor | None:
        return Cursor.load(self.hub.state.get(self.cursor_scope, folder))

    def cursors(self) -> dict[str, Any]:
        return dict(self.facade.state.items(self.cursor_scope))

    def mark_ok(self) -> None:
        super().mark_ok()
        self._last_ok = datetime.now(UTC)

    def health(self) -> dict[str, Any]:
        imap = self.settings.imap
        report = super().health()
        report.update(
            server=f"{imap.host}:{imap.effective_port}",
            user=imap.username,
            last_ok=self._last_ok.isoformat() if self._last_ok else None,
        )
        return report


def accounts(hub: Any) -> Accounts[MailboxAccount]:
    """The mailboxes of ``hub``, made once per hub (listeners, routes and CLI share them)."""

    def make() -> Accounts[MailboxAccount]:
        section: EmailSection = hub.plugin_settings("email")
        return Accounts(
            SYSTEM,
            [MailboxAccount(hub, m, section) for m in section.configured()],
            setting_hint="HUB_EMAIL__IMAP__HOST, HUB_EMAIL__IMAP__USERNAME and HUB_EMAIL__IMAP__PASSWORD",
        )

    return Accounts.of(hub, SYSTEM, make)


def forget(hub: Any) -> None:
    hub.release_runtime(SYSTEM)
