"""Async client for one vLLM server's OpenAI-compatible API (aiohttp: measured fastest).

Request bodies go out as the gateway built them; streamed bodies come back as raw bytes.
Closing a stream closes its HTTP connection; vLLM's server notices the disconnect and
aborts the request, so an abandoned stream stops costing engine time at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode

from llm.types import (
    EngineCall,
    EngineError,
    EngineLost,
    EngineTimeout,
    EngineUnavailable,
)

_tracer = trace.get_tracer("ragserve.llm")
_JSON = {"Content-Type": "application/json"}


def normalise_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all mean the server root."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class VLLMStream:
    """The raw body of a streamed request, bounded by one moving deadline.

    One timer per stream, not a cancel scope per read: each read only moves the deadline;
    the timer, when it fires past the deadline, closes the connection and the pending read
    ends with ``EngineTimeout``.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        first_deadline: float,
        token_gap_timeout: float,
        first_token_timeout: float,
        span: Span = INVALID_SPAN,
    ) -> None:
        self._response = response
        self._span = span
        self._loop = asyncio.get_running_loop()
        self._gap = token_gap_timeout
        self._first_timeout = first_token_timeout
        self._deadline = first_deadline
        self._started = False
        self._failure: EngineError | None = None
        self._closed = False
        self._completed = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(
            first_deadline, self._on_deadline
        )

    def __aiter__(self) -> VLLMStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._response.content.readany()
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            failure = self._failure or EngineLost(f"the engine connection failed mid-stream: {exc}")
            self._finish(failure, finished=False)
            raise failure from None
        if not data:
            self._finish(self._failure, finished=self._failure is None)
            if self._failure is not None:
                raise self._failure
            raise StopAsyncIteration
        self._deadline = self._loop.time() + self._gap
        if not self._started:
            # The timer waits for the first-token deadline; from now on the gap rules, and
            # it is usually much shorter: move the timer once (later reads only move the
            # deadline, which the timer finds when it fires).
            self._started = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)
        return data

    def _on_deadline(self) -> None:
        if self._closed:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)
            return
        waited = self._gap if self._started else self._first_timeout
        self._failure = EngineTimeout(f"the engine sent nothing for {waited:g} s")
        self._response.close()

    def abort(self) -> None:
        self._response.close()

    def holds(self, response_id: str) -> None:
        """One server holds every response it stored: nothing to remember."""

    def completed(self) -> None:
        self._completed = True

    def _finish(self, failure: EngineError | None, *, finished: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if failure is not None:
            self._span.set_status(StatusCode.ERROR, type(failure).__name__)
        self._span.set_attribute("ragserve.finished", finished)
        _end(self._span)

    async def aclose(self) -> None:
        """A stream read to its end gives its connection back to the pool; one that is not
        is dropped: vLLM aborts the request on disconnect (a no-op once it finished)."""
        at_end = self._response.content.is_eof()
        if at_end:
            self._response.release()
        else:  # the chunked body's terminator may still be on its way after [DONE]
            self._response.close()
        self._finish(None, finished=at_end or self._completed)


_SPAN_NAMES = {"/v1/chat/completions": "vllm chat", "/v1/completions": "vllm completions",
               "/v1/responses": "vllm responses"}  # fmt: skip


def _span_name(path: str) -> str:
    return _SPAN_NAMES.get(path, f"vllm {path}")


def _end(span: Span) -> None:
    if span.is_recording():  # ended spans stop recording; ending twice only warns
        span.end()


def error_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if isinstance(body.get("message"), str):
            return str(body["message"])
        return str(error)
    return str(body)


def _error_param(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return param.removeprefix("body.") if isinstance(param, str) and param else None


class VLLMClient:
    """One vLLM upstream. Create once per process (inside its event loop); share it."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        first_token_timeout: float = 120.0,
        token_gap_timeout: float = 60.0,
        response_timeout: float = 600.0,
        max_connections: int = 1024,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._connect_timeout = connect_timeout
        self._first_token_timeout = first_token_timeout
        self._token_gap_timeout = token_gap_timeout
        self._response_timeout = response_timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._max_len: dict[str, int | None] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: aiohttp wants a running loop
            self._session = aiohttp.ClientSession(
                base_url=self.base_url,
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._connect_timeout, connect=None
                ),
                auto_decompress=False,
            )
        return self._session

    async def open_stream(self, call: EngineCall) -> VLLMStream:
        span = _tracer.start_span(
            _span_name(call.path), kind=SpanKind.CLIENT,
            attributes={"server.address": self.base_url, "url.path": call.path,
                        "gen_ai.request.model": call.model},
        )  # fmt: skip
        began = self._loop_time()
        try:
            response = await self._post(call, span, budget_s=self._first_token_timeout)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            _end(span)
            raise
        return VLLMStream(
            response,
            first_deadline=began + self._first_token_timeout,
            token_gap_timeout=self._token_gap_timeout,
            first_token_timeout=self._first_token_timeout,
            span=span,
        )

    async def request(self, call: EngineCall) -> bytes:
        span = _tracer.start_span(
            _span_name(call.path), kind=SpanKind.CLIENT,
            attributes={"server.address": self.base_url, "url.path": call.path,
                        "gen_ai.request.model": call.model},
        )  # fmt: skip
        try:
            async with asyncio.timeout(self._response_timeout):
                response = await self._post(call, span, budget_s=self._response_timeout)
                try:
                    return await response.read()
                finally:
                    response.release()
        except TimeoutError:
            raise EngineTimeout(
                f"the engine did not answer within {self._response_timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise EngineLost(f"the engine connection failed: {exc}") from exc
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            _end(span)

    async def forward(self, method: str, call: EngineCall) -> tuple[int, bytes]:
        try:
            async with self.session.request(
                method,
                call.path,
                data=call.body or None,
                headers={**_JSON, **call.headers},
                timeout=aiohttp.ClientTimeout(total=30.0),
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise EngineTimeout(f"the engine at {self.base_url} did not answer: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnavailable(f"the engine at {self.base_url} is unreachable") from exc

    async def _post(
        self, call: EngineCall, span: Span, *, budget_s: float
    ) -> aiohttp.ClientResponse:
        # A client span per attempt; its traceparent lets a traced vLLM join the trace.
        headers = {**_JSON, **call.headers}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        try:
            # The budget covers the headers too: an engine that accepts the connection and
            # never answers must time out like one that sends nothing.
            async with asyncio.timeout(budget_s):
                response = await self.session.post(call.path, data=call.body, headers=headers)
        except TimeoutError:
            raise EngineTimeout(f"the engine sent nothing for {budget_s:g} s") from None
        except aiohttp.ServerTimeoutError as exc:
            raise EngineTimeout(f"the engine at {self.base_url} did not answer: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnavailable(f"the engine at {self.base_url} is unreachable") from exc
        if response.status != 200:
            try:
                body = await response.read()
            except aiohttp.ClientError:
                body = b""
            finally:
                response.release()
            raise status_error(response.status, body, response.headers.get("Retry-After"))
        return response

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def list_models(self) -> list[str]:
        return [card["id"] for card in await self._model_cards()]

    async def max_model_len(self, model: str) -> int | None:
        if model not in self._max_len:
            for card in await self._model_cards():
                self._max_len[card["id"]] = card.get("max_model_len")
        return self._max_len.get(model)

    async def count_chat_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        body = await self._json(
            "POST",
            "/tokenize",
            {"model": model, "messages": messages, "add_generation_prompt": True},
        )
        return int(body["count"])

    async def count_prompt_tokens(self, model: str, prompt: str) -> int:
        body = await self._json("POST", "/tokenize", {"model": model, "prompt": prompt})
        return int(body["count"])

    async def is_ready(self) -> bool:
        try:
            async with self.session.get(
                "/health", timeout=aiohttp.ClientTimeout(total=2.0)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _model_cards(self) -> list[dict[str, Any]]:
        body = await self._json("GET", "/v1/models")
        return list(body.get("data", []))

    async def _json(self, method: str, path: str, payload: Any = None) -> Any:
        body = b"" if payload is None else json.dumps(payload).encode()
        status, content = await self.forward(method, EngineCall(path, body))
        if status != 200:
            raise status_error(status, content)
        return json.loads(content)


def status_error(status: int, body: bytes, retry_after: str | None = None) -> EngineError:
    """The engine's refusal as an ``EngineError``: its own words for requests it refused."""
    try:
        parsed = json.loads(body)
        message, param = error_message(parsed), _error_param(parsed)
    except (json.JSONDecodeError, UnicodeDecodeError):
        message, param = body[:500].decode("utf-8", "replace") or f"HTTP {status}", None
    if status in (400, 422):
        if param == "input_tokens":  # vLLM's name for "the prompt is over the window"
            return EngineError(message, status=400, code="context_length_exceeded")
        return EngineError(message, status=400, param=param)
    if status == 404:
        return EngineError(message, status=404, param=param or "model")
    if status in (429, 503):
        return EngineUnavailable(
            f"the engine is busy or not ready: {message}", retry_after=_seconds(retry_after)
        )
    return EngineError(f"the engine failed (HTTP {status}): {message}", status=502)


def _seconds(retry_after: str | None) -> float | None:
    try:
        return float(retry_after) if retry_after else None
    except ValueError:
        return None  # an HTTP date: rare from engines; the cooldown applies
