"""One configured mailbox at run time (its ``Account``): settings, the company it belongs to, how to connect, its
cursors in ``hub.state`` and the health that ``hub_health`` reports. A mailbox that stops answering shows as
``down`` here and in the logs, never silently.

Kept small on purpose: when the core grows an ``Account``/``Reconciler`` pair this is what moves onto them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from hub.core.errors import ConfigError
from plugins.email.client import ImapMailbox
from plugins.email.matching import Company
from plugins.email.settings import EmailSection, MailboxSettings

log = structlog.get_logger("plugins.email")

SCOPE = "email"  # hub.state scope prefix: "email:<mailbox>"


@dataclass(frozen=True)
class Cursor:
    """How far one folder has been read: valid only while the folder's UIDVALIDITY stays the same."""

    uidvalidity: int
    last_uid: int

    def as_dict(self) -> dict[str, int]:
        return {"uidvalidity": self.uidvalidity, "last_uid": self.last_uid}


class Account:
    """A mailbox as the hub uses it. ``key`` names it in logs, health, cursors and the ``mailbox`` field."""

    def __init__(self, hub: Any, settings: MailboxSettings, section: EmailSection) -> None:
        self.hub = hub
        self.settings = settings
        self.section = section
        self.key = settings.key
        self.scope = f"{SCOPE}:{self.key}"
        self.company = Company.of(
            [settings.own_address, *section.company_addresses, *settings.company_addresses],
            [*section.company_domains, *settings.company_domains],
        )
        self.create_clients = settings.create_unknown_clients and section.create_unknown_clients
        self._lock = threading.Lock()
        self._status = "unknown"
        self._detail: str | None = None
        self._last_ok: datetime | None = None
        self._since = time.monotonic()

    def __repr__(self) -> str:
        return f"Account({self.key!r})"

    def mailbox(self) -> ImapMailbox:
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

    # --- cursors (per mailbox, folder, UIDVALIDITY) -------------------------------------------------------
    def cursor(self, folder: str) -> Cursor | None:
        stored = self.hub.state.get(self.scope, f"cursor:{folder}")
        if isinstance(stored, dict) and "uidvalidity" in stored:
            return Cursor(int(stored["uidvalidity"]), int(stored.get("last_uid") or 0))
        return None

    def save_cursor(self, folder: str, cursor: Cursor) -> None:
        """Called only after what the cursor covers is stored (nothing lost on a crash, at worst read twice)."""
        self.hub.state.put(self.scope, f"cursor:{folder}", cursor.as_dict())

    def cursors(self) -> dict[str, Any]:
        return {
            k.removeprefix("cursor:"): v for k, v in self.hub.state.items(self.scope).items() if k.startswith("cursor:")
        }

    # --- health -------------------------------------------------------------------------------------------
    def mark_ok(self) -> None:
        with self._lock:
            if self._status != "ok":
                log.info("email.mailbox_up", mailbox=self.key, was=self._status)
            self._status, self._detail = "ok", None
            self._last_ok = datetime.now(UTC)

    def mark_down(self, detail: str) -> None:
        with self._lock:
            if self._status != "down" or self._detail != detail:
                log.error("email.mailbox_down", mailbox=self.key, error=detail)
            self._status, self._detail = "down", detail

    def mark_degraded(self, detail: str) -> None:
        with self._lock:
            if self._status != "degraded" or self._detail != detail:
                log.warning("email.mailbox_degraded", mailbox=self.key, problem=detail)
            self._status, self._detail = "degraded", detail

    @property
    def status(self) -> str:
        return self._status

    def health(self) -> dict[str, Any]:
        imap = self.settings.imap
        report: dict[str, Any] = {
            "status": "ok" if self._status == "unknown" else self._status,
            "server": f"{imap.host}:{imap.effective_port}",
            "user": imap.username,
            "last_ok": self._last_ok.isoformat() if self._last_ok else None,
        }
        if self._status == "unknown":
            report["detail"] = "not read yet"
        if self._detail:
            report["detail"] = self._detail
        return report


class Accounts:
    """Every configured mailbox of one hub, by key."""

    def __init__(self, hub: Any) -> None:
        self.section: EmailSection = hub.plugin_settings("email")
        self.by_key = {m.key: Account(hub, m, self.section) for m in self.section.configured()}

    def __iter__(self) -> Any:
        return iter(self.by_key.values())

    def __len__(self) -> int:
        return len(self.by_key)

    def get(self, key: str | None = None) -> Account:
        if not self.by_key:
            raise ConfigError("no mailbox is configured; set HUB_EMAIL__IMAP__HOST, _USERNAME and _PASSWORD")
        if key is None:
            if len(self.by_key) > 1:
                raise ConfigError(f"several mailboxes are configured; choose one of {sorted(self.by_key)}")
            return next(iter(self.by_key.values()))
        try:
            return self.by_key[key]
        except KeyError:
            raise ConfigError(f"no mailbox {key!r}; configured: {sorted(self.by_key)}") from None


def accounts(hub: Any) -> Accounts:
    """The mailboxes of ``hub``, made once per hub (listeners, routes and CLI share them)."""
    found: Accounts = hub.runtime("email", lambda: Accounts(hub))
    return found


def forget(hub: Any) -> None:
    hub.release_runtime("email")
