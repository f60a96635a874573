"""One account of an external system (a Bitrix24 portal, an amoCRM account, a mailbox), as every connector needs it.

An :class:`Account` owns its rate limiter (one budget across processes), an HTTP client whose 429s pause that
budget, the one retry policy, tokens kept in ``hub.state`` (stored before use), the connect-once claim by the
remote's unique id, and the health ``/readyz`` and ``hub plugins list`` show. :class:`Accounts` is the registry
of one system's accounts of a hub, created once per hub through ``hub.runtime``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx
import structlog

from hub.core.errors import ConfigError
from hub.core.logging import register_secrets
from hub.core.ratelimit import Limiter
from hub.core.retry import RetryPolicy

log = structlog.get_logger("hub.accounts")

CLAIMS_SCOPE = "accounts:claims"  # state scope: "<system>:<unique id>" → the account key that owns it
# A Retry-After longer than this is not obeyed blindly: the account is marked degraded and retried sooner.
RETRY_AFTER_CAP = 60.0
STATUS_ORDER = {"ok": 0, "degraded": 1, "down": 2}


class StateLike(Protocol):
    def get(self, scope: str, key: str, default: Any = None) -> Any: ...

    def put(self, scope: str, key: str, value: Any) -> None: ...

    def claim(self, scope: str, key: str, value: Any) -> bool: ...

    def delete(self, scope: str, key: str) -> None: ...


class AccountHub(Protocol):
    """What an account uses of the hub (the :class:`hub.core.hub.Hub` has all of it)."""

    state: StateLike
    stop_event: threading.Event

    def limiter(self, name: str, spec: str) -> Limiter: ...

    def runtime(self, key: str, factory: Callable[[], Any]) -> Any: ...


def parse_retry_after(value: str | None, default: float = 60.0) -> float:
    """Seconds from a ``Retry-After`` header (seconds form); ``default`` when absent or unreadable."""
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return seconds if 0 <= seconds < 10**7 else default


class Account:
    """One account of an external system. Subclasses set ``system`` and build their API client on ``self.http``.

    ``key`` is the account string in every SourceRef (``acme.bitrix24.ru``); ``scope`` (``bitrix24:acme…``)
    names its limiter and its state. ``secrets`` (tokens, webhook codes) are registered for redaction in logs.
    """

    system: ClassVar[str] = ""
    retry_after_cap: ClassVar[float] = RETRY_AFTER_CAP

    def __init__(
        self,
        hub: AccountHub,
        key: str,
        *,
        rate_limit: str,
        timeout: float = 30.0,
        secrets: Iterable[str] = (),
        retry: RetryPolicy | None = None,
    ) -> None:
        if not self.system:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'system'")
        self.hub, self.key = hub, key
        self.scope = f"{self.system}:{key}"
        self.limiter = hub.limiter(self.scope, rate_limit)
        self.retry = retry or RetryPolicy()
        register_secrets([s for s in secrets if s])
        self.http = httpx.Client(timeout=timeout, event_hooks={"response": [self._on_response]})
        self._down: str | None = None
        self._degraded: tuple[str, float] | None = None  # (reason, until monotonic)
        self._answered = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    # --- pacing -----------------------------------------------------------------------------------------------
    def throttle(self, n: int = 1) -> float:
        """Block until ``n`` requests may go on the account's shared budget; return the seconds waited."""
        return self.limiter.acquire(n, stop=self.hub.stop_event)

    def rate_limited(self, retry_after: float | None) -> float:
        """The remote answered 429: pause every process's requests to this account; return the pause.

        A Retry-After beyond :attr:`retry_after_cap` is not obeyed as it is (a client created elsewhere would
        reach the CRM minutes late): the pause is capped, the account is marked degraded and the log says so.
        """
        asked = RETRY_AFTER_CAP if retry_after is None else retry_after
        wait = min(asked, self.retry_after_cap)
        if asked > self.retry_after_cap:
            log.error(
                "account.retry_after_capped",
                account=self.scope,
                asked_s=asked,
                waiting_s=wait,
                detail="the remote asked for a long pause; the hub waits less and marks the account degraded",
            )
        else:
            log.warning("account.rate_limited", account=self.scope, waiting_s=wait)
        self.limiter.pause(wait)
        self.limiter.fill()
        self.mark_degraded(f"rate limited (HTTP 429, Retry-After {asked:g} s)", for_seconds=max(wait, asked))
        return wait

    def _on_response(self, response: httpx.Response) -> None:
        self._answered = True
        if response.status_code == 429:
            self.rate_limited(parse_retry_after(response.headers.get("retry-after"), RETRY_AFTER_CAP))

    # --- tokens -----------------------------------------------------------------------------------------------
    def load_token(self, name: str) -> Any:
        """A token (or any small secret state) kept for this account in ``hub.state``; None when there is none."""
        return self.hub.state.get(self.scope, name)

    def store_token(self, name: str, value: Any) -> None:
        """Keep a token; committed before this returns, so a rotated refresh token is stored before it is used."""
        self.hub.state.put(self.scope, name, value)

    # --- connect once -----------------------------------------------------------------------------------------
    def owner_of(self, unique_id: str) -> str | None:
        owner = self.hub.state.get(CLAIMS_SCOPE, f"{self.system}:{unique_id}")
        return str(owner) if owner is not None else None

    def claim(self, unique_id: str) -> bool:
        """Claim the remote's unique id (member_id, account id) for this key; False when another key owns it."""
        return bool(unique_id) and self.hub.state.claim(CLAIMS_SCOPE, f"{self.system}:{unique_id}", self.key)

    def require_claim(self, unique_id: str) -> None:
        """:meth:`claim` or raise :class:`ConfigError` naming the owner: an account is connected once."""
        if not self.claim(unique_id):
            raise ConfigError(
                f"{self.system} account {unique_id} is already connected to this hub as {self.owner_of(unique_id)!r};"
                " an account is connected once (remove the other entry from the settings)"
            )

    def release_claim(self, unique_id: str) -> None:
        if self.owner_of(unique_id) == self.key:
            self.hub.state.delete(CLAIMS_SCOPE, f"{self.system}:{unique_id}")

    # --- health -----------------------------------------------------------------------------------------------
    def mark_down(self, reason: str) -> None:
        """Unreachable, token refused, banned: nothing can go until an operator or a later success clears it."""
        if self._down != reason:
            log.error("account.down", account=self.scope, reason=reason)
        self._down = reason

    def mark_degraded(self, reason: str, *, for_seconds: float) -> None:
        self._degraded = (reason, time.monotonic() + for_seconds)

    def mark_ok(self) -> None:
        """The account answered as it should: clear a down state."""
        if self._down is not None:
            log.info("account.up", account=self.scope)
        self._down = None
        self._answered = True

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded" | "down", "detail": …}``; subclasses add what they know (auth kind…)."""
        if self._down is not None:
            return {"status": "down", "detail": self._down}
        if self._degraded is not None and self._degraded[1] > time.monotonic():
            return {"status": "degraded", "detail": self._degraded[0]}
        if not self._answered:
            return {"status": "ok", "detail": "configured; not contacted yet"}
        return {"status": "ok"}

    def close(self) -> None:
        self.http.close()


AccountT = TypeVar("AccountT", bound=Account)


class Accounts(Generic[AccountT]):
    """The configured accounts of one system in one hub, by key. ``setting_hint`` names what to set when none is."""

    def __init__(self, system: str, accounts: Iterable[AccountT], *, setting_hint: str = "") -> None:
        self.system = system
        self.by_key: dict[str, AccountT] = {a.key: a for a in accounts}
        self.setting_hint = setting_hint

    @classmethod
    def of(cls, hub: AccountHub, system: str, factory: Callable[[], Accounts[AccountT]]) -> Accounts[AccountT]:
        """The registry of ``system`` in ``hub``, created once per hub (web route, sink, pollers and CLI share it)."""
        found: Accounts[AccountT] = hub.runtime(system, factory)
        return found

    def __iter__(self) -> Iterator[AccountT]:
        return iter(self.by_key.values())

    def __bool__(self) -> bool:
        return bool(self.by_key)

    def __len__(self) -> int:
        return len(self.by_key)

    def get(self, key: str | None = None) -> AccountT:
        """The account named ``key``, or the only one; :class:`ConfigError` saying what to choose or set."""
        if not self.by_key:
            hint = f"; set {self.setting_hint}" if self.setting_hint else ""
            raise ConfigError(f"no {self.system} account is configured{hint}")
        if key is None:
            if len(self.by_key) > 1:
                raise ConfigError(f"several {self.system} accounts are configured; choose one of {sorted(self.by_key)}")
            return next(iter(self.by_key.values()))
        try:
            return self.by_key[key]
        except KeyError:
            raise ConfigError(f"no {self.system} account {key!r}; configured: {sorted(self.by_key)}") from None

    def health(self) -> dict[str, Any] | None:
        """The worst status of the accounts and each one's report; None when none is configured."""
        reports = {a.key: a.health() for a in self}
        if not reports:
            return None
        worst = max((r["status"] for r in reports.values()), key=STATUS_ORDER.__getitem__)
        return {"status": worst, "accounts": reports}

    def close(self) -> None:
        for account in self:
            account.close()
