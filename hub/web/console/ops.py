"""The ops page: plugins and their health, lag per sink, API calls and rate-limit waits per external account,
dead letters with filters and replay (one, or all matching), recent errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from hub.core import schema as s
from hub.core.errors import NotFound
from hub.core.metrics import METRICS
from hub.web.console.access import PREFIX, admin, checked_form, hub_of, see_other
from hub.web.console.render import page
from hub.web.console.security import Viewer

router = APIRouter()


def _samples(metric: Any) -> dict[tuple[str, ...], float]:
    """Current values of a labelled Prometheus metric, by label values (counters: their ``_total``)."""
    values: dict[tuple[str, ...], float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[tuple(sample.labels.values())] = sample.value
    return values


def _sinks(hub: Any) -> list[dict[str, Any]]:
    lag = _samples(METRICS.sink_lag)
    delivered = _samples(METRICS.deliveries)
    with hub.store.read() as conn:
        dead = dict(
            conn.execute(
                select(s.dead_letters.c.queue, func.count())
                .where(s.dead_letters.c.status == "open")
                .group_by(s.dead_letters.c.queue)
            ).all()
        )
    return [
        {
            "name": name,
            "system": sink.system,
            "lag_s": lag.get((name,)),
            "delivered": int(delivered.get((name, "delivered"), 0)),
            "dead": int(dead.get(name, 0)),
        }
        for name, sink in sorted(hub.sinks.items())
    ]


def _accounts() -> list[dict[str, Any]]:
    calls, waits = _samples(METRICS.api_calls), _samples(METRICS.limit_wait)
    names = sorted({k[0] for k in calls} | {k[0] for k in waits})
    return [{"account": n, "calls": int(calls.get((n,), 0)), "wait_s": round(waits.get((n,), 0.0), 2)} for n in names]


@router.get("/ops", response_class=HTMLResponse)
def ops_page(
    request: Request,
    viewer: Viewer = Depends(admin),
    queue: str = Query("", max_length=255),
    status: str = Query("open", pattern="^(open|replayed|all)$"),
    error: str = Query("", max_length=200),
) -> Response:
    hub = hub_of(request)
    health = hub.health()
    plugins = [
        {"name": info.name, "version": info.version, "error": info.error, "health": health["plugins"].get(name) or {}}
        for name, info in sorted(hub.plugins.info.items())
    ]
    letters = _letters(hub, queue, status, error)
    with hub.store.read() as conn:
        queues = [
            r[0] for r in conn.execute(select(s.dead_letters.c.queue).distinct().order_by(s.dead_letters.c.queue))
        ]
        recent = conn.execute(
            select(s.dead_letters.c.id, s.dead_letters.c.queue, s.dead_letters.c.error, s.dead_letters.c.created_at)
            .order_by(s.dead_letters.c.id.desc())
            .limit(10)
        ).all()
        inbox_errors = conn.execute(
            select(s.inbox.c.id, s.inbox.c.kind, s.inbox.c.error, s.inbox.c.created_at)
            .where(s.inbox.c.error.is_not(None), s.inbox.c.done_at.is_(None))
            .order_by(s.inbox.c.id.desc())
            .limit(10)
        ).all()
    try:
        pending = hub.relay.lag()
    except Exception:  # the page must show even when the database is in trouble
        pending = None
    return page(
        request,
        "ops.html",
        viewer,
        plugins=plugins,
        database=health["database"],
        pending=pending,
        sinks=_sinks(hub),
        accounts=_accounts(),
        letters=letters,
        queues=queues,
        queue=queue,
        status=status,
        error=error,
        recent=recent,
        inbox_errors=inbox_errors,
        replayed=request.query_params.get("replayed"),
    )


def _letters(hub: Any, queue: str, status: str, error: str, limit: int = 200) -> list[Any]:
    letters = hub.dlq.list(queue=queue or None, status=None if status == "all" else status, limit=5000)
    if error:
        needle = error.casefold()
        letters = [d for d in letters if needle in d.error.casefold()]
    return list(reversed(letters))[:limit]


@router.post("/ops/dead-letters/{letter_id}/replay")
async def replay_one(request: Request, letter_id: int, viewer: Viewer = Depends(admin)) -> Response:
    await checked_form(request, viewer)
    try:
        await run_in_threadpool(hub_of(request).dlq.replay, letter_id)
    except NotFound:
        return page(request, "error.html", viewer, status_code=404, message="Not found.")
    return see_other(f"{PREFIX}/ops?replayed=1#dead-letters")


@router.post("/ops/dead-letters/replay")
async def replay_matching(request: Request, viewer: Viewer = Depends(admin)) -> Response:
    """Replay every open dead letter matching the page's filters (queue and text in the error)."""
    form = await checked_form(request, viewer)
    hub = hub_of(request)
    queue, error = str(form.get("queue") or ""), str(form.get("error") or "")

    def replay() -> int:
        count = 0
        while True:
            batch = _letters(hub, queue, "open", error, limit=500)
            if not batch:
                return count
            for letter in batch:
                hub.dlq.replay(letter.id)
                count += 1

    count = await run_in_threadpool(replay)
    return see_other(f"{PREFIX}/ops?replayed={count}#dead-letters")
