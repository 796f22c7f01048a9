"""`ragserve eval`: BEIR loading, the ranking metrics, and a whole evaluation run.

Metric values are computed by hand in the comments (log2(2)=1, log2(3)=1.58496,
log2(4)=2, log2(5)=2.32193). The run uses the real embedder and an Edge store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from retrieval.embedder import Embedder
from retrieval.evaluation.beir import BeirDataset, DatasetError, load_beir
from retrieval.evaluation.metrics import (
    METRIC_NAMES,
    evaluate,
    mrr_at_k,
    ndcg_at_k,
    ranked,
    recall_at_k,
)
from retrieval.evaluation.runner import average_length, evaluate_dataset, index_corpus, search_run
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder
from retrieval.types import SearchMode, VectorStore

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "beir-tiny"


# -- metrics ---------------------------------------------------------------------------------


def test_ndcg_uses_graded_gain_and_log2_discount() -> None:
    judgements = {"a": 2, "b": 1, "c": 1}
    # DCG = 1/log2(2) + 2/log2(3) + 0 + 1/log2(5) = 1 + 1.26186 + 0.43068 = 2.69254
    # ideal = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.63093 + 0.5 = 3.13093 -> 0.85998
    dcg = 1 + 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 + 1 / math.log2(3) + 1 / 2
    assert ndcg_at_k(["b", "a", "x", "c"], judgements, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["b", "a", "x", "c"], judgements, 10) == pytest.approx(0.859980, abs=1e-6)
    assert ndcg_at_k(["a", "b", "c"], judgements, 10) == pytest.approx(1.0)


def test_ndcg_cuts_the_ranking_and_the_ideal_at_k() -> None:
    judgements = {"a": 1, "b": 1, "c": 1}
    # top 2 = [x, a]: DCG = 1/log2(3); ideal@2 = 1 + 1/log2(3)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "b", "c"], judgements, 2) == pytest.approx(expected)
    assert ndcg_at_k(["x", "y"], judgements, 2) == 0.0


def test_judgements_of_zero_add_no_gain_and_are_not_relevant() -> None:
    judgements = {"a": 1, "z": 0}
    # "z" at rank 1 gains nothing; "a" at rank 2 gives 1/log2(3) of an ideal 1
    assert ndcg_at_k(["z", "a"], judgements, 10) == pytest.approx(1 / math.log2(3))
    assert recall_at_k(["z"], judgements, 10) == 0.0
    assert mrr_at_k(["z", "a"], judgements, 10) == 0.5
    assert ndcg_at_k(["z"], {"z": 0}, 10) == 0.0  # nothing relevant: 0, as trec_eval


def test_recall_counts_relevant_documents_in_the_top_k() -> None:
    judgements = {"a": 2, "b": 1, "c": 1, "d": 1}
    ranking = ["a", "x", "b", "y", "c"]
    assert recall_at_k(ranking, judgements, 2) == 0.25
    assert recall_at_k(ranking, judgements, 5) == 0.75
    assert recall_at_k(ranking, judgements, 100) == 0.75


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document_within_k() -> None:
    judgements = {"c": 1, "e": 2}
    assert mrr_at_k(["a", "b", "c", "e"], judgements, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["a", "b", "c"], judgements, 2) == 0.0
    assert mrr_at_k([], judgements, 10) == 0.0


def test_k_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k(["a"], {"a": 1}, 0)


def test_runs_are_ranked_by_score_then_by_id_descending_as_trec_eval() -> None:
    assert ranked({"a": 0.5, "b": 0.9, "c": 0.5, "d": 0.1}) == ["b", "c", "a", "d"]


def test_evaluate_averages_over_judged_queries_only() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    run = {
        "q1": {"a": 0.9, "x": 0.1},  # perfect: ndcg 1, recall 1, mrr 1
        "q2": {"x": 0.9, "c": 0.5},  # c at rank 2: ndcg (1/log2 3)/(1 + 1/log2 3), recall 0.5
        "q9": {"a": 1.0},  # no judgements: skipped
    }
    q2_ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    scores = evaluate(run, qrels)
    assert list(scores) == list(METRIC_NAMES)
    assert scores["ndcg@10"] == pytest.approx((1 + q2_ndcg) / 2)
    assert scores["recall@10"] == pytest.approx(0.75)
    assert scores["recall@100"] == pytest.approx(0.75)
    assert scores["mrr@10"] == pytest.approx(0.75)
    # a judged query missing from the run scores 0
    assert evaluate({"q1": run["q1"]}, qrels)["ndcg@10"] == pytest.approx(0.5)


# -- loading ---------------------------------------------------------------------------------


def test_load_keeps_the_judged_queries_and_graded_qrels() -> None:
    data = load_beir(TINY)
    assert data.name == "beir-tiny"
    assert len(data.corpus) == 10
    assert set(data.queries) == {"q1", "q2", "q3", "q4"}  # q5 has no judgements
    assert data.qrels["q1"] == {"d1": 2, "d2": 1}
    assert data.qrels["q4"] == {"d9": 1, "d10": 0}
    assert data.corpus[0].passage.startswith("Resetting your password Open Settings")


def write_dataset(root: Path, corpus: str, queries: str, qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(corpus)
    (root / "queries.jsonl").write_text(queries)
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        ('{"_id": "d1", "text": "x"}\n{oops\n', '{"_id": "q", "text": "x"}',
         "h\nq\td1\t1\n", r"corpus.jsonl:2: not JSON"),
        ('{"_id": "d1"}\n', '{"_id": "q", "text": "x"}', "h\nq\td1\t1\n",
         r"corpus.jsonl:1: needs a non-empty string 'text'"),
        ('{"_id": "d1", "text": "x"}\n', '{"_id": "q", "text": "x"}', "h\nq\td1\thigh\n",
         r"test.tsv:2: expected 'query-id<TAB>corpus-id<TAB>integer score'"),
        ('{"_id": "d1", "text": "x"}\n', '{"_id": "q", "text": "x"}', "h\nq2\td1\t1\n",
         r"judges 1 queries missing from queries.jsonl \(first: 'q2'\)"),
        ('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n', '{"_id": "q", "text": "x"}',
         "h\nq\td1\t1\n", "repeats a document id"),
    ],
)  # fmt: skip
def test_malformed_datasets_are_reported_with_file_and_line(
    tmp_path: Path, corpus: str, queries: str, qrels: str, message: str
) -> None:
    root = write_dataset(tmp_path / "ds", corpus, queries, qrels)
    with pytest.raises(DatasetError, match=message):
        load_beir(root)


def test_a_missing_split_is_reported() -> None:
    with pytest.raises(DatasetError, match=r"cannot read .*qrels/dev.tsv"):
        load_beir(TINY, split="dev")


# -- a whole run (real embedder, Edge store) -------------------------------------------------


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[VectorStore]:
    store = open_store("edge", path=str(tmp_path / "edge"))
    yield store
    store.close()


def test_hits_map_back_to_corpus_ids_in_every_mode(edge: VectorStore, embedder: Embedder) -> None:
    data = load_beir(TINY)
    sparse = SparseEncoder(avgdl=average_length(data.corpus))
    edge.ensure_collection("tiny", embedder.dimension)
    index_corpus(edge, "tiny", embedder, sparse, data.corpus)
    ids = ["q1", "q2", "q3"]
    texts = [data.queries[q] for q in ids]
    dense, keywords = embedder.embed_queries(texts), sparse.encode_queries(texts)
    runs = {mode: search_run(edge, "tiny", mode, ids, dense, keywords) for mode in SearchMode}
    top = {mode: {q: ranked(run[q])[:1] for q in ids} for mode, run in runs.items()}
    assert top[SearchMode.DENSE]["q1"] == ["d1"]  # a paraphrase: no keyword in common
    assert not {"d1", "d2"} & set(runs[SearchMode.SPARSE]["q1"])
    assert top[SearchMode.SPARSE]["q2"] == ["d6"]  # an exact code
    assert top[SearchMode.HYBRID] == {"q1": ["d1"], "q2": ["d6"], "q3": ["d4"]}


def test_queries_that_are_their_documents_score_perfectly(
    edge: VectorStore, embedder: Embedder
) -> None:
    tiny = load_beir(TINY)
    picked = tiny.corpus[:6]
    data = BeirDataset(
        name="self",
        corpus=tiny.corpus,
        queries={f"q-{d.doc_id}": d.passage for d in picked},
        qrels={f"q-{d.doc_id}": {d.doc_id: 1} for d in picked},
    )
    report = evaluate_dataset(data, edge, embedder)
    assert [r.mode for r in report.results] == ["dense", "sparse", "hybrid"]
    for result in report.results:
        assert result.metrics == {name: pytest.approx(1.0) for name in METRIC_NAMES}, result.mode
    assert edge.list_collections() == []  # the evaluation's collection is gone


def test_evaluation_of_the_tiny_dataset(edge: VectorStore, embedder: Embedder) -> None:
    report = evaluate_dataset(load_beir(TINY), edge, embedder)
    by_mode = {r.mode: r.metrics for r in report.results}
    assert report.documents == 10 and report.queries == 4
    assert report.bm25["avgdl"] == pytest.approx(average_length(load_beir(TINY).corpus), abs=0.01)
    # dense misses nothing on ten documents; sparse cannot find the paraphrase's documents
    assert by_mode["dense"]["recall@100"] == 1.0
    assert by_mode["sparse"]["recall@100"] < 1.0
    assert by_mode["hybrid"]["recall@100"] == 1.0
    hybrid = by_mode["hybrid"]["ndcg@10"]
    assert hybrid >= by_mode["sparse"]["ndcg@10"]
    assert 0 < hybrid <= 1


# -- the command -----------------------------------------------------------------------------


def test_eval_command_prints_json_and_a_table(embedder: Embedder) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--dataset", str(TINY), "--json", "--mode", "sparse",
                                 "--mode", "hybrid"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["mode"] for r in report["results"]] == ["sparse", "hybrid"]
    assert set(report["results"][0]["metrics"]) == set(METRIC_NAMES)
    table = runner.invoke(app, ["eval", "--dataset", str(TINY), "--mode", "dense"])
    assert table.exit_code == 0, table.output
    assert "ndcg@10" in table.stdout and "dense" in table.stdout


def test_eval_command_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--dataset", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot read" in result.output
    result = runner.invoke(app, ["eval", "--dataset", str(TINY), "--mode", "fuzzy"])
    assert result.exit_code == 2
    assert "dense, sparse or hybrid" in result.output


def test_eval_command_sweeps_a_grid(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--dataset", str(TINY), "--split", "test", "--json",
                                 "--no-cache", "--sweep", "rrf_k=10,60",
                                 "--sweep", "stemmer=english,none"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    hybrid = [r for r in report["rows"] if r["mode"] == "hybrid"]
    assert sorted((r["setting"]["rrf_k"], r["setting"]["stemmer"]) for r in hybrid) == [
        (10, "english"), (10, "none"), (60, "english"), (60, "none")]  # fmt: skip
    assert sum(r["mode"] == "dense" for r in report["rows"]) == 2  # once per index, not per k
    bad = runner.invoke(app, ["eval", "--dataset", str(TINY), "--sweep", "colour=red"])
    assert bad.exit_code == 2 and "NAME=V1,V2" in bad.output
