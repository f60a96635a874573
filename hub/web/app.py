"""The HTTP face of the hub: REST API, health, metrics, and the webhook routes plugins register."""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import __version__
from hub.core.backlog import refresh_gauges
from hub.core.bounds import validation_context
from hub.core.dlq import LetterFilter
from hub.core.errors import BadInput, ConfigError, ExternalAPIError, HubError, NotFound
from hub.core.events import observation_adapter
from hub.core.hub import Hub
from hub.core.metrics import METRICS
from hub.core.readiness import Readiness
from hub.core.users import api_authenticator
from hub.web.console import mount_console
from hub.web.docs import mount_docs
from hub.web.errors import install_error_handlers
from hub.web.jsonbody import read_capped, read_json
from hub.web.params import ClientId, ItemId, ItemKinds, OptionalToken, OtherClientId, SearchText, Token
from hub.web.security import install_security

log = structlog.get_logger("hub.web")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(self.limit, send)
            return
        if length is None:  # chunked: the whole body is read here, so that no handler sees a part of it
            buffered = await read_capped(receive, self.limit)
            if buffered is None:
                await _too_large(self.limit, send)
                return
            receive = buffered
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(self.limit, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    body = json.dumps({"error": "payload_too_large", "detail": f"request body is larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


MAX_BATCH = 1000
KINDS = ("client", "interaction", "deal", "task", "ref")


def _kind_problem(data: dict[str, Any]) -> str | None:
    if data.get("kind") not in KINDS:
        return f"unknown observation kind {data.get('kind')!r}; use {', '.join(KINDS)}"
    return None


def _outcome(result: Any) -> dict[str, Any]:
    return {
        "client_id": result.client_id,
        "item_id": result.item_id,
        "events": [e.event_id for e in result.events],
        "warnings": result.warnings,
    }


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(
        title="crm-hub",
        version=__version__,
        description="One client record and one timeline across CRMs, telephony, email and Excel.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = hub
    if hub.settings.http.docs:
        mount_docs(app)  # assets served by the hub itself: the docs work offline
    readiness = Readiness(hub, relay_stuck_after=hub.settings.relay_stuck_after)
    install_error_handlers(app)
    context = validation_context(hub.settings.default_region, hub.settings.max_clock_skew_s)

    @app.exception_handler(HubError)
    async def _hub_error(_request: Request, exc: HubError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return _error(404, "not_found", str(exc))
        if isinstance(exc, BadInput):
            return _error(422, "bad_input", str(exc))
        if isinstance(exc, ExternalAPIError):
            return _error(502, "external_api_error", str(exc))
        if isinstance(exc, ConfigError):
            return _error(500, "config_error", str(exc))
        return _error(500, "hub_error", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", path=request.url.path, error=str(exc), error_type=type(exc).__name__, exc_info=True)
        return _error(500, "internal_error", "the hub failed to handle this request; see its log")

    # --- operations ------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """Readiness: the database takes a write, the bus answers, the relay moves, no account or plugin is down.
        503 names what failed (``checks``) and what is down (``down``)."""
        report = readiness.report()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of this process, and the whole hub's backlog read at scrape time."""
        refresh_gauges(hub)
        return Response(generate_latest(METRICS.for_role(hub.role)), media_type=CONTENT_TYPE_LATEST)

    # --- observations ----------------------------------------------------------------------------------
    schema = observation_adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})

    @app.post(
        "/api/observations",
        tags=["record"],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [schema, {"type": "array", "items": schema, "maxItems": MAX_BATCH}]}
                    }
                },
            }
        },
    )
    async def post_observation(request: Request) -> JSONResponse:
        """Apply one observation (a client, interaction, deal, task or ref): 201 when it changed the record, 200
        when it was already known (idempotent), 4xx with a reason and nothing stored otherwise.

        A JSON array applies up to 1,000 observations in one transaction; each is applied or refused on its own,
        and the answer (200) lists the outcome of each, in order."""
        data = await read_json(await request.body())
        if isinstance(data, list):
            return await _post_many(data)
        if not isinstance(data, dict):
            return _error(422, "bad_input", "the body must be a JSON object with a 'kind', or an array of them")
        problem = _kind_problem(data)
        if problem:
            return _error(422, "unknown_kind", problem)
        obs = hub.parse_observation(data, context)
        result = await run_in_threadpool(hub.ingest, obs)
        return JSONResponse(_outcome(result), status_code=201 if result.events else 200)

    async def _post_many(items: list[Any]) -> JSONResponse:
        if len(items) > MAX_BATCH:
            return _error(413, "too_many", f"at most {MAX_BATCH} observations per request, got {len(items)}")
        parsed: list[Any] = []
        outcomes: list[dict[str, Any] | None] = []
        for data in items:
            try:
                problem = _kind_problem(data) if isinstance(data, dict) else "an item is not a JSON object"
                if problem:
                    raise BadInput(problem)
                parsed.append(hub.parse_observation(data, context))
                outcomes.append(None)
            except BadInput as exc:
                outcomes.append({"error": "bad_input", "detail": str(exc)})
        results = iter(await run_in_threadpool(hub.ingest_many, parsed) if parsed else [])
        for index, outcome in enumerate(outcomes):
            if outcome is None:
                result = next(results)
                outcomes[index] = (
                    {"error": "bad_input", "detail": str(result)} if isinstance(result, BadInput) else _outcome(result)
                )
        counts = {"applied": 0, "unchanged": 0, "rejected": 0}
        for outcome in outcomes:
            assert outcome is not None
            counts["rejected" if "error" in outcome else "applied" if outcome["events"] else "unchanged"] += 1
        return JSONResponse({**counts, "items": outcomes}, status_code=200)

    # --- clients ---------------------------------------------------------------------------------------
    @app.get("/api/clients", tags=["record"])
    def find_clients(
        phone: SearchText = None, email: SearchText = None, q: SearchText = None, limit: int = Query(50, ge=1, le=500)
    ) -> dict[str, Any]:
        """Find clients by phone (any format), email (any case) or text in the name."""
        views = hub.find_clients(phone=phone, email=email, q=q, limit=limit)
        return {"items": [v.model_dump(mode="json") for v in views]}

    @app.get("/api/clients/{client_id}", tags=["record"])
    def get_client(client_id: ClientId) -> dict[str, Any]:
        return hub.get_client(client_id).model_dump(mode="json")

    @app.get("/api/clients/{client_id}/timeline", tags=["record"])
    def get_timeline(
        client_id: ClientId, limit: int = Query(100, ge=1, le=1000), kind: ItemKinds = None
    ) -> dict[str, Any]:
        """Every touchpoint of the client, newest first."""
        return {
            "items": [
                i.model_dump(mode="json") for i in hub.timeline(client_id, limit=limit, kinds=[*kind] if kind else None)
            ]
        }

    @app.get("/api/merge-candidates", tags=["record"])
    def merge_candidates(status: Token = "open") -> dict[str, Any]:
        return {"items": [{**c, "created_at": c["created_at"].isoformat()} for c in hub.merge_candidates(status)]}

    @app.post("/api/clients/{client_id}/merge", tags=["record"])
    def merge(client_id: ClientId, other_id: OtherClientId) -> dict:
        return {"merge_id": hub.merge(client_id, other_id, actor="api")}

    @app.post("/api/merges/{merge_id}/undo", tags=["record"])
    def undo_merge(merge_id: ItemId) -> dict[str, Any]:
        hub.unmerge(merge_id)
        return {"undone": merge_id}

    # --- dead letters ----------------------------------------------------------------------------------
    @app.get("/api/dlq", tags=["operations"])
    def dlq_list(
        queue: OptionalToken = None,
        status: Token = "open",
        kind: OptionalToken = None,
        after: int = Query(0, ge=0, le=2**62, description="Page on: letters with an id over this one."),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Dead letters in id order, filtered by queue (sink), status and error kind; page on with ``after``."""
        where = LetterFilter(queue=queue, kind=kind, status=status)
        return {"items": [d.summary() for d in hub.dlq.list(where=where, after=after, limit=limit)]}

    @app.post("/api/dlq/{letter_id}/replay", tags=["operations"])
    def dlq_replay(letter_id: ItemId) -> dict[str, Any]:
        return hub.dlq.replay(letter_id).summary()

    # --- plugin routes ---------------------------------------------------------------------------------
    for route in hub.routes:
        for method in sorted(route.methods):  # one operation id per method: OpenAPI needs them unique
            app.add_api_route(
                route.path,
                route.handler,
                methods=[method],
                name=route.name,
                operation_id=f"{route.name or route.handler.__name__}_{method.lower()}"
                if len(route.methods) > 1
                else None,
                tags=["webhooks"],
                include_in_schema=True,
                openapi_extra=route.openapi,
            )

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        spec = original_openapi()
        spec.setdefault("components", {}).setdefault("schemas", {}).update(defs)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
    mount_console(app, hub)
    app.add_middleware(BodyLimit, limit=hub.settings.http.max_body_bytes)
    install_security(
        app, hub, api_authenticator(hub.store, hub.settings.http.api_token)
    )  # outermost: Host, origin, media type and the API token before anything is read
    return app
