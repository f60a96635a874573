"""The hub's vocabulary: where a fact lives (SourceRef), what a plugin saw (Observation), what changed (Event).

Observations flow in from plugins; the core applies them to the unified record and publishes Events. Both are
pydantic models with a schema version and travel as JSON.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

SCHEMA_VERSION: Literal[1] = 1

Scalar = str | int | float | bool | None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so that comparisons of observation times never fail."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SourceRef(_Model):
    """Where a fact lives outside the hub: ``bitrix24 / acme.bitrix24.ru / contact / 123``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    system: Annotated[str, Field(min_length=1, max_length=64)]
    account: Annotated[str, Field(max_length=255)] = ""
    entity: Annotated[str, Field(min_length=1, max_length=64)]
    id: Annotated[str, Field(min_length=1, max_length=255)]

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @property
    def origin(self) -> str:
        """The system and account, the unit that echo suppression and source priority work on."""
        return f"{self.system}:{self.account}" if self.account else self.system

    def __str__(self) -> str:
        return f"{self.origin}/{self.entity}/{self.id}"


class ClientKey(_Model):
    """How an interaction, deal or task names its client.

    Resolution order: ``client_id``, then ``ref``, then phones, then emails; when nothing matches and
    ``create`` is true, a new client is made from the name, phones and emails given here.
    """

    client_id: int | None = None
    ref: SourceRef | None = None
    phones: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    name: str | None = None
    kind: Literal["person", "company"] = "person"
    create: bool = True
    name_if_empty: bool = Field(
        default=False,
        description="``name`` is a weak guess (a caller id name): it names a new client or one without a name, at "
        "the lowest rank, so that any name from another source replaces it and it never replaces one",
    )


class _ObservationBase(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    source: SourceRef
    observed_at: datetime = Field(default_factory=utcnow)

    @field_validator("observed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _aware(value)


class ClientObservation(_ObservationBase):
    """A person or company as one system sees it. Only the fields given are considered; ``None`` means unknown."""

    kind: Literal["client"] = "client"
    client_kind: Literal["person", "company"] = "person"
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    position: str | None = None
    company: ClientKey | None = None
    phones: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    identity: dict[str, str] = Field(
        default_factory=dict, description="Extra identity keys, e.g. {'inn': '7707083893'}"
    )
    fields: dict[str, Scalar] = Field(default_factory=dict, description="Custom fields, by the hub's field name")


class InteractionObservation(_ObservationBase):
    """A touchpoint: a call, an email, a note, a message or a meeting. Keyed by ``source``: stored once."""

    kind: Literal["interaction"] = "interaction"
    channel: Literal["call", "email", "note", "message", "meeting"]
    client: ClientKey
    direction: Literal["in", "out", "internal"] | None = None
    occurred_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    status: str | None = Field(default=None, description="call: answered, missed, busy, no_answer, cancelled, failed")
    subject: str | None = None
    body: str | None = None
    summary: str | None = None
    recording_url: str | None = None
    operator: str | None = None
    fields: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("occurred_at", "ended_at")
    @classmethod
    def _utc_optional(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)


class DealObservation(_ObservationBase):
    """A deal, lead or order with its stage. Keyed by ``source``; stage changes are kept in its history."""

    kind: Literal["deal"] = "deal"
    client: ClientKey
    title: str | None = None
    stage: str | None = None
    pipeline: str | None = None
    status: Literal["open", "won", "lost"] | None = None
    amount: Decimal | None = None
    currency: str | None = None
    fields: dict[str, Scalar] = Field(default_factory=dict)


class TaskObservation(_ObservationBase):
    """A task or reminder (a call-back after a missed call, say). Keyed by ``source``."""

    kind: Literal["task"] = "task"
    client: ClientKey
    title: str | None = None
    due_at: datetime | None = None
    assignee: str | None = None
    done: bool | None = None
    fields: dict[str, Scalar] = Field(default_factory=dict)


class RefObservation(_ObservationBase):
    """An external system assigned ``source`` to something the hub pushed there.

    ``target`` says what: ``client`` (``target_id`` is the client id) or ``item`` (an interaction, deal or
    task id). It links the id and emits nothing, so that the sink's own write does not come back as news.
    """

    kind: Literal["ref"] = "ref"
    target: Literal["client", "item"] = "client"
    target_id: int


Observation = Annotated[
    ClientObservation | InteractionObservation | DealObservation | TaskObservation | RefObservation,
    Field(discriminator="kind"),
]
observation_adapter: TypeAdapter[Observation] = TypeAdapter(Observation)
OBSERVATION_KINDS = ("client", "interaction", "deal", "task", "ref")


# --- Events -----------------------------------------------------------------------------------------------


class RefView(_Model):
    system: str
    account: str
    entity: str
    id: str


class ClientView(_Model):
    """A client as the API and the events show it."""

    id: int
    kind: Literal["person", "company"]
    name: str | None
    phones: list[str]
    emails: list[str]
    refs: list[RefView]
    fields: dict[str, Any] = Field(default_factory=dict)
    company_id: int | None = None
    version: int
    merged_into: int | None = None
    created_at: datetime
    updated_at: datetime


class ItemView(_Model):
    """A timeline entry (interaction, deal or task) as the API and the events show it."""

    id: int
    client_id: int
    kind: Literal["interaction", "deal", "task"]
    channel: str | None = None
    occurred_at: datetime
    fields: dict[str, Any]
    refs: list[RefView]
    version: int
    source: RefView


class Event(_Model):
    """What the core publishes after applying an observation; sinks receive these."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: Literal[
        "client.changed",
        "clients.merged",
        "interaction.added",
        "interaction.changed",
        "deal.changed",
        "task.changed",
    ]
    client_id: int
    version: int
    occurred_at: datetime = Field(default_factory=utcnow)
    origin: SourceRef
    changed: list[str] = Field(default_factory=list)
    client: ClientView
    item: ItemView | None = None
    merged_id: int | None = None

    @property
    def origin_key(self) -> str:
        return self.origin.origin
