"""Who is asking: the one check of a bearer token, and the principal a request acts as (for the access log).

The API has one token today (``HUB_HTTP__API_TOKEN``); a per-user token store plugs in as another
:class:`Authenticator`. Webhook routes that take a bearer token compare it with :func:`bearer_matches`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    """Whoever a request acts as: ``kind`` is ``token`` (one API token), ``user`` (a person's token) or
    ``anonymous`` (no token configured: loopback only); ``name`` says which one, never the secret itself."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


ANONYMOUS = Principal("anonymous", "loopback")


class Authenticator(Protocol):
    """Turns the token a request presents into a principal, or ``None`` when the token is not known."""

    def authenticate(self, token: str) -> Principal | None: ...


class StaticToken:
    """One shared token (``HUB_HTTP__API_TOKEN``); every request with it acts as ``token:api``."""

    def __init__(self, token: SecretStr | str, name: str = "api") -> None:
        self._token = token.get_secret_value() if isinstance(token, SecretStr) else token
        self._principal = Principal("token", name)

    def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode(), self._token.encode()):
            return self._principal
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_matches(authorization: str | None, expected: SecretStr | str) -> bool:
    """Whether an ``Authorization`` header carries exactly ``expected`` as its bearer token (constant time)."""
    secret = expected.get_secret_value() if isinstance(expected, SecretStr) else expected
    given = bearer_token(authorization) or ""
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


def secret_problem(value: str) -> str | None:
    """Why ``value`` is too weak to guard anything, or ``None`` when it is long enough."""
    if len(value) < MIN_SECRET_LENGTH:
        return (
            f"must be at least {MIN_SECRET_LENGTH} characters (got {len(value)}); make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return None
