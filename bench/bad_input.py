"""The bad-input cases of ``tests/web/test_bad_input.py`` as a table: what the hub answers to each, on SQLite
(and PostgreSQL with ``--postgres``). A case is good when it gets a 4xx; a 5xx or a 2xx is a hole.

Run: ``python bench/bad_input.py [--postgres]``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.core.hub import Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings
from hub.web.app import create_app
from tests.web.test_bad_input import BAD_BODIES, BAD_PATHS

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def probe(database_url: str, data_dir: Path) -> list[tuple[str, int]]:
    hub = Hub(load_settings(database_url=database_url, data_dir=data_dir), PluginHost(autoload=False))
    hub.migrate()
    hub.prepare()
    answers: list[tuple[str, int]] = []
    with TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False) as api:
        for name, body, _ in BAD_BODIES:
            raw = body.encode("latin-1") if name == "not UTF-8" else body.encode()
            r = api.post("/api/observations", content=raw, headers={"content-type": "application/json"})
            answers.append((f"POST /api/observations: {name}", r.status_code))
        for method, path in BAD_PATHS:
            answers.append((f"{method} {path[:60]}", api.request(method, path).status_code))
    hub.store.dispose()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    configure_logging(level="CRITICAL")
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        columns = {"sqlite": probe(f"sqlite:///{tmp}/hub.db", Path(tmp))}
        if args.postgres:
            import psycopg

            schema = "probe" + uuid.uuid4().hex[:8]
            with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            try:
                columns["postgres"] = probe(f"{PG}?options=-csearch_path%3D{schema}", Path(tmp))
            finally:
                with (
                    psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn,
                    contextlib.suppress(Exception),
                ):
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    names = [name for name, _ in columns["sqlite"]]
    print(f"{'case':<75} " + " ".join(f"{db:>8}" for db in columns))
    for i, name in enumerate(names):
        print(f"{name:<75} " + " ".join(f"{col[i][1]:>8}" for col in columns.values()))
    for db, col in columns.items():
        codes = [code for _, code in col]
        print(
            f"{db}: {len(codes)} cases, 4xx {sum(400 <= c < 500 for c in codes)}, "
            f"5xx {sum(c >= 500 for c in codes)}, accepted {sum(c < 400 for c in codes)}"
        )


if __name__ == "__main__":
    main()
