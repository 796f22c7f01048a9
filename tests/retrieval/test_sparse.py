"""Keyword vectors: tokenisation, stable ids, BM25 document weights, flat query weights."""

from __future__ import annotations

import zlib

import pytest

from retrieval.sparse import SparseEncoder, term_id, tokenize


def test_tokens_are_lowercase_words_without_stopwords() -> None:
    assert tokenize("The Quick brown fox, and THE lazy dog.") == [
        "quick",
        "brown",
        "fox",
        "lazy",
        "dog",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Error E-4012 again", ["error", "e-4012", "4012"]),
        ("HRESULT 0x80070005", ["hresult", "0x80070005"]),
        ("set max_tokens to 5", ["set", "max_tokens", "max", "tokens", "5"]),
        ("see v1.2.3.", ["see", "v1.2.3", "v1"]),
        ("It ends there.", ["ends"]),
        ("Überprüfung der Größe", ["überprüfung", "der", "grösse"]),  # casefold: ß is ss
    ],
)
def test_codes_stay_whole_and_keep_their_parts(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_term_ids_are_stable_unsigned_32_bit() -> None:
    # CRC-32 is fixed forever: stored vectors depend on it (Python's hash() is salted)
    assert term_id("zx-4471") == zlib.crc32(b"zx-4471")
    assert term_id("password") == 0x35C246D5
    assert all(0 <= term_id(t) < 2**32 for t in ["a", "ü", "0x80070005", "x" * 1000])


def test_query_weights_are_one_per_unique_term() -> None:
    vector = SparseEncoder().encode_query("reset the password, reset it now")
    assert sorted(vector.indices) == sorted({term_id("reset"), term_id("password")})
    assert vector.values == [1.0, 1.0]
    assert vector.indices == sorted(vector.indices)


def test_document_weights_follow_bm25_saturation() -> None:
    encoder = SparseEncoder(k1=1.2, b=0.75, avgdl=4.0)
    vector = encoder.encode_document("alpha alpha beta gamma")  # 4 tokens: len == avgdl
    weights = dict(zip(vector.indices, vector.values, strict=True))
    # len == avgdl, so the length norm is k1: tf*(k1+1)/(tf+k1)
    assert weights[term_id("alpha")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert weights[term_id("beta")] == pytest.approx(2.2 / 2.2)
    longer = encoder.encode_document("alpha beta gamma delta epsilon zeta eta theta")
    short_beta = weights[term_id("beta")]
    long_beta = dict(zip(longer.indices, longer.values, strict=True))[term_id("beta")]
    assert long_beta < short_beta  # longer documents weigh each occurrence less


def test_empty_and_stopword_only_texts_give_empty_vectors() -> None:
    encoder = SparseEncoder()
    for text in ["", "   ", "the and of to", "!!! ..."]:
        assert encoder.encode_document(text).indices == []
        assert encoder.encode_query(text).indices == []


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        SparseEncoder(avgdl=0)
    with pytest.raises(ValueError):
        SparseEncoder(b=1.5)
