"""Async client for one vLLM server's OpenAI-compatible API.

Closing a generation closes its HTTP connection; vLLM's server notices the disconnect and
aborts the request, so an abandoned stream stops costing GPU time at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode

from llm.sse import iter_sse_bytes
from llm.types import (
    Delta,
    EngineError,
    EngineLost,
    EngineTimeout,
    EngineUnavailable,
    GenerationParams,
    Usage,
)

_tracer = trace.get_tracer("ragserve.llm")


def normalise_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all mean the server root."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class VLLMGeneration:
    """A running streamed chat completion on a vLLM server."""

    def __init__(
        self,
        response: httpx.Response,
        *,
        first_token_timeout: float,
        token_gap_timeout: float,
        span: Span = INVALID_SPAN,
    ) -> None:
        self._response = response
        self._span = span
        self._first_token_timeout = first_token_timeout
        self._token_gap_timeout = token_gap_timeout
        self._deltas_iter = self._deltas()

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._deltas_iter

    async def aclose(self) -> None:
        """Stop reading and drop the connection: vLLM aborts the request on disconnect."""
        await self._deltas_iter.aclose()
        await self._response.aclose()
        _end(self._span)

    async def _deltas(self) -> AsyncGenerator[Delta, None]:
        events = iter_sse_bytes(self._response.aiter_bytes()).__aiter__()
        timeout = self._first_token_timeout
        finished = False
        try:
            while True:
                try:
                    with anyio.fail_after(timeout):
                        event = await events.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise EngineTimeout(f"the engine sent nothing for {timeout:g} s") from None
                timeout = self._token_gap_timeout
                if event.data == "[DONE]":
                    break
                delta = _parse_chunk(event.data)
                if delta is None:
                    continue
                finished = finished or delta.finish_reason is not None
                yield delta
        except httpx.HTTPError as exc:
            self._span.set_status(StatusCode.ERROR, "connection failed mid-stream")
            raise EngineLost(f"the engine connection failed mid-stream: {exc}") from exc
        except EngineTimeout:
            self._span.set_status(StatusCode.ERROR, "timeout")
            raise
        finally:
            self._span.set_attribute("ragserve.finished", finished)
            _end(self._span)
            await self._response.aclose()
        if not finished:
            raise EngineLost("the engine stream ended before the generation finished")


def _end(span: Span) -> None:
    if span.is_recording():  # ended spans stop recording; ending twice only warns
        span.end()


def _parse_chunk(data: str) -> Delta | None:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise EngineError(f"the engine sent an unreadable chunk: {data[:200]!r}") from exc
    if "error" in chunk:
        raise EngineError(_error_message(chunk))
    usage = chunk.get("usage")
    choices = chunk.get("choices") or []
    text, finish = "", None
    if choices:
        choice = choices[0]
        text = (choice.get("delta") or {}).get("content") or ""
        finish = choice.get("finish_reason")
    if not text and finish is None and not usage:
        return None
    return Delta(
        text=text,
        finish_reason=finish,
        usage=Usage(usage["prompt_tokens"], usage.get("completion_tokens") or 0) if usage else None,
    )


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if isinstance(body.get("message"), str):
            return str(body["message"])
        return str(error)
    return str(body)


class VLLMClient:
    """One vLLM upstream. Create once per process; share across requests."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        first_token_timeout: float = 120.0,
        token_gap_timeout: float = 60.0,
        max_connections: int = 1024,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            # Reads are bounded per token by our own timeouts, not by httpx's.
            timeout=httpx.Timeout(connect=connect_timeout, read=None, write=30.0, pool=None),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
        )
        self._first_token_timeout = first_token_timeout
        self._token_gap_timeout = token_gap_timeout
        self._max_len: dict[str, int | None] = {}

    async def start_chat(
        self, model: str, messages: list[dict[str, Any]], params: GenerationParams
    ) -> VLLMGeneration:
        payload: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **_sampling(params),
        }
        # A client span per attempt; its traceparent lets a traced vLLM join the trace.
        span = _tracer.start_span(
            "vllm chat", kind=SpanKind.CLIENT,
            attributes={"server.address": self.base_url, "gen_ai.request.model": model},
        )  # fmt: skip
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        request = self._http.build_request(
            "POST", "/v1/chat/completions", json=payload, headers=carrier
        )
        began = time.monotonic()
        try:
            return await self._send(request, began, span)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            _end(span)
            raise

    async def _send(self, request: httpx.Request, began: float, span: Span) -> VLLMGeneration:
        try:
            # The first-token budget starts now: an engine that accepts the connection and
            # never answers (not even with headers) must time out like one that sends nothing.
            with anyio.fail_after(self._first_token_timeout):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            raise EngineTimeout(
                f"the engine sent nothing for {self._first_token_timeout:g} s"
            ) from None
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"the engine at {self.base_url} did not answer: {exc}") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the engine at {self.base_url} is unreachable") from exc
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            raise _status_error(response.status_code, body, response.headers.get("retry-after"))
        return VLLMGeneration(
            response,
            first_token_timeout=self._first_token_timeout - (time.monotonic() - began),
            token_gap_timeout=self._token_gap_timeout,
            span=span,
        )

    async def list_models(self) -> list[str]:
        return [card["id"] for card in await self._model_cards()]

    async def max_model_len(self, model: str) -> int | None:
        if model not in self._max_len:
            for card in await self._model_cards():
                self._max_len[card["id"]] = card.get("max_model_len")
        return self._max_len.get(model)

    async def count_chat_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        body = await self._get_json(
            "POST",
            "/tokenize",
            json={"model": model, "messages": messages, "add_generation_prompt": True},
        )
        return int(body["count"])

    async def is_ready(self) -> bool:
        try:
            response = await self._http.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _model_cards(self) -> list[dict[str, Any]]:
        body = await self._get_json("GET", "/v1/models")
        return list(body.get("data", []))

    async def _get_json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, timeout=10.0, **kwargs)
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"the engine at {self.base_url} did not answer: {exc}") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the engine at {self.base_url} is unreachable") from exc
        if response.status_code != 200:
            raise _status_error(response.status_code, response.content)
        return response.json()


def _sampling(params: GenerationParams) -> dict[str, Any]:
    fields = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stop": params.stop,
        "seed": params.seed,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
    }
    sampling = {key: value for key, value in fields.items() if value is not None}
    return {**sampling, **params.extra}


def _status_error(status: int, body: bytes, retry_after: str | None = None) -> EngineError:
    try:
        message = _error_message(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError):
        message = body[:500].decode("utf-8", "replace") or f"HTTP {status}"
    if status in (400, 422):
        return EngineError(message, status=400)
    if status == 404:
        return EngineError(message, status=404, param="model")
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
