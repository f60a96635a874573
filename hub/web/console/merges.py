"""Merge candidates side by side: merge (choosing the survivor), keep apart, and undo a recent merge."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.core import browse
from hub.core.errors import BadInput, NotFound
from hub.core.merge import dismiss_candidate, recent_merges
from hub.core.record import load_client
from hub.web.console.access import PREFIX, admin, checked_form, hub_of, see_other
from hub.web.console.render import page
from hub.web.console.security import Viewer

router = APIRouter()


@router.get("/merges", response_class=HTMLResponse)
def merges_page(request: Request, viewer: Viewer = Depends(admin)) -> Response:
    hub = hub_of(request)
    pairs = []
    for candidate in hub.merge_candidates("open")[:50]:
        with hub.store.read() as conn:
            left = load_client(conn, candidate["client_id"])
            right = load_client(conn, candidate["other_id"])
            if left is None or right is None or left.merged_into or right.merged_into or left.id == right.id:
                continue
            rows = {r.id: r for r in browse.rows_for(conn, [left.id, right.id])}
        pairs.append({"candidate": candidate, "left": left.view(), "right": right.view(), "rows": rows})
    with hub.store.read() as conn:
        merges = recent_merges(conn)
    return page(request, "merges.html", viewer, pairs=pairs, merges=merges, message=request.query_params.get("message"))


@router.post("/merges/{candidate_id}/merge")
async def merge(request: Request, candidate_id: int, viewer: Viewer = Depends(admin)) -> Response:
    form = await checked_form(request, viewer)
    hub = hub_of(request)
    try:
        winner, loser = int(str(form.get("winner"))), int(str(form.get("loser")))
        candidate = next(c for c in hub.merge_candidates("open") if c["id"] == candidate_id)
        if {winner, loser} != {candidate["client_id"], candidate["other_id"]}:
            raise BadInput("the survivor must be one of the two clients of this candidate")
        await run_in_threadpool(hub.merge, winner, loser, actor=f"console:{viewer.user.username}")
    except (StopIteration, ValueError, BadInput, NotFound) as exc:
        return page(request, "error.html", viewer, status_code=422, message=str(exc) or "Not found.")
    return see_other(f"{PREFIX}/merges?message=merged:{winner}")


@router.post("/merges/{candidate_id}/dismiss")
async def keep_apart(request: Request, candidate_id: int, viewer: Viewer = Depends(admin)) -> Response:
    await checked_form(request, viewer)
    hub = hub_of(request)

    def dismiss() -> None:
        with hub.store.write() as conn:
            dismiss_candidate(conn, candidate_id)

    try:
        await run_in_threadpool(dismiss)
    except NotFound:
        return page(request, "error.html", viewer, status_code=404, message="Not found.")
    return see_other(f"{PREFIX}/merges")


@router.post("/merges/undo/{merge_id}")
async def undo(request: Request, merge_id: int, viewer: Viewer = Depends(admin)) -> Response:
    await checked_form(request, viewer)
    try:
        await run_in_threadpool(hub_of(request).unmerge, merge_id)
    except (BadInput, NotFound) as exc:
        return page(request, "error.html", viewer, status_code=422, message=str(exc))
    return see_other(f"{PREFIX}/merges")
