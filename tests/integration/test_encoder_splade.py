"""SpladeEncoder on the real offline SPLADE-tiny model: parity with sentence-transformers, modes, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from spladebridge.encoder.idf import IdfTable
from spladebridge.encoder.inputs import EncoderInputError
from spladebridge.encoder.models import default_model_dir
from spladebridge.encoder.sparse_vector import SparseVector
from spladebridge.encoder.splade import SpladeEncoder

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "scifact" / "corpus.jsonl"
EXTRA = [
    "What causes cerebral white matter damage in newborns?",
    "a",
    "Ünïcödé façade naïve café — résumé 東京",
    "x " * 400,  # longer than max_length
]


def scifact_texts(n: int) -> list[str]:
    if not SCIFACT.is_file():
        pytest.skip(f"test collection missing: {SCIFACT}")
    texts = []
    with SCIFACT.open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            texts.append(f"{doc['title']} {doc['text']}")
            if len(texts) == n:
                break
    return texts


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return scifact_texts(6) + EXTRA


@pytest.fixture(scope="module")
def encoder() -> Iterator[SpladeEncoder]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield SpladeEncoder(batch_size=4)


def dense_rows(vectors: list[SparseVector], vocab_size: int) -> np.ndarray:
    return SparseVector.to_csr(vectors, vocab_size).toarray()


@pytest.mark.slow
def test_matches_sentence_transformers_sparse_encoder(
    encoder: SpladeEncoder, texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    folder = str(default_model_dir("splade"))
    reference = SparseEncoder(
        modules=[MLMTransformer(folder, max_seq_length=256), SpladePooling("max")], device="cpu"
    )
    expected = reference.encode_document(texts, batch_size=32).to_dense().numpy()
    got = dense_rows(encoder.encode_documents(texts), encoder.vocab_size)
    assert got.shape == expected.shape == (len(texts), 30522)
    assert np.abs(got - expected).max() <= 1e-4
    assert (got > 0).sum(axis=1).min() > 0  # every text really has terms
    # the same dimensions are active (up to weights too small to matter)
    assert np.array_equal(got > 1e-4, expected > 1e-4)


def test_output_is_deterministic_and_independent_of_batching(
    encoder: SpladeEncoder, texts: list[str]
) -> None:
    together = encoder.encode_documents(texts)
    again = encoder.encode_documents(texts)
    assert together == again
    alone = [encoder.encode_documents([text])[0] for text in texts[:4]]
    reversed_order = encoder.encode_documents(list(reversed(texts)))[::-1]
    for a, b in zip(together[:4], alone, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)
    for a, b in zip(together, reversed_order, strict=True):
        np.testing.assert_allclose(dense_rows([a], 30522), dense_rows([b], 30522), atol=1e-5)


def test_streaming_keeps_input_order_with_small_windows(encoder: SpladeEncoder, texts: list[str]) -> None:
    small = SpladeEncoder(batch_size=2, stream_window=3)
    streamed = small.iter_encode_documents(iter(texts))
    first = next(streamed)  # lazily: the first window is encoded before the rest is read
    assert small.last_stats.texts == 3
    rest = list(streamed)
    assert small.last_stats.texts == len(texts)
    assert small.last_stats.batches >= len(texts) // 2
    for a, b in zip([first, *rest], encoder.encode_documents(texts), strict=True):
        np.testing.assert_allclose(dense_rows([a], 30522), dense_rows([b], 30522), atol=1e-5)


def test_sum_pooling_matches_the_formula_on_full_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = str(default_model_dir("splade"))
    text = "Sum pooling was used by the first SPLADE model."
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True).eval()
    with torch.inference_mode():
        logits = model(**tokenizer([text], return_tensors="pt")).logits[0]
    expected = torch.log1p(torch.relu(logits)).sum(dim=0).numpy()
    got = dense_rows(SpladeEncoder(pooling="sum").encode_documents([text]), 30522)[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)


def test_empty_and_whitespace_texts_give_empty_vectors(encoder: SpladeEncoder) -> None:
    vectors = encoder.encode_documents(["", "   \n\t", "real words"])
    assert vectors[0] == SparseVector.empty() and vectors[1] == SparseVector.empty()
    assert vectors[2].nnz > 0
    assert encoder.last_stats.empty == 2
    assert encoder.last_stats.texts == 3


def test_truncation_is_counted(encoder: SpladeEncoder) -> None:
    before = encoder.stats.truncated
    vectors = encoder.encode_documents(["word " * 600, "short text"])
    assert encoder.last_stats.truncated == 1
    assert encoder.stats.truncated == before + 1
    # words past max_length do not count: a long text of one repeated word equals a shorter one
    assert vectors[0] == encoder.encode_documents(["word " * 300])[0]


def test_bad_items_raise_naming_the_index(encoder: SpladeEncoder) -> None:
    with pytest.raises(EncoderInputError, match="index 2 is None"):
        encoder.encode_documents(["fine", "also fine", None])  # type: ignore[list-item]
    with pytest.raises(EncoderInputError, match="index 1 is a int"):
        encoder.encode_queries(["fine", 5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="index 0 is bytes that are not valid UTF-8"):
        encoder.encode_documents([b"\xff\xfe"])  # type: ignore[list-item]
    assert encoder.encode_documents([b"bytes are decoded"]) == encoder.encode_documents(["bytes are decoded"])  # type: ignore[list-item]


def test_document_and_query_pruning(texts: list[str]) -> None:
    full = SpladeEncoder().encode_documents(texts[:3])
    pruned = SpladeEncoder(doc_max_terms=20, doc_min_weight=0.3, query_max_terms=5)
    docs = pruned.encode_documents(texts[:3])
    for whole, cut in zip(full, docs, strict=True):
        assert 0 < cut.nnz <= 20
        assert cut.values.min() >= 0.3
        kept = whole.prune(0.3).top_k(20)
        assert cut == kept
    queries = pruned.encode_queries([texts[0]])
    assert 0 < queries[0].nnz <= 5
    assert queries[0] == full[0].top_k(5)


def test_decode_and_explain(encoder: SpladeEncoder) -> None:
    query = encoder.encode_queries(["white matter in newborn brains"])[0]
    doc = encoder.encode_documents(
        ["Diffusion imaging of cerebral white matter in preterm newborn infants."]
    )[0]
    decoded = encoder.decode(doc, top_k=5)
    assert len(decoded) == 5
    assert [w for _, w in decoded] == sorted((w for _, w in decoded), reverse=True)
    tokens = dict(encoder.decode(doc))
    assert len(tokens) == doc.nnz and "white" in tokens and "[CLS]" not in tokens
    parts = encoder.explain(query, doc)
    assert parts and sum(value for _, value in parts) == pytest.approx(query.dot(doc), rel=1e-6)
    assert [v for _, v in parts] == sorted((v for _, v in parts), reverse=True)
    assert {token for token, _ in parts} <= set(tokens)
    assert len(encoder.explain(query, doc, top_k=2)) == min(2, len(parts))


def test_similarity_is_the_dot_product_matrix(encoder: SpladeEncoder, texts: list[str]) -> None:
    docs = encoder.encode_documents(texts[:4])
    queries = encoder.encode_queries(["white matter", "vitamin D", ""])
    matrix = encoder.similarity(queries, docs)
    assert matrix.shape == (3, 4) and matrix.dtype == np.float32
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            assert matrix[i, j] == pytest.approx(q.dot(d), rel=1e-5, abs=1e-6)
    assert np.all(matrix[2] == 0)


def test_sparsity_stats_on_real_vectors(encoder: SpladeEncoder, texts: list[str]) -> None:
    docs = encoder.encode_documents(texts)
    stats = encoder.sparsity_stats(docs)
    nnz = [d.nnz for d in docs]
    assert stats.mean_active_dims == pytest.approx(np.mean(nnz))
    assert stats.max_active_dims == max(nnz)
    assert 0 < stats.flops <= stats.mean_active_dims
    assert encoder.vocab_size == len(encoder.vocab) == 30522
    assert encoder.vocab[101] == "[CLS]"


def test_inference_free_queries_use_the_idf_table(texts: list[str], tmp_path: Path) -> None:
    base = SpladeEncoder()
    table = base.fit_idf(texts)
    path = tmp_path / "idf.json"
    table.save(path)
    encoder = SpladeEncoder(query_mode="inference_free", idf=path)
    query = encoder.encode_queries(["white matter white matter zzzqqq"])[0]
    tokens = dict(encoder.decode(query))
    ids = encoder.tokenize_ids(["white matter zzzqqq"])[0]
    assert set(tokens) == {encoder.vocab[i] for i in ids}  # each token once, no special tokens
    assert tokens["white"] == pytest.approx(table.weight("white"), rel=1e-6)
    unseen = [t for t in tokens if t not in table.weights]
    assert unseen and all(tokens[t] == pytest.approx(table.default) for t in unseen)
    assert all(tokens[t] < table.default for t in tokens if t in table.weights)
    top = SpladeEncoder(query_mode="inference_free", idf=table, query_max_terms=2)
    assert top.encode_queries(["white matter white matter zzzqqq"])[0] == query.top_k(2)
    assert encoder._doc._model is None  # no model was loaded for queries
    assert encoder.encode_queries(["", "[CLS]"])[0].nnz == 0
    # the same table fitted on encoded documents also works
    vec_table = IdfTable.fit(base.encode_documents(texts), encoder=base)
    assert vec_table.n_docs == len(texts)


def test_inference_free_needs_a_table() -> None:
    with pytest.raises(ValueError, match="needs idf="):
        SpladeEncoder(query_mode="inference_free")


def test_separate_query_model_with_the_same_vocabulary(texts: list[str]) -> None:
    folder = str(default_model_dir("splade"))
    encoder = SpladeEncoder(query_model=folder)
    assert encoder._query is not encoder._doc
    assert encoder.encode_queries(texts[:1]) == encoder.encode_documents(texts[:1])


def test_the_parity_checks_above_run_on_onednn_linears(encoder: SpladeEncoder) -> None:
    """The transformer's float32 linears are oneDNN's packed ones (the vocabulary head stays the pooler's)."""
    from spladebridge.encoder.onednn_linear import OneDnnLinear, onednn_linear_available

    model, _ = encoder._doc.load()
    packed = [m for m in model.modules() if isinstance(m, OneDnnLinear)]
    if onednn_linear_available():
        assert packed and not any(type(m) is torch.nn.Linear for m in model.modules())
