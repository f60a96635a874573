"""Logging in and out, a user's own settings (language, extension), and the admin's list of users."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.core.errors import BadInput, NotFound
from hub.core.users import LANGUAGES, ROLES
from hub.web.console.access import PREFIX, admin, checked_form, guard, operator, safe_next, see_other
from hub.web.console.render import page
from hub.web.console.security import COOKIE_PATH, LOGIN_CSRF_COOKIE, SESSION_COOKIE, Viewer, same_token

router = APIRouter()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    viewer = guard(request).viewer(request)
    if viewer is not None:
        return see_other(safe_next(next))
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", login_csrf=token, next=safe_next(next))
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path=COOKIE_PATH, secure=_secure(request)
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    g = guard(request)
    form = await request.form()
    username = str(form.get("username") or "").strip()[:64]
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    # Double-submit: the form's token must equal the cookie set with the form (another site can read neither).
    if not same_token(str(form.get("csrf") or ""), request.cookies.get(LOGIN_CSRF_COOKIE) or "-"):
        return page(
            request,
            "login.html",
            status_code=403,
            login_csrf="",
            next=target,
            error="The form expired; please try again.",
        )
    address = request.client.host if request.client else "?"
    keys = (f"user:{username.casefold()}", f"addr:{address}")
    wait = g.throttle.wait_s(*keys)
    if wait:
        response = page(
            request,
            "login.html",
            status_code=429,
            login_csrf=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
            next=target,
            error="Too many attempts. Try again in %(s)s s.",
            error_values={"s": wait},
        )
        response.headers["Retry-After"] = str(wait)
        return response
    user = await run_in_threadpool(g.users.authenticate, username, password)
    if user is None:
        g.throttle.failed(*keys)
        return page(
            request,
            "login.html",
            status_code=401,
            login_csrf=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
            next=target,
            error="Wrong username or password.",
            username=username,
        )
    g.throttle.succeeded(*keys)
    token, _session = await run_in_threadpool(g.users.start_session, user)
    redirect = see_other(target)
    redirect.set_cookie(
        SESSION_COOKIE,
        g.cookie_value(token),
        max_age=g.max_age_s,
        httponly=True,
        samesite="lax",
        path=COOKIE_PATH,
        secure=_secure(request),
    )
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return redirect


@router.post("/logout")
async def logout(request: Request, viewer: Viewer = Depends(operator)) -> Response:
    await checked_form(request, viewer)
    await run_in_threadpool(guard(request).users.end_session, viewer.token)
    response = see_other(f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/settings", response_class=HTMLResponse)
def settings_form(request: Request, viewer: Viewer = Depends(operator), saved: int = 0) -> Response:
    return page(request, "settings.html", viewer, languages=LANGUAGES, saved=bool(saved))


@router.post("/settings")
async def save_settings(request: Request, viewer: Viewer = Depends(operator)) -> Response:
    form = await checked_form(request, viewer)
    language = str(form.get("language") or viewer.user.language)
    extension = str(form.get("extension") or "").strip()[:32]
    try:
        await run_in_threadpool(
            guard(request).users.update, viewer.user.username, language=language, extension=extension
        )
    except BadInput as exc:
        return page(request, "settings.html", viewer, status_code=422, languages=LANGUAGES, error=str(exc))
    return see_other(f"{PREFIX}/settings?saved=1")


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, viewer: Viewer = Depends(admin)) -> Response:
    g = guard(request)
    return page(request, "users.html", viewer, users=g.users.all(), roles=ROLES, languages=LANGUAGES)


@router.post("/users")
async def add_user(request: Request, viewer: Viewer = Depends(admin)) -> Response:
    form = await checked_form(request, viewer)
    g = guard(request)
    try:
        await run_in_threadpool(
            lambda: g.users.add(
                str(form.get("username") or ""),
                str(form.get("password") or ""),
                role=str(form.get("role") or "operator"),
                display_name=str(form.get("display_name") or "") or None,
                language=str(form.get("language") or "ru"),
                extension=str(form.get("extension") or "") or None,
            )
        )
    except (BadInput, NotFound) as exc:
        users = await run_in_threadpool(g.users.all)
        return page(
            request,
            "users.html",
            viewer,
            status_code=422,
            users=users,
            roles=ROLES,
            languages=LANGUAGES,
            error=str(exc),
        )
    return see_other(f"{PREFIX}/users")
