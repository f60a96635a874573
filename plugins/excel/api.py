"""``GET /api/export.xlsx?timeline=1&since=&source=``: the clients (and their timeline) as a workbook download."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from hub.core.errors import BadInput
from hub.core.sources import WebhookRoute

from .records import XLSX_MEDIA_TYPE, export_from_hub, parse_since

log = structlog.get_logger("crm_hub_plugins.excel.api")

EXPORT_PATH = "/api/export.xlsx"
_TRUE = frozenset({"1", "true", "yes", "on"})


def routes(hub: Any) -> list[WebhookRoute]:
    return [WebhookRoute(EXPORT_PATH, _export(hub), ("GET",), "excel_export")]


def _export(hub: Any) -> Any:
    async def export_xlsx(request: Request) -> Response:
        """Clients as an .xlsx download; ``timeline=1`` adds a Timeline sheet; ``since`` (YYYY-MM-DD, UTC) keeps
        clients changed and items that happened since then; ``source`` keeps what that system knows."""
        params = request.query_params
        try:
            since = parse_since(params.get("since"))
        except BadInput as exc:
            return JSONResponse({"error": "bad_input", "detail": str(exc)}, status_code=422)
        timeline = params.get("timeline", "").strip().lower() in _TRUE
        system = params.get("source") or None
        # written to a temporary file first (openpyxl saves to a file); the response streams it and removes it
        handle, name = tempfile.mkstemp(prefix="hub-export-", suffix=".xlsx")
        os.close(handle)
        path = Path(name)
        try:
            counts = await run_in_threadpool(export_from_hub, hub, path, timeline=timeline, since=since, system=system)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.info("clients exported", clients=counts.clients, items=counts.items, timeline=timeline, source=system)
        filename = f"clients-{datetime.now(UTC):%Y%m%d-%H%M%S}.xlsx"
        return FileResponse(
            path,
            media_type=XLSX_MEDIA_TYPE,
            filename=filename,
            headers={"X-Hub-Clients": str(counts.clients), "X-Hub-Items": str(counts.items)},
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    return export_xlsx
