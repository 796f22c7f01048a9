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
5. Map every token to a stable non-negative 32-bit id: CRC-32 of its UTF-8 bytes. Python's
   ``hash()`` is salted per process, CRC-32 is not. Changing the tokenisation or the hash
   invalidates stored vectors: re-index after doing so.

Weights: a document term gets BM25's saturated term frequency
``tf*(k1+1) / (tf + k1*(1 - b + b*len/avgdl))`` (``len`` counts the document's tokens); a
query term gets 1.0 per unique term. Qdrant's ``Modifier.IDF`` on the sparse vector multiplies
in the inverse document frequency at query time, from the collection's own statistics, so the
score of a document is its BM25 score.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence

from retrieval.types import SparseVector

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


def tokenize(text: str) -> list[str]:
    """Split ``text`` into the terms the sparse vectors index (see the module docstring)."""
    normalised = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _COMPOUND.finditer(normalised):
        compound = match.group()
        parts = _PART.findall(compound)
        if len(parts) == 1:
            if compound not in STOPWORDS:
                tokens.append(compound)
            continue
        tokens.append(compound)
        tokens.extend(p for p in parts if len(p) > 1 and p not in STOPWORDS)
    return tokens


class SparseEncoder:
    """Encode documents (BM25 tf weights) and queries (1.0 per term) as sparse vectors."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avgdl: float = 120.0) -> None:
        if k1 < 0 or not 0 <= b <= 1 or avgdl <= 0:
            raise ValueError("need k1 >= 0, 0 <= b <= 1 and avgdl > 0")
        self.k1 = k1
        self.b = b
        # average document length in tokens; ~120 suits chunks of ~200 model tokens
        self.avgdl = avgdl

    def encode_document(self, text: str) -> SparseVector:
        """BM25-saturated term frequencies of ``text``."""
        tokens = tokenize(text)
        if not tokens:
            return SparseVector(indices=[], values=[])
        norm = self.k1 * (1.0 - self.b + self.b * len(tokens) / self.avgdl)
        weights: dict[int, float] = {}
        for token, tf in Counter(tokens).items():
            index = term_id(token)
            # two tokens may share an id (a CRC-32 collision): their weights add up
            weights[index] = weights.get(index, 0.0) + tf * (self.k1 + 1.0) / (tf + norm)
        return _to_vector(weights)

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        """``encode_document`` for each text."""
        return [self.encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """1.0 for each unique term of ``text`` (Qdrant's IDF supplies the term weights)."""
        return _to_vector(dict.fromkeys((term_id(t) for t in tokenize(text)), 1.0))

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """``encode_query`` for each text."""
        return [self.encode_query(text) for text in texts]


def _to_vector(weights: dict[int, float]) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(indices=indices, values=[weights[i] for i in indices])
