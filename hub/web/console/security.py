"""Who is asking: signed expiring session cookies, CSRF tokens on every form, roles, and login rate limiting.

The cookie carries a random session token signed with the console's secret and its issue time (itsdangerous);
the server keeps only the token's hash with its expiry (``hub.core.users``), so logging out or changing a
password ends a session at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from hub.core.hub import Hub
from hub.core.logging import register_secrets
from hub.core.settings import ConsoleSettings
from hub.core.users import Session, Users

SESSION_COOKIE = "hub_session"
LOGIN_CSRF_COOKIE = "hub_login_csrf"
COOKIE_PATH = "/console"


class Forbidden(Exception):
    """The logged-in user's role does not allow this page."""


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


class CsrfFailed(Exception):
    """A form came without the session's CSRF token (an old tab, or another site posting)."""


@dataclass
class Viewer:
    """The person a page is rendered for, and their session."""

    session: Session
    token: str

    @property
    def user(self) -> Any:
        return self.session.user

    @property
    def csrf(self) -> str:
        return self.session.csrf


class LoginThrottle:
    """Failed logins per key (username, client address) in a sliding window; in memory, per web process."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, *keys: str) -> int:
        """Seconds until a login may be tried again for any of ``keys``; 0 when it may now."""
        now = time.monotonic()
        longest = 0.0
        with self._lock:
            for key in keys:
                failures = self._failures.get(key)
                if not failures:
                    continue
                while failures and now - failures[0] > self.window_s:
                    failures.popleft()
                if len(failures) >= self.attempts:
                    longest = max(longest, self.window_s - (now - failures[0]))
        return int(longest) + 1 if longest else 0

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spray of made-up names
                self._failures.clear()
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.attempts * 2)).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


class Guard:
    """The console's security state for one hub: settings, the cookie signer, users and the login throttle."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings: ConsoleSettings = hub.settings.console
        self.zone: tzinfo = self.settings.zone()  # checked when the settings were read
        self.users = Users(hub.store, session_ttl=timedelta(hours=self.settings.session_hours))
        self.throttle = LoginThrottle(self.settings.login_attempts, self.settings.login_window_s)
        self._signer: URLSafeTimedSerializer | None = None

    @property
    def max_age_s(self) -> int:
        return int(self.settings.session_hours * 3600)

    def signer(self) -> URLSafeTimedSerializer:
        if self._signer is None:
            self._signer = URLSafeTimedSerializer(self._secret(), salt="hub-console-session")
        return self._signer

    def _secret(self) -> str:
        if self.settings.secret_key is not None:
            return self.settings.secret_key.get_secret_value()
        stored = self.hub.state.get("console", "secret_key")
        if not stored:
            self.hub.state.claim("console", "secret_key", secrets.token_urlsafe(48))  # one key for every process
            stored = self.hub.state.get("console", "secret_key")
        register_secrets([str(stored)])
        return str(stored)

    # --- cookies -----------------------------------------------------------------------------------------
    def cookie_value(self, token: str) -> str:
        return self.signer().dumps(token)

    def viewer(self, request: Request) -> Viewer | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            token = self.signer().loads(raw, max_age=self.max_age_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(token, str):
            return None
        session = self.users.session(token)
        return Viewer(session=session, token=token) if session else None


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and secrets.compare_digest(str(given).encode(), expected.encode())
