"""Pure ASGI middleware: request ids, access logs and request metrics.

Pure ASGI rather than ``BaseHTTPMiddleware``: that one buffers and breaks streaming and
disconnect detection.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from opentelemetry.trace import StatusCode
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import APIError, PayloadTooLarge, UnsupportedMediaType, error_body
from gateway.metrics import Metrics
from gateway.tracing import request_span

log = logging.getLogger("ragserve.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        began = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with request_span(scope["method"], scope["path"], headers) as span:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = _route_label(scope)
                took = time.perf_counter() - began
                self.metrics.requests.labels(route, str(status)).inc()
                self.metrics.request_seconds.labels(route).observe(took)
                span.update_name(f"{scope['method']} {route}")  # the template, not the path
                span.set_attributes(
                    {"http.route": route, "http.response.status_code": status,
                     "ragserve.request_id": request_id}
                )  # fmt: skip
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "ms": round(took * 1000, 1),
                    },
                )


JSON_ROUTES = ("/v1/chat/completions", "/v1/embeddings", "/v1/search")


class BodyLimitMiddleware:
    """Refuse oversized bodies (413, chunked ones too) and non-JSON bodies to JSON routes (415).

    The body is read here, within the limit, and replayed to the app: a chunked upload
    that overruns the limit is refused as soon as it does, never buffered whole.
    """

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        keys = getattr(getattr(scope.get("app"), "state", None), "keys", None)
        if keys is not None and path.startswith("/v1/"):
            # The key first: a caller without one must not make the gateway read a body.
            try:
                keys.authenticate(Request(scope))
            except APIError as error:
                await _refuse(scope, receive, send, error)
                return
        if path in JSON_ROUTES:
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json":
                await _refuse(scope, receive, send, UnsupportedMediaType(
                    "send the body as JSON with 'Content-Type: application/json'",
                    code="unsupported_media_type",
                ))  # fmt: skip
                return
        limit = self.max_upload_bytes if path.startswith("/v1/documents") else self.max_json_bytes
        too_large = PayloadTooLarge(
            f"the request body exceeds {limit} bytes", code="request_too_large"
        )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(scope, receive, send, too_large)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, error: APIError) -> None:
    response = JSONResponse(error_body(error.info()), status_code=error.status)
    await response(scope, receive, send)
