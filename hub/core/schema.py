"""The database tables of the unified record, the timeline, the outbox and the operational stores.

Alembic migrations under ``migrations/`` create exactly these; ``tests/core/test_migrations.py`` checks both agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that are still INTEGER PRIMARY KEY (rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")
TZ = DateTime(timezone=True)

clients = Table(
    "clients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", Text),
    Column("search", Text, nullable=False),  # case-folded name, phones and emails: Cyrillic-safe search
    Column("company_id", Id, ForeignKey("clients.id")),
    Column("fields", JSON, nullable=False),  # {field: {"v": value, "s": origin, "t": iso time}}
    Column("version", Integer, nullable=False),
    Column("merged_into", Id, ForeignKey("clients.id")),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
Index("ix_clients_name", clients.c.name)

contact_points = Table(
    "contact_points",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("client_id", Id, ForeignKey("clients.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # phone, email, or an identity key such as inn
    Column("value", String(320), nullable=False),
    Column("origin", String(320), nullable=False),
    Column("observed_at", TZ, nullable=False),
    UniqueConstraint("client_id", "kind", "value"),
)
# (value, kind): one index serves the screen-pop lookup and the lookup of all of an observation's points
Index("ix_contact_points_lookup", contact_points.c.value, contact_points.c.kind)

refs = Table(
    "refs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("system", String(64), nullable=False),
    Column("account", String(255), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("ext_id", String(255), nullable=False),
    Column("target", String(8), nullable=False),  # client | item
    Column("target_id", Id, nullable=False),
    Column("created_at", TZ, nullable=False),
    UniqueConstraint("system", "account", "entity", "ext_id"),
)
Index("ix_refs_target", refs.c.target, refs.c.target_id)

items = Table(
    "items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("client_id", Id, ForeignKey("clients.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # interaction, deal, task
    Column("channel", String(16)),
    Column("occurred_at", TZ, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("source", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
Index("ix_items_timeline", items.c.client_id, items.c.occurred_at)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(32), nullable=False),
    Column("client_id", Id, nullable=False),
    Column("type", String(32), nullable=False),
    Column("origin", String(320), nullable=False),
    Column("payload", Text, nullable=False),
    Column("target_sink", String(255)),  # set when a dead letter is replayed to one sink only
    Column("created_at", TZ, nullable=False),
    Column("relayed", Boolean, nullable=False, default=False),
)
Index("ix_outbox_pending", outbox.c.relayed, outbox.c.id)
Index("ix_outbox_event", outbox.c.event_id)

deliveries = Table(
    "deliveries",
    metadata,
    Column("sink", String(255), primary_key=True),
    Column("event_id", String(32), primary_key=True),
    Column("outcome", String(16), nullable=False),  # delivered, skipped, dead
    Column("at", TZ, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("queue", String(255), nullable=False),  # sink name, or inbox:<kind>
    Column("event_id", String(64)),
    Column("client_id", Id),
    Column("payload", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("context", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # open, replayed
    Column("created_at", TZ, nullable=False),
    Column("replayed_at", TZ),
)
Index("ix_dead_letters_open", dead_letters.c.status, dead_letters.c.queue)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("dedup_key", String(255), unique=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", TZ, nullable=False),
    Column("error", Text),
    Column("created_at", TZ, nullable=False),
    Column("done_at", TZ),  # handled items with a dedup key stay a while, so a replayed hint is still a repeat
)
Index("ix_inbox_due", inbox.c.done_at, inbox.c.next_at)

merge_candidates = Table(
    "merge_candidates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("client_id", Id, nullable=False),
    Column("other_id", Id, nullable=False),
    Column("reason", String(320), nullable=False),
    Column("status", String(16), nullable=False),  # open, merged, dismissed
    Column("created_at", TZ, nullable=False),
    UniqueConstraint("client_id", "other_id", "reason"),
)

merges = Table(
    "merges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("winner_id", Id, nullable=False),
    Column("loser_id", Id, nullable=False),
    Column("moved", JSON, nullable=False),  # what moved, so the merge can be undone exactly
    Column("actor", String(255), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("undone_at", TZ),
)

state = Table(
    "state",
    metadata,
    Column("scope", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

# --- console: people who log in, their sessions and API tokens ----------------------------------------------
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("role", String(16), nullable=False),  # operator, admin
    Column("password_hash", String(255), nullable=False),
    Column("language", String(8), nullable=False),  # ru, en
    Column("extension", String(32)),  # the operator's PBX extension: call pop-ups and click-to-call
    Column("active", Boolean, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie's token, never the token
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # shown in lists so a token can be recognised, not used
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("last_used_at", TZ),
    Column("revoked_at", TZ),
)

# A company card lists its people: without this index that is a scan of every client.
Index("ix_clients_company", clients.c.company_id)

# SQLite only: a trigram full-text index over clients.search, kept by triggers (migration 0002), so a name,
# company or part of a phone is found without reading every client. Virtual tables live outside this metadata.
SEARCH_INDEX_TABLES = (
    "clients_fts",
    "clients_fts_data",
    "clients_fts_idx",
    "clients_fts_docsize",
    "clients_fts_config",
)
