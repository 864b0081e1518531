"""Linear layers through oneDNN with weights packed once: the CPU matrix multiplies at the hardware's speed.

PyTorch's CPU float32 `nn.Linear` calls MKL's sgemm, which takes its AVX2 code path on non-Intel CPUs (on the
AMD EPYC machines here: about 105 GFLOP/s a core, where oneDNN's AVX-512 kernels reach about 245). oneDNN is
inside every PyTorch build; its linear op with a weight reordered once into the kernel's blocked layout is
the one `torch.compile` (inductor) itself emits on CPU. The result is the same float32 product, summed in
another order (differences of a few 1e-6). `use_onednn_linears` swaps the layers in place and falls back
to plain `nn.Linear` wherever the op is missing or disagrees with it on a probe. In BERT-style feed-forward
blocks (a `dense` layer then an exact-erf GELU), the GELU runs inside the matrix multiply as oneDNN's post-op,
which saves one pass over the widest activations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

__all__ = ["OneDnnLinear", "onednn_linear_available", "use_onednn_linears"]

logger = logging.getLogger(__name__)
_PROBE_TOLERANCE = 1e-4


def onednn_linear_available() -> bool:
    """Whether this PyTorch build has oneDNN's packed-weight linear ops."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class OneDnnLinear(torch.nn.Module):
    """Inference-only drop-in for a CPU `nn.Linear`: same inputs and outputs, weight packed for oneDNN."""

    def __init__(self, linear: torch.nn.Linear, activation: str = "none") -> None:
        super().__init__()
        if activation not in ("none", "gelu"):
            raise ValueError(f"activation must be 'none' or 'gelu', got {activation!r}")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.activation = activation
        weight = linear.weight.detach()
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(weight, None))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GELU post-op algorithm "none" is the exact erf form (BERT's), "tanh" the approximation
        algorithm = "none" if self.activation == "gelu" else ""
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.packed_weight, self.bias, self.activation, [], algorithm
        )
        return out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, activation={self.activation}"
        )


def _agrees(
    linear: torch.nn.Linear, packed: OneDnnLinear, activation: Callable[[torch.Tensor], torch.Tensor]
) -> bool:
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(3, 5, linear.in_features, generator=generator).to(linear.weight.dtype)
    with torch.inference_mode():
        expected = activation(linear(probe)).float()
        got = packed(probe).float()
    scale = float(expected.abs().max().clamp(min=1.0))
    tolerance = _PROBE_TOLERANCE if linear.weight.dtype == torch.float32 else 2e-2
    return got.shape == expected.shape and float((got - expected).abs().max()) <= tolerance * scale


def _is_exact_gelu(module: torch.nn.Module) -> bool:
    """transformers' `GELUActivation` running `torch.nn.functional.gelu` (erf), or `nn.GELU()` (erf)."""
    if isinstance(module, torch.nn.GELU):
        return module.approximate == "none"
    return (
        type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is torch.nn.functional.gelu
    )


def _eligible(module: torch.nn.Module) -> bool:
    return (
        type(module) is torch.nn.Linear
        and module.weight.device.type == "cpu"
        and module.weight.dtype in (torch.float32, torch.bfloat16)
    )


def use_onednn_linears(model: torch.nn.Module) -> int:
    """Replace every float32 / bfloat16 CPU `nn.Linear` in `model` (in place) by a `OneDnnLinear`, folding
    the GELU of BERT-style feed-forward blocks (`dense` + `intermediate_act_fn`) into the multiply.

    Returns how many were replaced: 0 where oneDNN's ops are missing or a probe disagrees (the model is then
    left exactly as it was). For inference only: packed weights carry no gradient.
    """
    if not onednn_linear_available():
        return 0
    fused: set[int] = set()
    plan: list[tuple[torch.nn.Module, str, torch.nn.Linear, str]] = []
    for parent in model.modules():
        dense, act = getattr(parent, "dense", None), getattr(parent, "intermediate_act_fn", None)
        if (
            isinstance(dense, torch.nn.Linear)
            and _eligible(dense)
            and isinstance(act, torch.nn.Module)
            and _is_exact_gelu(act)
        ):
            plan.append((parent, "dense", dense, "gelu"))
            fused.add(id(dense))
    for parent in model.modules():
        for name, child in parent.named_children():
            if _eligible(child) and id(child) not in fused:
                plan.append((parent, name, child, "none"))  # type: ignore[arg-type]
    replacements: list[tuple[torch.nn.Module, str, OneDnnLinear]] = []
    for parent, name, child, activation in plan:
        reference = torch.nn.functional.gelu if activation == "gelu" else torch.nn.Identity()
        try:
            packed = OneDnnLinear(child, activation)
            ok = _agrees(child, packed, reference)
        except RuntimeError as exc:  # an op this build or CPU cannot run
            logger.debug("oneDNN linear unavailable (%s); keeping nn.Linear", exc)
            return 0
        if not ok:
            logger.warning("oneDNN linear disagrees with nn.Linear on a probe; keeping nn.Linear")
            return 0
        replacements.append((parent, name, packed))
    for parent, name, packed in replacements:
        setattr(parent, name, packed)
        if packed.activation == "gelu":
            parent.intermediate_act_fn = torch.nn.Identity()
    return len(replacements)
