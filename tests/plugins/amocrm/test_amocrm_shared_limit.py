"""``hub run`` and a ``hub amocrm backfill`` started beside it share the account's 7 requests/s: zero 429s.

The sandbox counts requests in any one second, as amoCRM documents; the two are separate processes on one
database, as an operator runs them on day one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crm_hub_plugins.amocrm.sandbox import create_app
from hub.core.events import ClientObservation, SourceRef
from hub.testing import free_port, serve_asgi
from tests.conftest import wait_for

HUB = str(Path(sys.executable).parent / "hub")


def client_obs(n: int) -> ClientObservation:
    return ClientObservation(
        source=SourceRef(system="excel", account="x.xlsx", entity="row", id=str(n)),
        name=f"Клиент {n}",
        phones=[f"+7917{n:07d}"],
    )


@pytest.mark.slow
def test_a_daemon_and_a_cli_backfill_at_once_never_exceed_the_window(embedded: Any, tmp_path: Path) -> None:
    app = create_app(rate_limit=7, window=True)
    sandbox = app.state.sandbox
    with serve_asgi(app) as url:
        import httpx

        httpx.post(f"{url}/_sandbox/seed", json={"contacts": 2_000, "companies": 500}).raise_for_status()
        hub = embedded.hub()
        for n in range(400):  # the daemon's sink pushes these while the backfill reads
            hub.ingest(client_obs(n))
        hub.store.dispose()
        env = {
            **os.environ,
            **embedded.env(),
            "HUB_LOAD_PLUGINS": "amocrm",
            "HUB_HTTP__PORT": str(free_port()),
            "HUB_AMOCRM__BASE_URL": url,
            "HUB_AMOCRM__LONG_LIVED_TOKEN": sandbox.long_lived_token,
            "HUB_AMOCRM__RECONCILE_INTERVAL": "1",
        }
        daemon = subprocess.Popen([HUB, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: sandbox.requests > 0, timeout=60)
            backfill = subprocess.run(
                [HUB, "amocrm", "backfill", "--only", "contacts", "--only", "companies"],
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert backfill.returncode == 0, backfill.stderr[-2000:]
            pushed = sum(n for route, n in sandbox.by_route.items() if route.startswith("POST"))
            read = sandbox.by_route.get("GET /api/v4/contacts", 0)
        finally:
            daemon.terminate()
            daemon.wait(30)
    assert pushed > 0 and read >= 2_000 / 250, sandbox.by_route
    assert sandbox.rate_limited == 0, f"{sandbox.rate_limited} requests got 429 of {sandbox.requests}"
