"""Client pages: search and browse, the client card with its timeline, the call pop-up's card, and tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.core import browse
from hub.core.errors import NotFound
from hub.core.record import live_id, load_client
from hub.core.reports import open_tasks_by_assignee
from hub.web.console.access import PREFIX, hub_of, operator, see_other
from hub.web.console.render import page
from hub.web.console.security import Viewer

router = APIRouter()

CHANNELS = ("call", "email", "note", "message", "meeting")
KIND_FILTERS = {"deal": "deal", "task": "task"}
SYSTEMS = ("bitrix24", "amocrm", "telephony", "excel", "email", "api")


def _day(value: str | None, zone: Any = UTC, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    moment = datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=zone)
    return moment.astimezone(UTC)  # a day as the people using the console live it; stored times are UTC


@router.get("/", include_in_schema=False)
def home(_viewer: Viewer = Depends(operator)) -> Response:
    return see_other(f"{PREFIX}/clients")


@router.get("/clients", response_class=HTMLResponse)
def clients_page(
    request: Request,
    viewer: Viewer = Depends(operator),
    search: str = Query("", alias="q", max_length=200),
    system: str = Query("", max_length=64),
    open_deals: bool = False,
    not_contacted_text: str = Query("", alias="not_contacted", max_length=6),
    kind: str = Query("", pattern="^(|person|company)$"),
    after: int | None = Query(None, ge=0),
    offset: int = Query(0, ge=0, le=100_000),
) -> Response:
    hub = hub_of(request)
    size = request.app.state.console_guard.settings.page_size
    # an empty number box is sent as "": it means no filter, not a bad request
    not_contacted = int(not_contacted_text) if not_contacted_text.strip().isdigit() else None
    filters = browse.Filters(
        system=system or None, open_deals=open_deals, not_contacted_days=not_contacted, kind=kind or None
    )
    with hub.store.read() as conn:
        result = browse.browse(
            conn, q=search, filters=filters, after=after, offset=offset, limit=size, region=hub.settings.default_region
        )
    if search and result.total == 1 and offset == 0:
        return see_other(f"{PREFIX}/clients/{result.rows[0].id}")  # one match: straight to the card
    return page(
        request,
        "clients.html",
        viewer,
        result=result,
        search=search,
        system=system,
        open_deals=open_deals,
        not_contacted=not_contacted,
        kind=kind,
        offset=offset,
        size=size,
        systems=SYSTEMS,
    )


def _card_context(hub: Any, client_id: int) -> dict[str, Any]:
    with hub.store.read() as conn:
        live = live_id(conn, client_id)
        state = load_client(conn, live) if live is not None else None
        if state is None:
            raise NotFound(f"client {client_id} does not exist")
        company = load_client(conn, state.company_id) if state.company_id else None
        people = browse.people_of(conn, state.id) if state.kind == "company" else []
        return {
            "client": state.view(),
            "fields": {k: p for k, p in state.fields.items() if k != "name"},
            "name_provenance": state.fields.get("name"),
            "points": browse.contact_points(conn, state.id),
            "company": company.view() if company else None,
            "people": people,
            "tasks": browse.open_tasks(conn, state.id),
            "deals": browse.open_deals(conn, state.id),
            "merged_from": client_id if live != client_id else None,
        }


@router.get("/clients/{client_id}", response_class=HTMLResponse)
def card(
    request: Request,
    client_id: int,
    viewer: Viewer = Depends(operator),
    channel: list[str] = Query([]),
    since: str | None = Query(None, alias="from", max_length=10),
    until: str | None = Query(None, alias="to", max_length=10),
    thread: str | None = Query(None, max_length=500),
    p: int = Query(1, ge=1, le=100_000),
) -> Response:
    hub = hub_of(request)
    try:
        context = _card_context(hub, client_id)
    except NotFound:
        return page(request, "error.html", viewer, status_code=404, message="Not found.")
    wanted = [c for c in channel if c in CHANNELS or c in KIND_FILTERS]
    with hub.store.read() as conn:
        timeline = browse.timeline_page(
            conn,
            context["client"].id,
            kinds=[KIND_FILTERS[c] for c in wanted if c in KIND_FILTERS] or None,
            channels=[c for c in wanted if c in CHANNELS] or None,
            since=_day(since, request.app.state.console_guard.zone),
            until=_day(until, request.app.state.console_guard.zone, end=True),
            page=p,
        )
    items = timeline.items
    if thread:
        items = [i for i in items if i["channel"] == "email" and thread_key(i["fields"]) == thread]
        items.reverse()  # a thread reads oldest first
    for item in items:
        if item["channel"] == "email":
            item["thread"] = thread_key(item["fields"])
    return page(
        request,
        "card.html",
        viewer,
        **context,
        timeline=timeline,
        items=items,
        channels=CHANNELS,
        wanted=wanted,
        since=since or "",
        until=until or "",
        thread=thread,
        # a thread is named by its first letter's subject (its key is a Message-ID, which means nothing to people)
        thread_title=next((str(i["fields"].get("subject") or "") for i in items if thread), "") or thread,
        called=request.query_params.get("called"),
        call_error=request.query_params.get("call_error"),
        now=datetime.now(UTC),
    )


def thread_key(fields: dict[str, Any]) -> str:
    """Emails of one conversation share a key: the thread id the email plugin gives, else the bare subject."""
    given = fields.get("thread_id") or fields.get("thread")
    if given:
        return str(given)
    subject = str(fields.get("subject") or "").strip()
    lowered = subject.casefold()
    changed = True
    while changed:
        changed = False
        for prefix in ("re:", "fw:", "fwd:", "ответ:", "пересл:", "отв:"):
            if lowered.startswith(prefix):
                subject, lowered, changed = subject[len(prefix) :].strip(), lowered[len(prefix) :].strip(), True
    return subject or "—"


@router.get("/clients/{client_id}/pop", response_class=HTMLResponse)
def pop(request: Request, client_id: int, viewer: Viewer = Depends(operator)) -> Response:
    """The caller's card for the call pop-up: who it is, open deals, open tasks, last touches."""
    hub = hub_of(request)
    try:
        context = _card_context(hub, client_id)
    except NotFound:
        return page(request, "error.html", viewer, status_code=404, message="Not found.")
    with hub.store.read() as conn:
        recent = browse.timeline_page(conn, context["client"].id, per_page=3).items
    return page(request, "pop.html", viewer, **context, recent=recent)


@router.get("/tasks", response_class=HTMLResponse)
def tasks_page(request: Request, viewer: Viewer = Depends(operator), mine: int = 1) -> Response:
    """Due and overdue tasks: an operator's own (by username, display name or extension), or everyone's."""
    hub = hub_of(request)
    user = viewer.user
    names = {user.username, user.display_name, user.extension} - {None, ""}
    mine = mine if user.is_admin else 1  # an operator sees their own tasks only
    tasks = open_tasks_by_assignee(hub, assignees=names if mine else None)
    return page(request, "tasks.html", viewer, tasks=tasks, mine=bool(mine), now=datetime.now(UTC))
