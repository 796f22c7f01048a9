"""OpenAI's error envelope, and the one place where exceptions become HTTP errors."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm.types import EngineError
from retrieval.types import CollectionNotFound, StoreError

log = logging.getLogger("ragserve.errors")


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class APIError(Exception):
    """An error to report to the client as-is."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers: dict[str, str] = {}

    def info(self) -> ErrorInfo:
        return ErrorInfo(message=self.message, type=self.type, param=self.param, code=self.code)


class InvalidRequest(APIError):
    pass


class NotFound(APIError):
    status = 404
    type = "not_found_error"


class ServiceUnavailable(APIError):
    status = 503
    type = "server_error"


class UpstreamTimeout(APIError):
    status = 504
    type = "server_error"


class UpstreamFailed(APIError):
    status = 502
    type = "server_error"


class PayloadTooLarge(APIError):
    status = 413


class UnsupportedMediaType(APIError):
    status = 415


class Conflict(APIError):
    status = 409


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(info: ErrorInfo) -> dict[str, Any]:
    return ErrorResponse(error=info).model_dump()


# What a client is told when an upstream fails. The upstream's own words (engine URLs,
# connection errors, a Qdrant host) stay in the log, tied to the request id.
ENGINE_FAILED = {
    502: "the engine failed while serving the request",
    503: "no engine is available to serve the request; retry later",
    504: "the engine did not answer in time",
}
STORE_FAILED = "the vector store is unavailable"


def store_unavailable(exc: BaseException | str | None) -> ServiceUnavailable:
    """The client's error for a failing store; ``exc`` (internal detail) is only logged."""
    log.warning("vector store failure: %s", exc)
    return ServiceUnavailable(STORE_FAILED, code="store_unavailable")


def as_api_error(exc: Exception) -> APIError:
    """Map any failure of the pipeline to what the client is told (no internals leak)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, EngineError):
        cls: type[APIError] = {
            400: InvalidRequest,
            404: NotFound,
            503: ServiceUnavailable,
            504: UpstreamTimeout,
        }.get(exc.status, UpstreamFailed)
        code = exc.code or {503: "engine_unavailable", 504: "engine_timeout"}.get(exc.status)
        if exc.status == 404:
            code = "model_not_found"
        message = exc.message
        if cls.status >= 500:
            log.warning("engine failure: %s", exc.message)
            message = ENGINE_FAILED[cls.status]
        return cls(message, param=exc.param, code=code)
    if isinstance(exc, CollectionNotFound):
        return NotFound(str(exc), param="rag.collection", code="collection_not_found")
    if isinstance(exc, StoreError):
        return store_unavailable(exc)
    log.exception("unhandled error", exc_info=exc)
    error = APIError("internal server error")
    error.status, error.type = 500, "server_error"
    return error


_UNION_BRANCHES = {"str", "int", "float", "bool", "dict", "list", "none"}


def _param_from_loc(loc: tuple[int | str, ...]) -> str | None:
    # The first part says where (body, query string, path): a field may bear those names too.
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in _UNION_BRANCHES:
            continue  # pydantic's union branch names ("str", "list[TextPart]") are noise
        else:
            out += f".{part}" if out else str(part)
    return out or None


def validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return InvalidRequest(
            f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".strip(),
            code="invalid_json",
        )
    param = _param_from_loc(tuple(first.get("loc", ())))
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "missing":
        message = f"'{param}' is required" if param else "a required field is missing"
    elif param:
        message = f"invalid '{param}': {message}"
    return InvalidRequest(message, param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    def respond(error: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error_body(error.info()), status_code=error.status, headers=headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return respond(validation_error(exc))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = APIError(str(exc.detail))
        error.status = exc.status_code
        error.type = _TYPE_BY_STATUS.get(exc.status_code, "server_error")
        return respond(error, headers=dict(exc.headers or {}))

    async def on_any(_: Request, exc: Exception) -> JSONResponse:
        error = as_api_error(exc)
        return respond(error, headers=error.headers)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Known errors are handled inside the middleware stack (request ids, metrics see them);
    # a bare ``Exception`` handler runs outermost, for the truly unexpected.
    for known in (APIError, EngineError, StoreError):
        app.add_exception_handler(known, on_any)
    app.add_exception_handler(Exception, on_any)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse}
    for status in (400, 401, 403, 404, 409, 413, 415, 429, 500, 502, 503, 504)
}


def publish_openai_errors(app: FastAPI) -> None:
    """Publish the errors the app sends: FastAPI documents a 422 it never returns here.

    Validation failures are 400s in OpenAI's envelope (``validation_error``), so the
    generated 422 responses and their ``HTTPValidationError`` schemas are dropped.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
