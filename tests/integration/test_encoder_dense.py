"""DenseEncoder on the offline all-MiniLM-L6-v2: parity with sentence-transformers, norms, empties, errors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from spladebridge.encoder.dense import DenseEncoder
from spladebridge.encoder.inputs import EncoderInputError
from spladebridge.encoder.models import default_model_dir

TEXTS = [
    "Microstructural development of human newborn cerebral white matter.",
    "Vitamin D deficiency is associated with bone fractures in older adults.",
    "short",
    "Ünïcödé façade naïve café — résumé 東京",
    "long text " * 300,
]


@pytest.fixture(scope="module")
def encoder() -> Iterator[DenseEncoder]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield DenseEncoder(batch_size=2)


@pytest.mark.slow
def test_matches_sentence_transformers(encoder: DenseEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_dir("dense")), device="cpu")
    expected = reference.encode(TEXTS, convert_to_numpy=True)
    got = encoder.encode(TEXTS)
    assert got.shape == expected.shape == (len(TEXTS), 384)
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= 0.9999


def test_embeddings_are_unit_float32_and_deterministic(encoder: DenseEncoder) -> None:
    got = encoder.encode(TEXTS)
    assert got.dtype == np.float32 and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(got, encoder.encode(TEXTS))
    alone = encoder.encode([TEXTS[1]])[0]
    np.testing.assert_allclose(alone, got[1], atol=1e-5)
    similar = got[0] @ got[1]
    assert got[0] @ got[0] > similar  # a text is closest to itself


def test_empty_text_gives_the_zero_vector_and_stats(encoder: DenseEncoder) -> None:
    got = encoder.encode(["", "  ", "words", "word " * 400])
    assert not got[0].any() and not got[1].any()
    assert np.linalg.norm(got[2]) == pytest.approx(1.0, abs=1e-5)
    assert encoder.last_stats.empty == 2 and encoder.last_stats.truncated == 1
    assert encoder.encode([]).shape == (0, 384)


def test_streaming_in_order(encoder: DenseEncoder) -> None:
    small = DenseEncoder(stream_window=2, batch_size=1)
    streamed = np.stack(list(small.iter_encode(iter(TEXTS))))
    np.testing.assert_allclose(streamed, encoder.encode(TEXTS), atol=1e-5)


def test_bad_items_name_their_index(encoder: DenseEncoder) -> None:
    with pytest.raises(EncoderInputError, match="index 1 is None"):
        encoder.encode(["ok", None])  # type: ignore[list-item]
    with pytest.raises(EncoderInputError, match="single string"):
        encoder.encode("a string, not a list")


@pytest.mark.slow
def test_exact_mode_runs_on_onednn_linears(encoder: DenseEncoder) -> None:
    """The float32 fast path (packed oneDNN linears, GELU folded) is the one the parity test above checks."""
    from spladebridge.encoder.onednn_linear import OneDnnLinear, onednn_linear_available

    encoder.encode(TEXTS[:1])
    model = encoder._load()
    packed = [m for m in model.modules() if isinstance(m, OneDnnLinear)]
    if onednn_linear_available():
        assert encoder.dtype == torch.float32
        assert len(packed) == sum(1 for m in model.modules() if isinstance(m, OneDnnLinear | torch.nn.Linear))
        assert any(m.activation == "gelu" for m in packed)


@pytest.mark.slow
def test_fast_mode_stays_within_cosine_tolerance_of_exact(encoder: DenseEncoder) -> None:
    from spladebridge.encoder.runtime import cpu_has_bf16

    fast = DenseEncoder(precision="fast", batch_size=2)
    assert fast.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    exact, quick = encoder.encode(TEXTS), fast.encode(TEXTS)
    assert quick.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quick, axis=1), 1.0, atol=1e-5)
    assert float(np.sum(exact * quick, axis=1).min()) >= 0.9995


@pytest.mark.slow
def test_fast_mode_keeps_the_dense_ranking_on_adi(encoder: DenseEncoder) -> None:
    """Rankings, not just vectors: fast-mode nDCG@10 on adi within 0.01 of exact (the benchmark measures
    scifact and nfcorpus: benchmarks/dense_bench.py --quality)."""
    from pathlib import Path

    from spladebridge.evaluation.beir import load_beir
    from spladebridge.evaluation.metrics import evaluate

    folder = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "adi"
    if not (folder / "corpus.jsonl").exists():
        pytest.skip("the shared adi collection is not beside this checkout")
    adi = load_beir(folder)
    doc_ids = list(adi.corpus)
    queries = adi.judged_queries("test")
    fast = DenseEncoder(precision="fast")
    scores = {}
    for name, model in (("exact", encoder), ("fast", fast)):
        docs = model.encode([adi.doc_text(d) for d in doc_ids])
        asked = model.encode(list(queries.values()))
        sims = asked @ docs.T
        run = {
            qid: {doc_ids[j]: float(sims[i, j]) for j in np.argsort(-sims[i])[:10]}
            for i, qid in enumerate(queries)
        }
        scores[name] = evaluate(adi.split("test"), run, ["ndcg@10"]).means["ndcg@10"]
    assert scores["exact"] > 0.2
    assert abs(scores["fast"] - scores["exact"]) <= 0.01
