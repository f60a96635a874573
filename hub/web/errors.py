"""Every input problem becomes a 4xx with a JSON body that names it: ``{"error": code, "detail": text}``.

Unexpected failures stay a 500 with no detail (the log has it); the handlers here make sure no input can reach
that path: out-of-range integers, nesting too deep, text the database cannot hold, parameters that fail their
declared bounds.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from hub.core.errors import database_problem
from hub.core.jsontext import BadJSON

log = structlog.get_logger("hub.web")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def error_response(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


def describe_problems(errors: Any) -> str:
    """``query.limit: Input should be ...; body.name: ...`` from pydantic's or FastAPI's error list."""
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
    return error_response(422, "bad_input", describe_problems(exc.errors()), problems=problems)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _bad_json(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadJSON)
    return error_response(400, exc.code, str(exc))


async def _overflow(request: Request, exc: Exception) -> JSONResponse:
    log.warning("input out of range", path=request.url.path, error=str(exc))
    return error_response(422, "out_of_range", f"a number or date in the request is out of range: {exc}")


async def _recursion(request: Request, _exc: Exception) -> JSONResponse:
    log.warning("input nested too deep", path=request.url.path)
    return error_response(400, "too_deep", "the request is nested too deep")


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    problem = database_problem(exc)
    log.warning("database refused a value", path=request.url.path, problem=problem)
    return error_response(422, "bad_input", f"the database cannot store a value of this request: {problem}")


async def _not_text(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnicodeDecodeError)
    return error_response(400, "malformed", f"the request is not UTF-8 text: {exc.reason}")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; the application's own ``HubError`` handler keeps ``BadInput`` → 422."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(BadJSON, _bad_json)
    app.add_exception_handler(OverflowError, _overflow)
    app.add_exception_handler(RecursionError, _recursion)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(UnicodeDecodeError, _not_text)
