"""Request dependencies shared by the /v1 routes: declared, typed, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from gateway.auth import ApiKey, KeyRing
from gateway.errors import store_unavailable

if TYPE_CHECKING:
    from gateway.chat.service import ChatService
    from gateway.completions.service import CompletionsService
    from gateway.documents.service import DocumentService
    from gateway.embeddings.service import EmbeddingService
    from gateway.flow import Services
    from gateway.models import ModelRegistry
    from gateway.responses.service import ResponsesService
    from gateway.retrieval_setup import RetrievalStack
    from gateway.settings import Settings


@dataclass(frozen=True)
class AppServices:
    """Everything the routes use, built once in the app's lifespan."""

    settings: Settings
    keys: KeyRing
    proxy: Services  # the engine, admission, drain and metrics
    models: ModelRegistry
    retrieval: RetrievalStack
    embeddings: EmbeddingService
    documents_service: DocumentService | None  # None: the store could not be opened
    chat: ChatService
    completions: CompletionsService
    responses: ResponsesService

    @property
    def documents(self) -> DocumentService:
        """The documents service, or the store's 503 when there is none."""
        if self.documents_service is None:
            raise store_unavailable(self.retrieval.error)
        return self.documents_service


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
