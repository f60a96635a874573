"""The web console: server-rendered pages for operators and admins, served by ``hub run`` under ``/console``.

Templates and static files live in this package; nothing is loaded from the internet and nothing needs building.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from hub.core.hub import Hub
from hub.web.console import auth, calls, clients, merges, ops, reports
from hub.web.console.access import PREFIX, install_handlers
from hub.web.console.render import HERE
from hub.web.console.security import Guard

ROUTERS = tuple(module.router for module in (auth, clients, calls, merges, ops, reports))


def mount_console(app: FastAPI, hub: Hub) -> None:
    """Add the console's pages to the hub's app; ``/`` leads to it."""
    app.state.console_guard = Guard(hub)
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console_static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/clients", status_code=303)


__all__ = ["PREFIX", "ROUTERS", "mount_console"]
