"""Operations figures: /readyz latency on the embedded default, and dead-letter paging at 10,000 letters.

Run: ``.venv/bin/python bench/operations.py`` (from the repository root).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from hub.core.dlq import LetterFilter, record_dead_letter
from hub.web.app import create_app
from tests.conftest import Backend

LETTERS = 10_000


def readyz_latency(hub) -> None:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        client.get("/readyz")
        took = []
        for _ in range(50):
            started = time.perf_counter()
            answer = client.get("/readyz")
            took.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(took), max(took)
    print(f"/readyz (embedded): median {median:.1f} ms, max {worst:.1f} ms, status {answer.status_code}")


def fill_letters(hub) -> None:
    with hub.store.write() as conn:
        for i in range(LETTERS):
            record_dead_letter(
                conn,
                queue="amocrm:acme" if i % 3 else "bitrix24:acme",
                payload="{}",
                error="ExternalAPIError: down (gave up after 8 attempts)" if i % 2 else "FatalDelivery: rejected",
                attempts=8,
                context={},
                event_id=f"e{i}",
            )


def paging(hub, backend: Backend) -> None:
    for where in (LetterFilter(), LetterFilter(queue="bitrix24:acme", kind="FatalDelivery")):
        started = time.perf_counter()
        page = hub.dlq.list(where=where, after=LETTERS // 2, limit=50)
        took = (time.perf_counter() - started) * 1000
        name = f"{where.queue or 'any queue'}, {where.kind or 'any kind'}"
        print(f"a page of {len(page)} at {LETTERS:,} letters ({name}): {took:.1f} ms")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= backend.env() | {"HUB_DISABLE_PLUGIN_AUTOLOAD": "1"}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "dlq", "list", "--limit", str(LETTERS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = len(out.stdout.splitlines())
    print(f"hub dlq list --limit {LETTERS} off a terminal: {lines} lines in {time.perf_counter() - started:.2f} s")


def main() -> None:
    backend = Backend("embedded", Path(tempfile.mkdtemp()))
    try:
        hub = backend.hub()
        hub.prepare()
        readyz_latency(hub)
        fill_letters(hub)
        paging(hub, backend)
    finally:
        backend.close()


if __name__ == "__main__":
    main()
