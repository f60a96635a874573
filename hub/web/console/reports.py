"""Report pages: each report a URL with its filters, a chart (inline SVG) and a table, and its xlsx export."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.core import reports
from hub.core.errors import BadInput
from hub.web.console.access import admin, hub_of
from hub.web.console.i18n import translator
from hub.web.console.render import page
from hub.web.console.security import Viewer

router = APIRouter()


@router.get("/reports", response_class=HTMLResponse)
def reports_index(request: Request, viewer: Viewer = Depends(admin)) -> Response:
    return page(request, "reports.html", viewer, titles=reports.TITLES)


def _options(request: Request, since: str | None, until: str | None, days_text: str, system: str) -> reports.Options:
    days = int(days_text) if days_text.strip().isdigit() and int(days_text) > 0 else 30
    zone = hub_of(request).settings.console.zone()
    return reports.Options(reports.Period.parse(since, until, zone=zone), days=days, system=system or None)


@router.get("/reports/{name}.xlsx")
async def report_xlsx(
    request: Request,
    name: str,
    viewer: Viewer = Depends(admin),
    since: str | None = Query(None, alias="from", max_length=10),
    until: str | None = Query(None, alias="to", max_length=10),
    days_text: str = Query("30", alias="days", max_length=5),
    system: str = Query("", max_length=64),
) -> Response:
    if name not in reports.REPORTS:
        return Response("unknown report", status_code=404, media_type="text/plain")
    try:
        opts = _options(request, since, until, days_text, system)
    except BadInput as exc:
        return Response(str(exc), status_code=422, media_type="text/plain")
    hub = hub_of(request)
    gettext = translator(viewer.user.language)

    def export() -> bytes:
        return reports.to_xlsx(reports.build(hub, name, opts), gettext)

    body = await run_in_threadpool(export)
    filename = f"{name}-{opts.period.first_day()}.xlsx"
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/reports/{name}", response_class=HTMLResponse)
async def report_page(
    request: Request,
    name: str,
    viewer: Viewer = Depends(admin),
    since: str | None = Query(None, alias="from", max_length=10),
    until: str | None = Query(None, alias="to", max_length=10),
    days_text: str = Query("30", alias="days", max_length=5),
    system: str = Query("", max_length=64),
) -> Response:
    if name not in reports.REPORTS:
        return page(request, "error.html", viewer, status_code=404, message="Not found.")
    try:
        opts = _options(request, since, until, days_text, system)
    except BadInput as exc:
        return page(request, "error.html", viewer, status_code=422, message=str(exc))
    report = await run_in_threadpool(reports.build, hub_of(request), name, opts)
    return page(
        request,
        "report.html",
        viewer,
        report=report,
        since=opts.period.first_day().isoformat(),
        until=opts.period.last_day().isoformat(),
        days=opts.days,
        system=system,
        titles=reports.TITLES,
    )
