"""The bundled embedding model: offline, 384-d, normalised, loaded once."""

from __future__ import annotations

import math

from retrieval.embedder import Embedder


def test_bundled_model_loads_once_per_process(embedder: Embedder) -> None:
    assert Embedder.load() is embedder
    assert embedder.dimension == 384
    assert embedder.max_seq_length == 256


def test_vectors_are_normalised_and_semantic(embedder: Embedder) -> None:
    docs = embedder.embed_documents(["The cat sleeps on the sofa.", "Stock prices fell sharply."])
    (query,) = embedder.embed_queries(["a kitten napping on a couch"])
    assert all(
        len(v) == 384 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4)
        for v in [*docs, query]
    )
    cat, stocks = (sum(a * b for a, b in zip(query, d, strict=True)) for d in docs)
    assert cat > stocks + 0.3
    assert embedder.embed_documents([]) == []


def test_tokenizer_counts_tokens(embedder: Embedder) -> None:
    ids = embedder.tokenizer("hello world", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2
