"""Route guards of the console: every page asks for a role, every form for the session's CSRF token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from hub.core.hub import Hub
from hub.web.console.render import page
from hub.web.console.security import CsrfFailed, Forbidden, Guard, LoginRequired, Viewer, same_token

PREFIX = "/console"


def guard(request: Request) -> Guard:
    found: Guard = request.app.state.console_guard
    return found


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def operator(request: Request) -> Viewer:
    """Any logged-in user (operators and admins): clients, calls, tasks."""
    viewer = guard(request).viewer(request)
    if viewer is None:
        raise LoginRequired
    request.state.viewer = viewer
    return viewer


def admin(request: Request) -> Viewer:
    """Admins only: operations, dead letters, merges, reports, users."""
    viewer = operator(request)
    if not viewer.user.is_admin:
        raise Forbidden
    return viewer


async def checked_form(request: Request, viewer: Viewer) -> FormData:
    """The posted form, once its CSRF token matches the session's."""
    form = await request.form()
    token = form.get("csrf")
    if not same_token(token if isinstance(token, str) else None, viewer.csrf):
        raise CsrfFailed
    return form


def safe_next(target: str | None) -> str:
    """Only a path inside the console: ``next=https://evil.example`` or ``//evil`` must not redirect away."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/clients"


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def install_handlers(app: Any) -> None:
    async def login_required(request: Request, _exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET" or not request.url.path.startswith(PREFIX):
            target = PREFIX + "/clients"
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return Response(status_code=401)
        return see_other(f"{PREFIX}/login?next={quote(target)}")

    async def forbidden(request: Request, _exc: Exception) -> HTMLResponse:
        viewer = getattr(request.state, "viewer", None)
        return page(request, "error.html", viewer, status_code=403, message="You cannot open this page.")

    async def csrf_failed(request: Request, _exc: Exception) -> HTMLResponse:
        viewer = getattr(request.state, "viewer", None)
        return page(request, "error.html", viewer, status_code=403, message="The form expired; please try again.")

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfFailed, csrf_failed)
