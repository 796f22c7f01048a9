"""Session-wide real retrieval components: the bundled embedder, a mini corpus, fresh stores.

Store tests run on every backend: ``edge`` (Qdrant Edge) and ``local`` (qdrant-client's local
mode) always; ``server`` only when ``RAGSERVE_TEST_QDRANT_URL`` points at a Qdrant server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.embedder import Embedder
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder
from retrieval.types import PointRecord, VectorStore

SERVER_URL = os.environ.get("RAGSERVE_TEST_QDRANT_URL")

# (key, text, source, page, tags). "kennel" is the only passage with the code ZX-4471; the
# "fault codes" passage looks like codes to the dense model but shares no keyword with it.
CORPUS: list[tuple[str, str, str, int, list[str]]] = [
    (
        "password",
        "To reset your password, open Settings, choose Security and click 'Forgot password'. "
        "A reset link is emailed to you.",
        "account.md",
        1,
        ["account", "security"],
    ),
    (
        "2fa",
        "Two-factor authentication adds a one-time code from an authenticator app to every "
        "sign-in.",
        "account.md",
        2,
        ["security"],
    ),
    (
        "invoice",
        "The invoice lists every charge of the billing period; refunds appear as negative lines.",
        "billing.md",
        1,
        ["billing"],
    ),
    (
        "card",
        "Payments by credit card are processed within three business days.",
        "billing.md",
        3,
        ["billing"],
    ),
    (
        "kennel",
        "Our office dog enjoys long walks in the park every afternoon; the kennel at the back "
        "door is labelled ZX-4471.",
        "misc.md",
        9,
        ["misc"],
    ),
    (
        "fault-codes",
        "Fault codes such as ZX4417, ZQ-4417 and XZ-4714 are listed in the fault table with "
        "their causes.",
        "troubleshooting.md",
        4,
        ["errors"],
    ),
    (
        "offline",
        "The mobile app shows a red banner when the device is offline and retries uploads later.",
        "troubleshooting.md",
        5,
        ["errors", "mobile"],
    ),
    (
        "sync",
        "If contacts fail to sync, sign out and sign back in, then check your network connection.",
        "troubleshooting.md",
        6,
        ["mobile"],
    ),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    return Embedder.load()


@pytest.fixture(scope="session")
def sparse_encoder() -> SparseEncoder:
    return SparseEncoder()


@pytest.fixture(scope="session")
def corpus(embedder: Embedder, sparse_encoder: SparseEncoder) -> dict[str, PointRecord]:
    """The mini corpus as points, keyed by passage key (ids are stable per key)."""
    texts = [text for _, text, *_ in CORPUS]
    dense = embedder.embed_documents(texts)
    points = {}
    for (key, text, source, page, tags), vector in zip(CORPUS, dense, strict=True):
        points[key] = PointRecord(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"ragserve-test/{key}")),
            dense=vector,
            sparse=sparse_encoder.encode_document(text),
            payload={
                "text": text,
                "key": key,
                "source": source,
                "doc_id": source,
                "doc_hash": f"hash-{source}",
                "page": page,
                "tags": tags,
            },
        )
    return points


BACKENDS = [
    "edge",
    "local",
    pytest.param(
        "server",
        marks=pytest.mark.skipif(
            SERVER_URL is None, reason="set RAGSERVE_TEST_QDRANT_URL to test a Qdrant server"
        ),
    ),
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """A fresh, empty store of each backend."""
    backend = request.param
    opened = open_store(backend, path=str(tmp_path / backend), url=SERVER_URL)
    try:
        yield opened
    finally:
        if backend == "server":  # a shared server: leave nothing behind
            for name in opened.list_collections():
                if name.startswith("t_"):
                    opened.delete_collection(name)
        opened.close()


@pytest.fixture
def name() -> str:
    """A collection name no other test uses (a server may be shared)."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def filled(store: VectorStore, name: str, corpus: dict[str, PointRecord]) -> VectorStore:
    """``store`` with the mini corpus in collection ``name``."""
    store.ensure_collection(name, len(next(iter(corpus.values())).dense))
    store.upsert(name, list(corpus.values()))
    return store
