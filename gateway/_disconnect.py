"""Race a handler against the client going away (non-streaming requests).

Starlette does not cancel a plain handler when its client disconnects; without this an
abandoned non-stream request would keep the engine generating to the end.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio
from starlette.requests import Request

T = TypeVar("T")


class ClientDisconnected(Exception):
    pass


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    result: list[T] = []
    failure: list[Exception] = []

    async def run_work(scope: anyio.CancelScope) -> None:
        try:
            result.append(await work)
        except Exception as exc:  # re-raised below, unwrapped from the task group
            failure.append(exc)
        scope.cancel()

    async def watch(scope: anyio.CancelScope) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async with anyio.create_task_group() as group:
        group.start_soon(run_work, group.cancel_scope)
        group.start_soon(watch, group.cancel_scope)
    if failure:
        raise failure[0]
    if not result:
        raise ClientDisconnected()
    return result[0]
