"""People who use the console and the API: users with a role, password (argon2), sessions and personal API tokens.

Only hashes are stored: a session cookie's token and an API token are kept as their SHA-256, a password as its
argon2id hash. ``verify_api_token`` is what the HTTP layer calls for ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import SecretStr
from sqlalchemy import delete, func, insert, select, update

from hub.core import schema as s
from hub.core.auth import Authenticator, Principal, StaticToken
from hub.core.errors import BadInput, NotFound
from hub.core.record import as_utc
from hub.core.store import Store

ROLES = ("operator", "admin")
LANGUAGES = ("ru", "en")
TOKEN_PREFIX = "hubu_"
USE_NOTE_S = 300.0
_LAST_NOTED: dict[int, float] = {}
MIN_PASSWORD = 8

log = structlog.get_logger("hub.users")
_hasher = PasswordHasher()
# Checked when the username is unknown, so a wrong name costs as long as a wrong password (no user enumeration).
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    language: str
    extension: str | None
    active: bool
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    id: int
    user: User
    csrf: str
    expires_at: datetime


def _user(row: object) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    return User(
        id=r["id"],
        username=r["username"],
        display_name=r["display_name"],
        role=r["role"],
        language=r["language"],
        extension=r["extension"],
        active=bool(r["active"]),
        created_at=as_utc(r["created_at"]),
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise BadInput(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the password is too short: use at least {MIN_PASSWORD} characters")


class Users:
    """The one writer of the users, sessions and api_tokens tables."""

    def __init__(self, store: Store, *, session_ttl: timedelta = timedelta(hours=12)) -> None:
        self.store = store
        self.session_ttl = session_ttl

    # --- users -------------------------------------------------------------------------------------------
    def add(
        self,
        username: str,
        password: str,
        *,
        role: str = "operator",
        display_name: str | None = None,
        language: str = "ru",
        extension: str | None = None,
    ) -> User:
        username = username.strip()
        if not username or len(username) > 64 or any(c.isspace() for c in username):
            raise BadInput("a username is 1 to 64 characters without spaces")
        _check_role(role)
        _check_language(language)
        _check_password(password)
        now = _now()
        with self.store.write() as conn:
            if conn.execute(select(s.users.c.id).where(s.users.c.username == username)).first():
                raise BadInput(f"user {username!r} already exists; use 'hub users passwd' to change the password")
            conn.execute(
                insert(s.users).values(
                    username=username,
                    display_name=(display_name or username).strip(),
                    role=role,
                    password_hash=_hasher.hash(password),
                    language=language,
                    extension=(extension or None),
                    active=True,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get(username)

    def get(self, username: str) -> User:
        with self.store.read() as conn:
            row = conn.execute(select(s.users).where(s.users.c.username == username)).first()
        if row is None:
            raise NotFound(f"user {username!r} does not exist; add it with 'hub users add'")
        return _user(row)

    def all(self) -> list[User]:
        with self.store.read() as conn:
            return [_user(r) for r in conn.execute(select(s.users).order_by(s.users.c.username))]

    def count(self) -> int:
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(s.users)).scalar() or 0)

    def set_password(self, username: str, password: str) -> None:
        """Change the password and end every session of the user (a stolen cookie stops working)."""
        _check_password(password)
        user = self.get(username)
        with self.store.write() as conn:
            conn.execute(
                update(s.users)
                .where(s.users.c.id == user.id)
                .values(password_hash=_hasher.hash(password), updated_at=_now())
            )
            conn.execute(delete(s.sessions).where(s.sessions.c.user_id == user.id))

    def update(
        self,
        username: str,
        *,
        role: str | None = None,
        language: str | None = None,
        extension: str | None = None,
        display_name: str | None = None,
        active: bool | None = None,
    ) -> User:
        user = self.get(username)
        values: dict[str, object] = {"updated_at": _now()}
        if role is not None:
            _check_role(role)
            values["role"] = role
        if language is not None:
            _check_language(language)
            values["language"] = language
        if extension is not None:
            values["extension"] = extension.strip() or None
        if display_name is not None and display_name.strip():
            values["display_name"] = display_name.strip()
        if active is not None:
            values["active"] = active
        with self.store.write() as conn:
            conn.execute(update(s.users).where(s.users.c.id == user.id).values(**values))
            if active is False or (role is not None and role != user.role):
                conn.execute(delete(s.sessions).where(s.sessions.c.user_id == user.id))
        return self.get(username)

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this name and password, else ``None`` (after the same slow check either way)."""
        with self.store.read() as conn:
            row = conn.execute(select(s.users).where(s.users.c.username == username.strip())).first()
        stored = row._mapping["password_hash"] if row is not None else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row._mapping["active"]:
            return None
        if _hasher.check_needs_rehash(stored):
            with self.store.write() as conn:
                conn.execute(
                    update(s.users)
                    .where(s.users.c.id == row._mapping["id"])
                    .values(password_hash=_hasher.hash(password))
                )
        return _user(row)

    # --- sessions ----------------------------------------------------------------------------------------
    def start_session(self, user: User) -> tuple[str, Session]:
        """A new session: the token for the cookie (shown once) and the session with its CSRF token."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _now()
        expires = now + self.session_ttl
        with self.store.write() as conn:
            conn.execute(delete(s.sessions).where(s.sessions.c.expires_at < now))
            result = conn.execute(
                insert(s.sessions).values(
                    token_hash=_sha256(token), user_id=user.id, csrf=csrf, created_at=now, expires_at=expires
                )
            )
            assert result.inserted_primary_key is not None
            session_id = int(result.inserted_primary_key[0])
        return token, Session(id=session_id, user=user, csrf=csrf, expires_at=expires)

    def session(self, token: str) -> Session | None:
        """The live session of a cookie token, with its (active) user; ``None`` when unknown or expired."""
        query = (
            select(s.sessions.c.id, s.sessions.c.csrf, s.sessions.c.expires_at, s.users)
            .join(s.users, s.users.c.id == s.sessions.c.user_id)
            .where(s.sessions.c.token_hash == _sha256(token))
        )
        with self.store.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        m = row._mapping
        expires = as_utc(m["expires_at"])
        if expires <= _now() or not m["active"]:
            return None
        user = User(
            id=m[s.users.c.id],
            username=m["username"],
            display_name=m["display_name"],
            role=m["role"],
            language=m["language"],
            extension=m["extension"],
            active=True,
            created_at=as_utc(m["created_at"]),
        )
        return Session(id=m[s.sessions.c.id], user=user, csrf=m["csrf"], expires_at=expires)

    def end_session(self, token: str) -> None:
        with self.store.write() as conn:
            conn.execute(delete(s.sessions).where(s.sessions.c.token_hash == _sha256(token)))

    # --- API tokens --------------------------------------------------------------------------------------
    def create_api_token(self, username: str, name: str = "api") -> str:
        """A new personal API token for ``username``; the only time its value is shown."""
        user = self.get(username)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.store.write() as conn:
            conn.execute(
                insert(s.api_tokens).values(
                    token_hash=_sha256(token),
                    prefix=token[: len(TOKEN_PREFIX) + 4],
                    user_id=user.id,
                    name=name.strip() or "api",
                    created_at=_now(),
                )
            )
        return token

    def api_tokens(self) -> list[dict[str, Any]]:
        query = (
            select(s.api_tokens, s.users.c.username)
            .join(s.users, s.users.c.id == s.api_tokens.c.user_id)
            .order_by(s.api_tokens.c.id)
        )
        with self.store.read() as conn:
            return [
                {
                    "id": r.id,
                    "user": r.username,
                    "name": r.name,
                    "prefix": r.prefix,
                    "created_at": as_utc(r.created_at),
                    "last_used_at": as_utc(r.last_used_at) if r.last_used_at else None,
                    "revoked": r.revoked_at is not None,
                }
                for r in conn.execute(query)
            ]

    def revoke_api_token(self, token_id: int) -> None:
        with self.store.write() as conn:
            done = conn.execute(
                update(s.api_tokens)
                .where(s.api_tokens.c.id == token_id, s.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        if not done.rowcount:
            raise NotFound(f"no live API token {token_id}")

    def verify_api_token(self, token: str) -> User | None:
        """The user a personal API token acts for, or ``None`` (unknown, revoked, or its user disabled)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        query = (
            select(s.api_tokens.c.id.label("token_id"), s.api_tokens.c.revoked_at, s.users)
            .join(s.users, s.users.c.id == s.api_tokens.c.user_id)
            .where(s.api_tokens.c.token_hash == _sha256(token))
        )
        with self.store.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.revoked_at is not None or not row.active:
            return None
        self._note_use(int(row.token_id))
        return _user(row)

    def _note_use(self, token_id: int) -> None:
        """Record when a token was last used, at most every few minutes and off the caller's thread: the API's
        check runs on the event loop and must never wait for the database's write lock."""
        now = time.monotonic()
        if now - _LAST_NOTED.get(token_id, -USE_NOTE_S) < USE_NOTE_S:
            return
        _LAST_NOTED[token_id] = now

        def write() -> None:
            try:
                with self.store.write() as conn:
                    conn.execute(update(s.api_tokens).where(s.api_tokens.c.id == token_id).values(last_used_at=_now()))
            except Exception as exc:  # a lost "last used" time is not worth failing anything for
                log.warning("api token use not recorded", token_id=token_id, error=str(exc))

        threading.Thread(target=write, name="api-token-use", daemon=True).start()


class UserTokens:
    """The personal API tokens as an :class:`hub.core.auth.Authenticator`: a request acts as ``user:<name>``."""

    def __init__(self, store: Store) -> None:
        self.users = Users(store)

    def authenticate(self, token: str) -> Principal | None:
        user = self.users.verify_api_token(token)
        return Principal("user", user.username) if user is not None else None


class AnyToken:
    """The first of several authenticators that knows the token."""

    def __init__(self, *authenticators: Authenticator) -> None:
        self.authenticators = authenticators

    def authenticate(self, token: str) -> Principal | None:
        for authenticator in self.authenticators:
            found = authenticator.authenticate(token)
            if found is not None:
                return found
        return None


def api_authenticator(store: Store, api_token: SecretStr | None) -> Authenticator | None:
    """Who the REST API lets in: with ``HUB_HTTP__API_TOKEN`` set, that token or any user's personal token.

    Without it the API is open to loopback only, as before (``None``: the security layer lets everyone in).
    """
    if api_token is None:
        return None
    return AnyToken(StaticToken(api_token), UserTokens(store))


def verify_api_token(store: Store, token: str, api_token: SecretStr | None = None) -> Principal | None:
    """The bearer check of the REST API as one call: the configured single token, or a user's personal token."""
    authenticators: list[Authenticator] = [UserTokens(store)]
    if api_token is not None:
        authenticators.insert(0, StaticToken(api_token))
    return AnyToken(*authenticators).authenticate(token)
