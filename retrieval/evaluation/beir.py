"""Load a dataset in BEIR's layout.

::

    DIR/corpus.jsonl      {"_id": "d1", "title": "...", "text": "..."} per line
    DIR/queries.jsonl     {"_id": "q1", "text": "..."} per line
    DIR/qrels/<split>.tsv query-id <TAB> corpus-id <TAB> score, after one header line

Only the queries judged in the split are kept. Judgements naming a document missing from the
corpus are kept too (they count against recall, as in BEIR); a query judged but missing from
``queries.jsonl`` is an error, since it could never be asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# query id -> corpus id -> graded relevance (0 = judged not relevant)
Qrels = dict[str, dict[str, int]]


class DatasetError(ValueError):
    """The dataset folder is missing a file or holds a malformed line."""


@dataclass(frozen=True, slots=True)
class CorpusDocument:
    doc_id: str
    title: str
    text: str

    @property
    def passage(self) -> str:
        """What gets indexed: the title, then the text (as BEIR and MTEB encode documents)."""
        return f"{self.title} {self.text}".strip()


@dataclass(frozen=True, slots=True)
class BeirDataset:
    name: str
    corpus: list[CorpusDocument]
    queries: dict[str, str]  # the judged queries of the split only
    qrels: Qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Read ``folder`` (BEIR layout) for ``split``; raises ``DatasetError`` on bad input."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    qrels = _read_qrels(root / "qrels" / f"{split}.tsv")
    corpus = [
        CorpusDocument(
            doc_id=_field(row, "_id", where),
            title=str(row.get("title") or ""),
            text=_field(row, "text", where, allow_empty=True),
        )  # fmt: skip
        for row, where in _jsonl(root / "corpus.jsonl")
    ]
    if not corpus:
        raise DatasetError(f"{root / 'corpus.jsonl'} holds no documents")
    ids = [d.doc_id for d in corpus]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{root / 'corpus.jsonl'} repeats a document id")
    all_queries = {
        _field(row, "_id", where): _field(row, "text", where)
        for row, where in _jsonl(root / "queries.jsonl")
    }
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise DatasetError(
            f"qrels/{split}.tsv judges {len(missing)} queries missing from queries.jsonl "
            f"(first: {missing[0]!r})"
        )
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(name=root.resolve().name, corpus=corpus, queries=queries, qrels=qrels)


def _jsonl(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """Each JSON object of ``path`` with its ``file:line`` for error messages."""
    try:
        lines = path.open(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            yield row, where


def _field(row: dict[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    value = row.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # some exports write numeric ids
    if not isinstance(value, str) or not (value or allow_empty):
        raise DatasetError(f"{where}: needs a non-empty string {key!r}")
    return value


def _read_qrels(path: Path) -> Qrels:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    qrels: Qrels = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or number == 1:  # BEIR writes a header line
            continue
        parts = line.split("\t")
        try:
            query_id, doc_id, score = parts[0], parts[1], int(parts[2])
        except (IndexError, ValueError) as exc:
            raise DatasetError(
                f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>integer score'"
            ) from exc
        qrels.setdefault(query_id, {})[doc_id] = score
    if not qrels:
        raise DatasetError(f"{path} holds no judgements")
    return qrels
