"""sse-starlette's ``EventSourceResponse`` with a lighter send path for pre-framed bytes.

Written against sse-starlette 3.7 (pinned in pyproject.toml). Its ``_stream_response``
opens a cancel scope and formats a debug log line for every event it sends; the relay
already yields framed bytes, several events per write, and bounds its own waits, so this
override sends them as they are. Pings, disconnect detection, the shutdown grace period
and the closing empty body are sse-starlette's own, unchanged.
"""

from __future__ import annotations

import anyio
from sse_starlette import EventSourceResponse
from starlette.types import Send


class RelayResponse(EventSourceResponse):
    async def _stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        self._response_started = True
        async for chunk in self.body_iterator:
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except BaseException:
                # Interrupted mid-send: close the iterator so its cleanup runs now
                # (sse-starlette does the same, bounded by its cleanup timeout).
                self._send_interrupted = True
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with anyio.move_on_after(self._cleanup_timeout, shield=True):
                        await aclose()
                raise
        async with self._send_lock:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except BaseException:
                self._send_interrupted = True
                raise
            self._response_complete = True
            self.active = False
