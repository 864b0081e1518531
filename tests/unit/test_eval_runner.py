"""The evaluation runner end to end on a synthetic collection, with small stand-in encoders and engine.

The stand-ins are exact (brute-force dot products), so every number here follows from the data: the test
checks the plumbing (signals, fusion, tuning split, index reuse, pruning), not model quality.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from spladebridge.connectors.base import Capabilities, Connector, DocId, Document, Hit, IndexSpec, WriteReport
from spladebridge.connectors.filters import FilterLike
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.evaluation.runner import EvalConfig, run_evaluation


def words(text: str) -> list[str]:
    return re.findall(r"\w\w+", text.lower())


class BagOfWords:
    """SPLADE stand-in: hashed term counts."""

    model_name = "bag-of-words"

    def __init__(self) -> None:
        self.documents_encoded = 0

    def _one(self, text: str) -> SparseVector:
        counts: dict[int, float] = {}
        for w in words(text):
            key = zlib.crc32(w.encode()) % 30522
            counts[key] = counts.get(key, 0.0) + 1.0
        return SparseVector.from_dict(counts)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        self.documents_encoded += len(texts)
        return [self._one(t) for t in texts]

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self._one(t) for t in texts]


class RandomProjection:
    """Dense stand-in: a fixed random vector per word, summed and normalised."""

    model_name = "random-projection"
    dim = 16

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row] += np.random.default_rng(zlib.crc32(w.encode())).standard_normal(self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class MemoryEngine(Connector):
    """Exact in-memory connector; `store` outlives instances so a second run can reuse the index."""

    def __init__(self, store: dict[str, dict[str, Document]], spec: IndexSpec) -> None:
        self.docs = store.setdefault(spec.name, {})
        self.spec = spec
        self.upserts = 0
        self.closed = False

    def ensure_index(self, spec: IndexSpec) -> None:
        assert spec == self.spec

    def upsert(self, documents: Iterable[Document]) -> WriteReport:
        self.upserts += 1
        report = WriteReport()
        for doc in documents:
            self.docs[str(doc.id)] = doc
            from spladebridge.connectors.base import ItemOutcome

            report.outcomes.append(ItemOutcome(doc.id, ok=True, status="upserted"))
        return report

    def delete(self, ids: Iterable[DocId]) -> WriteReport:
        raise NotImplementedError

    def get(self, ids: Sequence[DocId]) -> list[Document | None]:
        return [self.docs.get(str(i)) for i in ids]

    def scan(self, batch_size: int = 500) -> Iterator[Document]:
        yield from self.docs.values()

    def count(self) -> int:
        return len(self.docs)

    def _top(self, scores: dict[str, float], k: int) -> list[Hit]:
        ranked = sorted(((d, s) for d, s in scores.items() if s > 0), key=lambda x: (-x[1], x[0]))[:k]
        return [Hit(d, s, r + 1) for r, (d, s) in enumerate(ranked)]

    def search_sparse(self, vector: SparseVector, k: int, filter: FilterLike = None) -> list[Hit]:
        return self._top({d: vector.dot(doc.sparse) for d, doc in self.docs.items() if doc.sparse}, k)

    def search_dense(self, vector: NDArray[np.float32], k: int, filter: FilterLike = None) -> list[Hit]:
        return self._top(
            {
                d: float(np.dot(vector, doc.dense)) + 1.0
                for d, doc in self.docs.items()
                if doc.dense is not None
            },
            k,
        )

    def search_text(self, text: str, k: int, filter: FilterLike = None) -> list[Hit]:
        query = set(words(text))
        return self._top({d: float(len(query & set(words(doc.text())))) for d, doc in self.docs.items()}, k)

    def capabilities(self) -> Capabilities:
        return Capabilities(engine="memory", lexical=True)

    def close(self) -> None:
        self.closed = True


TOPICS = [
    "apple orchard harvest",
    "rocket engine thrust",
    "violin string music",
    "glacier ice climate",
    "python snake venom",
    "chess opening gambit",
    "coffee bean roast",
    "volcano lava eruption",
]


def write_collection(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs, queries, test, dev = [], [], ["query-id\tcorpus-id\tscore"], ["query-id\tcorpus-id\tscore"]
    for t, topic in enumerate(TOPICS):
        for j in range(3):
            docs.append(
                {"_id": f"d{t}-{j}", "title": topic.split()[j], "text": f"{topic} note {j} filler text"}
            )
        queries.append({"_id": f"q{t}", "text": f"{topic.split()[0]} {topic.split()[1]}"})
        queries.append({"_id": f"dq{t}", "text": f"{topic.split()[2]}"})
        test.extend(f"q{t}\td{t}-{j}\t{2 if j == 0 else 1}" for j in range(2))
        dev.append(f"dq{t}\td{t}-2\t1")
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text("\n".join(test) + "\n")
    (root / "qrels" / "dev.tsv").write_text("\n".join(dev) + "\n")
    return root


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    return write_collection(tmp_path / "topics")


def run(
    collection: Path,
    tmp_path: Path,
    store: dict[str, dict[str, Document]],
    engines: list[MemoryEngine],
    sparse: BagOfWords,
    **kw: object,
):  # type: ignore[no-untyped-def]
    def factory(spec: IndexSpec) -> MemoryEngine:
        engines.append(MemoryEngine(store, spec))
        return engines[-1]

    config = EvalConfig(dataset_dir=collection, cache_dir=tmp_path / "cache", **kw)  # type: ignore[arg-type]
    return run_evaluation(
        config, sparse_encoder=sparse, dense_encoder=RandomProjection(), connector_factory=factory
    )


def test_every_system_is_scored_and_fusion_is_tuned_on_dev(collection: Path, tmp_path: Path) -> None:
    engines: list[MemoryEngine] = []
    report = run(collection, tmp_path, {}, engines, BagOfWords())
    assert list(report.systems) == [
        "bm25",
        "bm25_engine",
        "splade",
        "dense",
        "hybrid",
        "hybrid_rrf",
        "hybrid_wsum",
    ]
    assert report.n_queries == 8 and report.n_docs == 24
    for res in report.systems.values():
        assert set(res.means) == {"ndcg@10", "recall@100", "mrr@10"}
        assert set(res.per_query) == {f"q{t}" for t in range(8)}
        assert 0.0 <= res.means["ndcg@10"] <= 1.0
    # the topics are lexically separable: the exact term-matching signals put a relevant doc first
    assert report.systems["splade"].means["mrr@10"] == pytest.approx(1.0)
    wsum = report.systems["hybrid_wsum"]
    assert wsum.tuned_on == "dev"
    assert sum(wsum.params["weights"].values()) == pytest.approx(1.0)  # type: ignore[union-attr]
    assert report.systems["hybrid_rrf"].tuned_on is None
    best_single = max(
        ["bm25", "bm25_engine", "splade", "dense"], key=lambda s: report.systems[s].means["ndcg@10"]
    )
    assert {w.baseline for w in report.wins_losses} == {best_single}
    assert {w.system for w in report.wins_losses} == {"hybrid", "hybrid_rrf", "hybrid_wsum"}
    # the product path: HybridSearcher's defaults over the engine's signals, and it says how it fused
    assert "HybridSearcher defaults" in report.systems["hybrid"].description
    assert report.systems["hybrid_rrf"].params["signals"] == ["bm25_engine", "splade", "dense"]  # type: ignore[index]
    assert [p.max_terms for p in report.pruning] == [8, 16, 32, 64, None]
    assert report.pruning[-1].ndcg_at_10 == pytest.approx(report.systems["splade"].means["ndcg@10"])
    assert report.pruning[0].mean_terms <= 8
    assert engines[0].closed
    json.dumps(report.to_json_obj(per_query=True))


def test_second_run_reuses_vectors_and_index(collection: Path, tmp_path: Path) -> None:
    store: dict[str, dict[str, Document]] = {}
    engines: list[MemoryEngine] = []
    sparse = BagOfWords()
    first = run(collection, tmp_path, store, engines, sparse)
    second = run(collection, tmp_path, store, engines, sparse)
    assert sparse.documents_encoded == 24
    assert [e.upserts for e in engines] == [1, 0]
    assert "index reused from an earlier run" in second.notes
    assert second.to_json_obj()["systems"] == first.to_json_obj()["systems"]


def test_untuned_without_dev_and_never_on_test(collection: Path, tmp_path: Path) -> None:
    (collection / "qrels" / "dev.tsv").unlink()
    report = run(collection, tmp_path, {}, [], BagOfWords(), pruning=())
    wsum = report.systems["hybrid_wsum"]
    assert wsum.tuned_on is None
    assert list(wsum.params["weights"].values()) == [pytest.approx(1 / 3)] * 3  # type: ignore[union-attr]
    assert "untuned" in wsum.description
    assert report.pruning == []


def test_signal_selection(collection: Path, tmp_path: Path) -> None:
    engines: list[MemoryEngine] = []
    report = run(collection, tmp_path, {}, engines, BagOfWords(), signals=("bm25",), fusions=())
    assert list(report.systems) == ["bm25"]
    assert engines == []  # BM25 alone runs in-process: no engine is opened


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="unknown signal 'bm26'"):
        EvalConfig(dataset_dir=Path("."), signals=("bm26",))
    with pytest.raises(ValueError, match="at least two signals"):
        EvalConfig(dataset_dir=Path("."), fuse=("splade",))
    with pytest.raises(ValueError, match="depth must be at least 10"):
        EvalConfig(dataset_dir=Path("."), depth=5)
