"""The hub's vocabulary: where a fact lives (SourceRef), what a plugin saw (Observation), what changed (Event).

Observations flow in from plugins; the core applies them to the unified record and publishes Events. Both are
pydantic models with a schema version and travel as JSON.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator, model_validator

from hub.core.bounds import (
    Amount,
    BigInt,
    DbId,
    Document,
    Duration,
    EmailText,
    FieldName,
    IdentityKey,
    IdentityValue,
    Line,
    PhoneText,
    Text,
    Url,
    Word,
    aware_in_range,
    not_in_the_future,
)

SCHEMA_VERSION: Literal[1] = 1

Scalar = Text | BigInt | float | bool | None
Fields = Annotated[dict[FieldName, Scalar], Field(max_length=500)]
Phones = Annotated[list[PhoneText], Field(max_length=50)]
Emails = Annotated[list[EmailText], Field(max_length=50)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so that comparisons of observation times never fail."""
    return aware_in_range(value)


class _Model(BaseModel):
    # NaN and Infinity measure nothing, and no JSON reader downstream (the API's answers) accepts them.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class SourceRef(_Model):
    """Where a fact lives outside the hub: ``bitrix24 / acme.bitrix24.ru / contact / 123``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)

    system: Annotated[Word, Field(min_length=1, max_length=64)]
    account: Word = ""
    entity: Annotated[Word, Field(min_length=1, max_length=64)]
    id: Annotated[Word, Field(min_length=1)]

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

    client_id: DbId | None = None
    ref: SourceRef | None = None
    phones: Phones = Field(default_factory=list)
    emails: Emails = Field(default_factory=list)
    name: Line | None = None
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
    def _utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        return not_in_the_future(_aware(value), info)


class ClientObservation(_ObservationBase):
    """A person or company as one system sees it. Only the fields given are considered; ``None`` means unknown."""

    kind: Literal["client"] = "client"
    client_kind: Literal["person", "company"] = "person"
    name: Line | None = None
    first_name: Line | None = None
    last_name: Line | None = None
    middle_name: Line | None = None
    position: Line | None = None
    company: ClientKey | None = None
    phones: Phones = Field(default_factory=list)
    emails: Emails = Field(default_factory=list)
    identity: dict[IdentityKey, IdentityValue] = Field(
        default_factory=dict, max_length=20, description="Extra identity keys, e.g. {'inn': '7707083893'}"
    )
    fields: Fields = Field(default_factory=dict, description="Custom fields, by the hub's field name")


class InteractionObservation(_ObservationBase):
    """A touchpoint: a call, an email, a note, a message or a meeting. Keyed by ``source``: stored once."""

    kind: Literal["interaction"] = "interaction"
    channel: Literal["call", "email", "note", "message", "meeting"]
    client: ClientKey
    direction: Literal["in", "out", "internal"] | None = None
    occurred_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: Duration | None = None
    status: Word | None = Field(default=None, description="call: answered, missed, busy, no_answer, cancelled, failed")
    subject: Line | None = None
    body: Document | None = None
    summary: Text | None = None
    recording_url: Url | None = None
    operator: Word | None = None
    fields: Fields = Field(default_factory=dict)

    @field_validator("occurred_at", "ended_at")
    @classmethod
    def _utc_optional(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> InteractionObservation:
        if self.occurred_at is not None and self.ended_at is not None and self.ended_at < self.occurred_at:
            raise ValueError(
                f"ended_at ({self.ended_at.isoformat()}) is before occurred_at ({self.occurred_at.isoformat()})"
            )
        return self


class DealObservation(_ObservationBase):
    """A deal, lead or order with its stage. Keyed by ``source``; stage changes are kept in its history."""

    kind: Literal["deal"] = "deal"
    client: ClientKey
    title: Line | None = None
    stage: Word | None = None
    pipeline: Word | None = None
    status: Literal["open", "won", "lost"] | None = None
    amount: Amount | None = None
    currency: Annotated[Word, Field(max_length=16)] | None = None
    fields: Fields = Field(default_factory=dict)


class TaskObservation(_ObservationBase):
    """A task or reminder (a call-back after a missed call, say). Keyed by ``source``."""

    kind: Literal["task"] = "task"
    client: ClientKey
    title: Line | None = None
    due_at: datetime | None = None
    assignee: Word | None = None
    done: bool | None = None
    fields: Fields = Field(default_factory=dict)

    @field_validator("due_at")
    @classmethod
    def _utc_due(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)


class RefObservation(_ObservationBase):
    """An external system assigned ``source`` to something the hub pushed there.

    ``target`` says what: ``client`` (``target_id`` is the client id) or ``item`` (an interaction, deal or
    task id). It links the id and emits nothing, so that the sink's own write does not come back as news.
    """

    kind: Literal["ref"] = "ref"
    target: Literal["client", "item"] = "client"
    target_id: DbId


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
