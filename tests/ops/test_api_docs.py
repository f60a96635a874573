"""The API docs work offline (assets served by the hub, rendered by a real browser), can be turned off, and the
OpenAPI description has one operation id per operation."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

from hub import hookimpl
from hub.testing import serve_asgi
from hub.web.app import create_app

CHROMIUM = shutil.which("chromium")


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_are_served_by_the_hub(embedded, path):
    hub = embedded.hub()
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        page = client.get(path)
        assert page.status_code == 200
        assert "cdn." not in page.text and "fonts.googleapis" not in page.text and "https://" not in page.text
        scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
        assert scripts and all(client.get(src).status_code == 200 for src in scripts)


def test_api_docs_can_be_turned_off(embedded):
    hub = embedded.hub(http={"docs": False})
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 200


class TwoMethodRoute:
    @hookimpl
    def hub_register_routes(self, hub, register):
        from starlette.responses import PlainTextResponse

        from hub.core.sources import WebhookRoute

        async def handler(request):
            return PlainTextResponse("ok")

        register(WebhookRoute(path="/webhooks/demo", handler=handler, methods=("GET", "POST"), name="demo_hook"))


def test_every_operation_id_is_unique(embedded, recwarn):
    hub = embedded.hub([("demo", TwoMethodRoute())])
    hub.prepare()
    spec = create_app(hub).openapi()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert not [w for w in recwarn if "Duplicate Operation ID" in str(w.message)]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs the Debian chromium package")
@pytest.mark.parametrize(("path", "rendered"), [("/docs", 'class="opblock'), ("/redoc", "Apply one observation")])
def test_api_docs_render_in_a_browser_with_no_network(embedded, tmp_path, path, rendered):
    hub = embedded.hub()
    hub.prepare()
    with serve_asgi(create_app(hub)) as base:
        shown = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--proxy-server=http://127.0.0.1:9",  # anything not on the hub itself would fail to load
                "--proxy-bypass-list=127.0.0.1",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                base + path,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert rendered in shown.stdout and "/api/observations" in shown.stdout
