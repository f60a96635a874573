"""Alembic environment: runs on the connection the hub hands over (``hub db upgrade``, start-up), or a URL."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from hub.core.schema import SEARCH_INDEX_TABLES, metadata

config = context.config


def include_name(name: str | None, type_: Any, _parents: Any) -> bool:
    """The SQLite search index is made by hand (a virtual table): autogenerate must not try to drop it."""
    return not (type_ == "table" and name in SEARCH_INDEX_TABLES)


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run()
