"""Sending email from the hub: build the message (a Message-ID of the hub's own; In-Reply-To/References for a
reply), send it over SMTP, record it on the timeline through the same decoding as mail read from IMAP, and put a
copy in the Sent folder. The Sent copy has the same Message-ID, so reading Sent later stores nothing again."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

import structlog

from hub.core.errors import BadInput, ConfigError, ExternalAPIError
from hub.core.identity import normalize_email

from .client import MailboxError, tls_context
from .connection import MailboxAccount
from .mapping import observations
from .matching import decide
from .mime import parse_message
from .settings import SmtpSettings

log = structlog.get_logger("crm_hub_plugins.email")

SENT_BY_HUB = "(sent by the hub)"
MAX_BODY_CHARS = 1_000_000


@dataclass
class SentEmail:
    message_id: str
    recipients: list[str]
    item_ids: list[int]
    saved_to: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "recipients": self.recipients,
            "items": self.item_ids,
            "saved_to": self.saved_to,
        }


def _addresses(values: list[str], what: str) -> list[str]:
    found = []
    for value in values:
        try:
            found.append(normalize_email(value))
        except BadInput as exc:
            raise BadInput(f"{what}: {exc}") from None
    return found


class Sender:
    def __init__(self, account: MailboxAccount) -> None:
        self.account = account
        self.hub = account.facade

    def _smtp(self) -> SmtpSettings:
        smtp = self.account.settings.smtp
        if smtp is None:
            raise ConfigError(
                f"mailbox {self.account.key} has no SMTP server; set HUB_EMAIL__SMTP__HOST (and _USERNAME, _PASSWORD)"
            )
        return smtp

    def build(
        self,
        to: list[str],
        subject: str,
        body: str,
        *,
        cc: list[str] | None = None,
        reply_to_item: int | None = None,
    ) -> EmailMessage:
        smtp = self._smtp()
        recipients, copies = _addresses(to, "to"), _addresses(cc or [], "cc")
        if not recipients:
            raise BadInput("give at least one recipient in 'to'")
        if not subject.strip():
            raise BadInput("the subject is empty")
        if len(body) > MAX_BODY_CHARS:
            raise BadInput(f"the body is longer than {MAX_BODY_CHARS} characters")
        sender = (smtp.from_address or self.account.settings.own_address).strip()
        msg = EmailMessage(policy=SMTP)
        msg["From"] = formataddr((smtp.from_name or "", sender)) if smtp.from_name else sender
        msg["To"] = ", ".join(recipients)
        if copies:
            msg["Cc"] = ", ".join(copies)
        msg["Subject"] = subject.strip()
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(idstring="hub", domain=sender.rpartition("@")[2] or None)
        if reply_to_item is not None:
            self._thread(msg, reply_to_item)
        msg.set_content(body)
        return msg

    def _thread(self, msg: EmailMessage, item_id: int) -> None:
        item = self.hub.get_item(item_id)
        if item.channel != "email" or not item.fields.get("message_id"):
            raise BadInput(f"timeline item {item_id} is not an email with a Message-ID; it cannot be replied to")
        parent = f"<{item.fields['message_id']}>"
        references = str(item.fields.get("references") or "").split()
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join([*references, parent][-20:])

    def send(
        self,
        to: list[str],
        subject: str,
        body: str,
        *,
        cc: list[str] | None = None,
        reply_to_item: int | None = None,
    ) -> SentEmail:
        msg = self.build(to, subject, body, cc=cc, reply_to_item=reply_to_item)
        data = msg.as_bytes()
        recipients = [*msg.get_all("To", []), *msg.get_all("Cc", [])]
        rcpt = [a.strip() for line in recipients for a in str(line).split(",") if a.strip()]
        self._deliver(data, rcpt)
        message_id = str(msg["Message-ID"]).strip("<>")
        log.info("email.sent", mailbox=self.account.key, message_id=message_id, recipients=len(rcpt))
        item_ids = self._record(data)
        saved = self._save_sent(data)
        return SentEmail(message_id, rcpt, item_ids, saved)

    def _deliver(self, data: bytes, rcpt: list[str]) -> None:
        smtp = self._smtp()
        sender = smtp.from_address or self.account.settings.own_address
        try:
            server: smtplib.SMTP
            if smtp.security == "tls":
                server = smtplib.SMTP_SSL(
                    smtp.host, smtp.effective_port, timeout=smtp.timeout, context=tls_context(smtp.ca_file)
                )
            else:
                server = smtplib.SMTP(smtp.host, smtp.effective_port, timeout=smtp.timeout)
            with server:
                if smtp.security == "starttls":
                    server.starttls(context=tls_context(smtp.ca_file))
                if smtp.username and smtp.password is not None:
                    server.login(smtp.username, smtp.password.get_secret_value())
                server.sendmail(sender, rcpt, data)
        except smtplib.SMTPAuthenticationError as exc:
            raise ExternalAPIError(
                f"SMTP server {smtp.host} refused the login of {smtp.username} ({exc.smtp_code}); check "
                "HUB_EMAIL__SMTP__USERNAME and HUB_EMAIL__SMTP__PASSWORD",
                retriable=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise BadInput(f"the SMTP server refused the recipients {sorted(exc.recipients)}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise ExternalAPIError(
                f"could not send through SMTP server {smtp.host}:{smtp.effective_port}: {type(exc).__name__}: {exc}"
            ) from None

    def _record(self, data: bytes) -> list[int]:
        """The sent email on the timeline, read back exactly as IMAP would read it (same entry keys)."""
        parsed = parse_message(data)
        found = observations(
            parsed,
            decide(parsed, self.account.company),
            thread_of=lambda _client: parsed.references[0] if parsed.references else parsed.key,
            mailbox=self.account.key,
            folder=SENT_BY_HUB,
            internal_date=None,
            create_clients=True,
        )
        ids = []
        for result in self.hub.ingest_many(found):
            if isinstance(result, BadInput):
                log.warning("email.sent_not_recorded", mailbox=self.account.key, problem=str(result))
            elif result.item_id is not None:
                ids.append(result.item_id)
        return ids

    def _save_sent(self, data: bytes) -> str | None:
        if not self.account.section.save_sent:
            return None
        conn = self.account.mailbox()
        try:
            conn = self.account.connect()
            folder = conn.sent_folder()
            if folder is None:
                log.info("email.no_sent_folder", mailbox=self.account.key)
                return None
            conn.append(folder, data)
            return folder
        except (MailboxError, ConfigError) as exc:
            # Sent already and recorded on the timeline: a missing copy in Sent is worth a warning, not an error.
            log.warning("email.sent_copy_failed", mailbox=self.account.key, error=str(exc))
            return None
        finally:
            conn.close()
