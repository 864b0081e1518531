"""oneDNN packed-weight linears: the same products as `nn.Linear` (float32 and bf16, GELU folded in), and a
model left untouched wherever the op is missing or disagrees."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from spladebridge.encoder import onednn_linear
from spladebridge.encoder.onednn_linear import OneDnnLinear, onednn_linear_available, use_onednn_linears

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="this torch build has no oneDNN linear")


def _linear(dtype: torch.dtype = torch.float32) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(48, 80).to(dtype)


@pytest.mark.parametrize("shape", [(7, 48), (3, 11, 48), (1, 1, 48)])
def test_float32_products_match_nn_linear(shape: tuple[int, ...]) -> None:
    linear = _linear()
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected, got = linear(x), OneDnnLinear(linear)(x)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gelu_post_op_is_the_exact_erf_gelu() -> None:
    linear = _linear()
    x = torch.randn(5, 9, 48) * 3
    with torch.inference_mode():
        expected = torch.nn.functional.gelu(linear(x))
        tanh = torch.nn.functional.gelu(linear(x), approximate="tanh")
        got = OneDnnLinear(linear, "gelu")(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert float((tanh - expected).abs().max()) > 1e-5  # the check can tell the two forms apart
    with pytest.raises(ValueError, match="activation"):
        OneDnnLinear(linear, "relu")


def test_bfloat16_products_match_nn_linear_in_bfloat16() -> None:
    linear = _linear(torch.bfloat16)
    x = torch.randn(6, 48).to(torch.bfloat16)
    with torch.inference_mode():
        expected, got = linear(x).float(), OneDnnLinear(linear)(x).float()
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)


def _tiny_bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    return BertModel(config).eval()


def test_a_bert_model_gives_the_same_outputs_with_gelu_folded() -> None:
    model = _tiny_bert()
    ids = torch.randint(0, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.inference_mode():
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert use_onednn_linears(model) == linears
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    intermediate = model.encoder.layer[0].intermediate
    assert isinstance(intermediate.intermediate_act_fn, torch.nn.Identity)
    assert isinstance(intermediate.dense, OneDnnLinear) and intermediate.dense.activation == "gelu"
    with torch.inference_mode():
        after = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_nothing_is_replaced_when_the_op_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny_bert()
    monkeypatch.setattr(onednn_linear, "onednn_linear_available", lambda: False)
    assert use_onednn_linears(model) == 0
    assert not any(isinstance(m, OneDnnLinear) for m in model.modules())


def test_nothing_is_replaced_when_a_probe_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny_bert()
    calls: list[int] = []

    def disagree_on_the_third(*args: object) -> bool:
        calls.append(1)
        return len(calls) != 3

    monkeypatch.setattr(onednn_linear, "_agrees", disagree_on_the_third)
    assert use_onednn_linears(model) == 0
    assert not any(isinstance(m, OneDnnLinear) for m in model.modules())
    assert not any(isinstance(m, torch.nn.Identity) for m in model.modules())  # no GELU removed either
