"""Chunked SPLADE pooling equals the naive full-logits computation; the head split is verified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from spladebridge.encoder.mlm_head import MlmHeadError, VocabPooler, split_mlm_head


def naive_splade(rows: torch.Tensor, lengths: list[int], weight: torch.Tensor, bias: torch.Tensor, how: str):
    """The textbook formula: full logits, log1p(relu(.)), then pool per text."""
    out = []
    start = 0
    for length in lengths:
        act = torch.log1p(torch.relu(rows[start : start + length] @ weight.T + bias))
        out.append(act.max(dim=0).values if how == "max" else act.sum(dim=0))
        start += length
    return torch.stack(out)


@pytest.mark.parametrize("how", ["max", "sum"])
@pytest.mark.parametrize(("chunk", "group_rows"), [(7, 5), (64, 512), (1000, 1)])
def test_pooler_matches_naive_formula(how: str, chunk: int, group_rows: int) -> None:
    gen = torch.Generator().manual_seed(3)
    vocab, hidden = 203, 16
    weight = torch.randn(vocab, hidden, generator=gen)
    bias = torch.randn(vocab, generator=gen)
    lengths = [1, 9, 4, 17, 2]
    rows = torch.randn(sum(lengths), hidden, generator=gen)
    pooler = VocabPooler(weight, bias, pooling=how, vocab_chunk=chunk, group_rows=group_rows)  # type: ignore[arg-type]
    got = pooler.pool(rows, lengths)
    want = naive_splade(rows, lengths, weight, bias, how)
    assert got.dtype == torch.float32
    assert got.shape == (len(lengths), vocab)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert bool((got >= 0).all())
    assert int((got > 0).sum()) > 0


def test_pooler_without_bias_and_row_count_check() -> None:
    weight = torch.eye(3)
    pooler = VocabPooler(weight, None)
    rows = torch.tensor([[1.0, -2.0, 0.0], [0.5, 3.0, -1.0]])
    got = pooler.pool(rows, [2])
    expected = torch.log1p(torch.tensor([[1.0, 3.0, 0.0]]))
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="3 rows given"):
        pooler.pool(torch.zeros(3, 3), [2])


def tiny_bert() -> BertForMaskedLM:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=97, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    return BertForMaskedLM(config).eval()


def test_split_head_reproduces_the_logits() -> None:
    model = tiny_bert()
    ids = torch.tensor([[2, 15, 40, 3]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        reference = model(input_ids=ids, attention_mask=mask).logits[0]
    weight, bias = split_mlm_head(model, ids)
    assert weight.shape == (97, 16)
    with torch.inference_mode():
        hidden = model(input_ids=ids, attention_mask=mask).logits[0]
    assert hidden.shape == (4, 16)
    assert bias is not None
    torch.testing.assert_close(hidden @ weight.T + bias, reference, atol=1e-5, rtol=1e-5)


def test_split_head_refuses_a_head_with_extra_steps() -> None:
    model = tiny_bert()
    with torch.no_grad():
        model.cls.predictions.decoder.bias.uniform_(0.5, 1.0)  # so that a scaled output cannot hide
    original = model.cls.predictions.forward

    def doubled(hidden_states: torch.Tensor) -> torch.Tensor:
        return original(hidden_states) * 3.0  # a step after the projection

    model.cls.predictions.forward = doubled  # type: ignore[method-assign]
    with pytest.raises(MlmHeadError, match="extra steps"):
        split_mlm_head(model, torch.tensor([[2, 5, 3]]))
    # the model is left as it was
    assert isinstance(model.get_output_embeddings(), torch.nn.Linear)


def test_split_head_refuses_a_non_linear_output_layer() -> None:
    class NoHead(torch.nn.Module):
        def get_output_embeddings(self) -> None:
            return None

    with pytest.raises(MlmHeadError, match=r"torch\.nn\.Linear"):
        split_mlm_head(NoHead(), torch.tensor([[1]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bias_shift", [-3.0, -0.5, 0.0])
def test_int8_screen_gives_the_float32_result(seed: int, bias_shift: float) -> None:
    """Screening may skip only entries whose true max is <= 0, so the pooled output is unchanged."""
    gen = torch.Generator().manual_seed(seed)
    vocab, hidden = 1500, 48
    weight = torch.randn(vocab, hidden, generator=gen) * 0.05
    bias = torch.randn(vocab, generator=gen) + bias_shift
    lengths = [3, 40, 1, 25, 60]
    rows = torch.randn(sum(lengths), hidden, generator=gen) * 6
    rows[5, 7] = 40.0  # an outlier widens the int8 step: the bound must still hold
    screened = VocabPooler(weight, bias, vocab_chunk=512, group_rows=64, screen=True)
    plain = VocabPooler(weight, bias, vocab_chunk=512, group_rows=64, screen=False)
    got, want = screened.pool(rows, lengths), plain.pool(rows, lengths)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)  # float32 summation order only
    assert int((want > 0).sum()) > 0
    np.testing.assert_array_equal((got > 0).numpy(), (want > 0).numpy())


def test_int8_screen_on_near_zero_columns() -> None:
    """Columns whose max sits just above or below 0 are where a loose bound would go wrong."""
    gen = torch.Generator().manual_seed(7)
    weight = torch.randn(300, 16, generator=gen)
    rows = torch.randn(10, 16, generator=gen)
    exact_max = (rows @ weight.T).amax(dim=0)
    offsets = torch.linspace(-1e-3, 1e-3, 300)
    bias = -exact_max + offsets  # every column's true max equals its offset
    screened = VocabPooler(weight, bias, screen=True).pool(rows, [10])
    plain = VocabPooler(weight, bias, screen=False).pool(rows, [10])
    torch.testing.assert_close(screened, plain, atol=1e-6, rtol=0)


def test_screen_is_refused_for_sum_pooling_and_off_by_default_there() -> None:
    with pytest.raises(ValueError, match="only for max pooling"):
        VocabPooler(torch.ones(4, 2), None, pooling="sum", screen=True)
    assert not VocabPooler(torch.ones(4, 2), None, pooling="sum").screen
    assert VocabPooler(torch.ones(4, 2), None).screen  # CPU float32 max pooling
