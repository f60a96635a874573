"""The hub's typed error hierarchy: each message says what happened and what to do."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(HubError):
    """A setting is missing or wrong; the message names the setting."""


class BadInput(HubError):
    """Input from outside (an observation, a webhook, a file) cannot be accepted as it is."""


class NotFound(HubError):
    """The thing asked for does not exist (a client id, a dead letter)."""


class ExternalAPIError(HubError):
    """An external system answered with an error.

    ``retriable`` tells the sink runner whether trying again can help; ``retry_after`` (seconds), when the
    remote said how long to wait, is honoured by the retry policy.
    """

    def __init__(
        self,
        message: str,
        *,
        retriable: bool = True,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after
        self.status = status


class FatalDelivery(ExternalAPIError):
    """Delivery can never succeed as it is (validation error, entity rejected): dead-letter it at once."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retriable=False, status=status)


def database_problem(exc: BaseException) -> str:
    """What the database said about a value it refused, without the statement or its parameters (client data)."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
