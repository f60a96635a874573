"""Keeping one mailbox in sync inside ``hub run``: a reconnect loop around IDLE (or polling), with a NOOP watchdog
and a catch-up pass after every (re)connect, so mail that arrived while the link was down is read as soon as it
is back. Every failure marks the mailbox ``down`` in health and in the logs."""

from __future__ import annotations

import threading
import time

import structlog

from hub.progress import ProgressReporter

from .client import ImapMailbox, LoginRefused, MailboxError
from .connection import MailboxAccount
from .sync import MailboxSync

log = structlog.get_logger("crm_hub_plugins.email")

BACKOFF_MAX_S = 60.0
LOGIN_RETRY_S = 300.0  # a refused password does not fix itself in seconds; do not hammer the server with it


class MailboxListener:
    def __init__(self, account: MailboxAccount) -> None:
        self.account = account
        self.passes = 0  # finished sync passes (health, tests)

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            conn = self.account.mailbox()
            wait = backoff
            try:
                conn = self.account.connect()
                backoff = 1.0
                self._follow(conn, stop)
            except LoginRefused as exc:
                self.account.mark_down(str(exc))
                wait = LOGIN_RETRY_S
            except MailboxError as exc:
                self.account.mark_down(f"{exc}; reconnecting in {backoff:.0f} s")
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except Exception as exc:  # a bug must not end the listener silently: visible, then retried
                log.error("email.listener_failed", mailbox=self.account.key, error=f"{type(exc).__name__}: {exc}")
                self.account.mark_down(f"{type(exc).__name__}: {exc}")
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                conn.close()
            stop.wait(wait)

    def _follow(self, conn: ImapMailbox, stop: threading.Event) -> None:
        imap = self.account.settings.imap
        self._pass(conn)  # catch up on whatever arrived while we were away
        watch = (imap.folders or conn.default_folders())[0]
        use_idle = imap.idle and conn.can_idle
        last_pass = time.monotonic()
        while not stop.is_set():
            changed = False
            slice_s = min(imap.watchdog_interval, imap.idle_renew, imap.poll_interval)
            if use_idle:
                conn.examine(watch)
                changed = conn.idle(slice_s, stop)
            elif stop.wait(slice_s):
                return
            if stop.is_set():
                return
            conn.noop()  # the watchdog: a silent dead link fails here within the socket timeout
            if changed or time.monotonic() - last_pass >= imap.poll_interval:
                self._pass(conn)
                last_pass = time.monotonic()

    def _pass(self, conn: ImapMailbox) -> None:
        # Off a terminal: a progress log line every few seconds while a long (first) pass runs, one when it ends.
        with ProgressReporter(bar=False) as progress:
            MailboxSync(self.account, progress).sync(conn)
        self.passes += 1
