"""BM25-style keyword vectors for Qdrant sparse vectors (the collection applies IDF).

Tokenisation, identical for documents and queries:

1. NFKC-normalise and case-fold the text.
2. Find *compound tokens*: runs of letters/digits joined by ``-``, ``_``, ``.``, ``:`` or ``/``
   with no space (``E-4012``, ``0x80070005``, ``max_tokens``, ``v1.2.3``, ``en-US``).
   Punctuation that ends a sentence is not a joiner (``end.`` is ``end``).
3. Emit each compound token whole, and for joined ones also its letter/digit parts longer
   than one character (``e-4012`` gives ``e-4012`` and ``4012``), so an exact code matches
   exactly and a partial one still matches its parts.
4. Drop a small set of English stopwords (standalone words and parts; a joined compound is
   never a stopword).
5. With a stemmer (``SparseEncoder(stemmer="english")``), reduce each plain word to its
   Snowball stem (PyStemmer: ``inhibits`` and ``inhibition`` both give ``inhibit``); compound
   tokens stay whole, so codes still match exactly.
6. Map every token to a stable non-negative 32-bit id: CRC-32 of its UTF-8 bytes. Python's
   ``hash()`` is salted per process, CRC-32 is not. Changing the tokenisation or the hash
   invalidates stored vectors: re-index after doing so.

Weights: a document term gets BM25's saturated term frequency
``tf*(k1+1) / (tf + k1*(1 - b + b*len/avgdl))`` (``len`` counts the document's tokens); a
query term gets 1.0 per unique term. Qdrant's ``Modifier.IDF`` on the sparse vector multiplies
in the inverse document frequency at query time, from the collection's own statistics, so the
score of a document is its BM25 score.

Versions: stored vectors only match queries encoded the same way, so each encoder has a
``version`` (``bm25-v1``: no stemmer, what collections built before stemming hold;
``bm25-v2-snowball-<language>``: stemmed) that the ingest writes into every point's payload
(``ENCODER_FIELD``); ``retrieval/encoders.py`` picks the encoder a collection was built with.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from retrieval.types import SparseVector

ENCODER_FIELD = "sparse_encoder"  # payload field naming the encoder version of a point
LEGACY_VERSION = "bm25-v1"  # no stemmer; points stored without ENCODER_FIELD are this
DEFAULT_STEMMER: str | None = "english"

STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves
    """.split()
)

# letters/digits (no underscore), optionally joined to more of them by - _ . : / without spaces
_WORD = r"[^\W_]+"
_COMPOUND = re.compile(rf"{_WORD}(?:[-_.:/]{_WORD})*")
_PART = re.compile(_WORD)


def term_id(token: str) -> int:
    """The stable sparse index of ``token`` (CRC-32, in 0..2**32-1)."""
    return zlib.crc32(token.encode("utf-8"))


def tokenize(text: str, stem: Callable[[str], str] | None = None) -> list[str]:
    """Split ``text`` into the terms the sparse vectors index (see the module docstring)."""
    normalised = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _COMPOUND.finditer(normalised):
        compound = match.group()
        parts = _PART.findall(compound)
        if len(parts) == 1:
            if compound not in STOPWORDS:
                tokens.append(stem(compound) if stem else compound)
            continue
        tokens.append(compound)
        tokens.extend((stem(p) if stem else p) for p in parts if len(p) > 1 and p not in STOPWORDS)
    return tokens


def version_of(stemmer: str | None) -> str:
    """The version string of an encoder with ``stemmer`` (None: none)."""
    return LEGACY_VERSION if stemmer is None else f"bm25-v2-snowball-{stemmer}"


def stemmer_of(version: str) -> str | None:
    """Inverse of ``version_of``; raises ``ValueError`` for a version this code cannot encode."""
    if version == LEGACY_VERSION:
        return None
    prefix = "bm25-v2-snowball-"
    if version.startswith(prefix) and version[len(prefix) :] in _algorithms():
        return version[len(prefix) :]
    raise ValueError(f"unknown sparse encoder version {version!r}")


def _algorithms() -> list[str]:
    import Stemmer

    return list(Stemmer.algorithms())


class SparseEncoder:
    """Encode documents (BM25 tf weights) and queries (1.0 per term) as sparse vectors."""

    def __init__(
        self,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        avgdl: float = 120.0,
        stemmer: str | None = DEFAULT_STEMMER,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1 or avgdl <= 0:
            raise ValueError("need k1 >= 0, 0 <= b <= 1 and avgdl > 0")
        self.k1 = k1
        self.b = b
        # average document length in tokens; ~120 suits chunks of ~200 model tokens
        self.avgdl = avgdl
        self.stemmer = stemmer
        self.version = version_of(stemmer)
        self._stem: Callable[[str], str] | None = None
        if stemmer is not None:
            import Stemmer  # PyStemmer: Snowball's C stemmers, with their own word cache

            self._stem = Stemmer.Stemmer(stemmer).stemWord

    @classmethod
    def for_version(cls, version: str, **bm25: float) -> SparseEncoder:
        """The encoder that produced vectors of ``version`` (same BM25 parameters)."""
        return cls(stemmer=stemmer_of(version), **bm25)

    def with_version(self, version: str) -> SparseEncoder:
        """This encoder's BM25 parameters with the tokenisation of ``version``."""
        if version == self.version:
            return self
        return SparseEncoder.for_version(version, k1=self.k1, b=self.b, avgdl=self.avgdl)

    def tokenize(self, text: str) -> list[str]:
        """The terms of ``text`` as this encoder indexes them."""
        return tokenize(text, self._stem)

    def encode_document(self, text: str) -> SparseVector:
        """BM25-saturated term frequencies of ``text``."""
        tokens = self.tokenize(text)
        if not tokens:
            return SparseVector(indices=[], values=[], encoder=self.version)
        norm = self.k1 * (1.0 - self.b + self.b * len(tokens) / self.avgdl)
        weights: dict[int, float] = {}
        for token, tf in Counter(tokens).items():
            index = term_id(token)
            # two tokens may share an id (a CRC-32 collision): their weights add up
            weights[index] = weights.get(index, 0.0) + tf * (self.k1 + 1.0) / (tf + norm)
        return _to_vector(weights, self.version)

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        """``encode_document`` for each text."""
        return [self.encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """1.0 for each unique term of ``text`` (Qdrant's IDF supplies the term weights)."""
        terms = dict.fromkeys((term_id(t) for t in self.tokenize(text)), 1.0)
        return _to_vector(terms, self.version)

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """``encode_query`` for each text."""
        return [self.encode_query(text) for text in texts]


def _to_vector(weights: dict[int, float], version: str) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(indices=indices, values=[weights[i] for i in indices], encoder=version)
