"""Settings precedence (flag > SPLADEBRIDGE_* > TOML > default), type conversion, and secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from spladebridge.config import ConfigError, resolve


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    (tmp_path / "spladebridge.toml").write_text('index = "file"\nbatch_size = 8\nurl = "qdrant://db:6333"\n')
    env = {"SPLADEBRIDGE_INDEX": "env", "SPLADEBRIDGE_BATCH_SIZE": "16"}
    s = resolve({"index": "flag"}, environ=env, cwd=tmp_path)
    assert s["index"] == "flag" and s.sources["index"] == "flag"
    assert s["batch_size"] == 16 and s.sources["batch_size"] == "env SPLADEBRIDGE_BATCH_SIZE"
    assert s["url"] == "qdrant://db:6333" and s.sources["url"].startswith("file ")
    assert s["max_retries"] == 3 and s.sources["max_retries"] == "default"
    assert s.config_file == tmp_path / "spladebridge.toml"


def test_config_file_from_flag_or_environment_must_exist(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("dense = false\ntext_fields = ['body']\n")
    s = resolve({}, environ={"SPLADEBRIDGE_CONFIG": str(other)}, cwd=tmp_path)
    assert s["dense"] is False and s["text_fields"] == ["body"]
    with pytest.raises(ConfigError, match="config file not found"):
        resolve({}, config_file=str(tmp_path / "nope.toml"), environ={}, cwd=tmp_path)
    assert resolve({}, environ={}, cwd=tmp_path).config_file is None  # no default file: fine


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPLADEBRIDGE_BATCH_SIZE": "many"}, "SPLADEBRIDGE_BATCH_SIZE: expected an integer"),
        ({"SPLADEBRIDGE_DENSE": "maybe"}, "SPLADEBRIDGE_DENSE: expected true or false"),
        ({"SPLADEBRIDGE_TIMEOUT": "soon"}, "SPLADEBRIDGE_TIMEOUT: expected a number"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve({}, environ=env, cwd=tmp_path)


def test_bad_file_values_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "spladebridge.toml"
    path.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*'colour'"):
        resolve({}, environ={}, cwd=tmp_path)
    path.write_text("batch_size = 'eight'\n")
    with pytest.raises(ConfigError, match="batch_size: expected an integer, got 'eight'"):
        resolve({}, environ={}, cwd=tmp_path)
    path.write_text("text_fields = [1, 2]\n")
    with pytest.raises(ConfigError, match="expected a list of strings"):
        resolve({}, environ={}, cwd=tmp_path)
    path.write_text("index = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve({}, environ={}, cwd=tmp_path)


def test_environment_lists_and_secrets_are_masked(tmp_path: Path) -> None:
    env = {"SPLADEBRIDGE_TEXT_FIELDS": "title, abstract", "SPLADEBRIDGE_PASSWORD": "hunter2"}
    s = resolve({"api_key": "k3y"}, environ=env, cwd=tmp_path)
    assert s["text_fields"] == ["title", "abstract"]
    described = "\n".join(s.describe())
    assert "hunter2" not in described and "k3y" not in described
    assert "password = ***  (env SPLADEBRIDGE_PASSWORD)" in described


def test_dense_precision_reaches_the_dense_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--dense-precision` (or SPLADEBRIDGE_DENSE_PRECISION) is passed to DenseEncoder; bad values are refused."""
    from spladebridge import cli
    from spladebridge.encoder import dense as dense_module

    seen: list[object] = []

    class Recorder:
        def __init__(self, model: object, *, device: object = None, precision: object = None) -> None:
            seen.append(precision)

    monkeypatch.setattr(dense_module, "DenseEncoder", Recorder)
    cli._dense_encoder(resolve({"dense_precision": "fast"}))
    monkeypatch.setenv("SPLADEBRIDGE_DENSE_PRECISION", "exact")
    cli._dense_encoder(resolve({}))
    assert seen == ["fast", "exact"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["index", "docs.jsonl", "--dense-precision", "quick"])
