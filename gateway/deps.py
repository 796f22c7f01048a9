"""Request dependencies shared by the /v1 routes: declared, typed, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from gateway.auth import ApiKey, KeyRing

if TYPE_CHECKING:
    from gateway.chat.service import ChatService
    from gateway.completions.service import CompletionsService
    from gateway.proxy import Services
    from gateway.responses.service import ResponsesService


@dataclass(frozen=True)
class AppServices:
    """Everything the proxied routes use, built in the app's lifespan."""

    proxy: Services
    chat: ChatService
    completions: CompletionsService
    responses: ResponsesService


async def api_key(request: Request) -> ApiKey | None:
    """The caller's API key (None when the server has none configured); 401 otherwise."""
    keys: KeyRing = request.app.state.keys
    key = keys.authenticate(request)
    request.state.api_key = key
    return key


async def app_services(request: Request) -> AppServices:  # async: no threadpool hop
    services: AppServices = request.app.state.services
    return services


KeyDep = Annotated[ApiKey | None, Depends(api_key)]
ServicesDep = Annotated[AppServices, Depends(app_services)]
