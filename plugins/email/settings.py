"""Settings of the email plugin (``HUB_EMAIL__*``): one mailbox from the environment, more as ``[[email.mailboxes]]``.

Passwords stay ``SecretStr`` and never appear in messages; plain-text connections are refused unless the server is
on loopback or ``allow_plaintext`` says the operator means it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Security = Literal["tls", "starttls", "none"]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_DEFAULT_PORTS = {"imap": {"tls": 993, "starttls": 143, "none": 143}, "smtp": {"tls": 465, "starttls": 587, "none": 25}}


def _json_list(value: Any) -> Any:
    """``HUB_EMAIL__IMAP__FOLDERS='["INBOX", "Sent"]'``; a plain comma-separated list is accepted too."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(",") if v.strip()]
    return value


class _Server(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    host: str
    port: int | None = Field(None, ge=1, le=65535, description="Default: by protocol and security.")
    username: str | None = None
    password: SecretStr | None = None
    security: Security = "tls"
    allow_plaintext: bool = Field(False, description="Confirm security=none to a server beyond loopback.")
    timeout: float = Field(60.0, gt=0, description="Seconds a connection waits for the server before giving up.")
    ca_file: str | None = Field(
        None, description="A PEM file of certificates to trust besides the system's (a server with a private CA)."
    )

    _protocol = "imap"

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> _Server:
        if self.security == "none" and self.host.lower() not in _LOOPBACK and not self.allow_plaintext:
            raise ValueError(
                f"security=none sends the password in clear to {self.host}; use tls or starttls, or set "
                "allow_plaintext=true to confirm"
            )
        return self

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self._protocol][self.security]


class ImapSettings(_Server):
    """How the hub reads one mailbox (``HUB_EMAIL__IMAP__HOST|PORT|USERNAME|PASSWORD|SECURITY|FOLDERS``)."""

    username: str
    password: SecretStr
    folders: list[str] | None = Field(
        None, description="Folders to read; default INBOX and the folder the server marks \\Sent."
    )
    idle: bool = Field(True, description="Wait with IDLE where the server offers it; poll otherwise.")
    poll_interval: float = Field(60.0, gt=0, description="Seconds between polls (no IDLE) and between full passes.")
    idle_renew: float = Field(25 * 60.0, gt=0, le=29 * 60.0, description="IDLE is re-issued before 29 minutes.")
    watchdog_interval: float = Field(120.0, gt=0, description="Seconds between NOOPs that prove the link is alive.")

    @field_validator("folders", mode="before")
    @classmethod
    def _folders_json(cls, value: Any) -> Any:
        return _json_list(value)


class SmtpSettings(_Server):
    """How the hub sends email (``HUB_EMAIL__SMTP__HOST|PORT|USERNAME|PASSWORD|SECURITY|FROM_ADDRESS``)."""

    _protocol = "smtp"
    from_address: str | None = Field(None, description="The From address; default the mailbox's own address.")
    from_name: str | None = None


class Rules(BaseModel):
    """Who counts as the company, shared by every mailbox (a mailbox adds its own)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    company_addresses: list[str] = Field(default_factory=list, description="The mailbox's own address always counts.")
    company_domains: list[str] = Field(default_factory=list)
    create_unknown_clients: bool = Field(True, description="An unknown correspondent becomes a client.")

    @field_validator("company_addresses", "company_domains", mode="before")
    @classmethod
    def _lists_json(cls, value: Any) -> Any:
        return _json_list(value)


class MailboxSettings(Rules):
    """One mailbox: ``[[email.mailboxes]]`` with ``name``, an ``imap`` table and optionally ``smtp``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    name: str | None = Field(None, description="The mailbox key in logs, health and cursors; default its address.")
    address: str | None = Field(None, description="The mailbox's own address; default the IMAP user name.")
    imap: ImapSettings
    smtp: SmtpSettings | None = None

    @property
    def own_address(self) -> str:
        return (self.address or self.imap.username).strip().lower()

    @property
    def key(self) -> str:
        return self.name or self.own_address


class EmailSection(Rules):
    """The ``[email]`` section. ``imap`` (and ``smtp``) at the top level are one mailbox; ``mailboxes`` add more.

    Nothing is required, so an installed but unconfigured plugin does not stop the hub.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    name: str | None = None
    address: str | None = None
    imap: ImapSettings | None = None
    smtp: SmtpSettings | None = None
    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    max_body_chars: int = Field(100_000, ge=1_000, description="Longer bodies are cut (and flagged truncated).")
    max_message_bytes: int = Field(
        10_000_000, ge=10_000, description="Larger messages: headers and attachment list read, body capped."
    )
    fetch_batch: int = Field(200, ge=1, le=5_000, description="Messages fetched and stored per round trip.")
    save_sent: bool = Field(True, description="Sent email is appended to the mailbox's Sent folder too.")

    def configured(self) -> list[MailboxSettings]:
        """Every mailbox, the top-level one first; ValueError when two share a name."""
        found: list[MailboxSettings] = []
        if self.imap is not None:
            found.append(
                MailboxSettings(
                    name=self.name,
                    address=self.address,
                    imap=self.imap,
                    smtp=self.smtp,
                    company_addresses=[],
                    company_domains=[],
                    create_unknown_clients=self.create_unknown_clients,
                )
            )
        found += self.mailboxes
        keys = [m.key for m in found]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"mailbox {', '.join(twice)} is configured twice; give each mailbox once")
        logins = [f"{m.imap.username.lower()}@{m.imap.host.lower()}" for m in found]
        same = sorted({k for k in logins if logins.count(k) > 1})
        if same:
            raise ValueError(f"the IMAP login {', '.join(same)} is configured under two names; connect a mailbox once")
        return found

    @model_validator(mode="after")
    def _valid(self) -> EmailSection:
        self.configured()
        return self
