"""Opening the evaluation engine from `--engine`, and labelling it without leaking credentials."""

from __future__ import annotations

from pathlib import Path

from spladebridge.connectors.base import IndexSpec
from spladebridge.evaluation.engine import describe_engine, open_engine


def test_describe_engine_hides_credentials() -> None:
    assert describe_engine(None) == "qdrant-edge"
    assert describe_engine("edge") == "qdrant-edge"
    assert describe_engine("qdrant-edge:///tmp/x") == "qdrant-edge"
    assert describe_engine("https://elastic:s3cret@es.example:9200/path") == "https://es.example:9200"


def test_default_edge_index_lives_under_the_cache(tmp_path: Path) -> None:
    spec = IndexSpec(name="eval-test", dense_field=None)
    connector = open_engine("edge", spec, tmp_path)
    try:
        assert connector.count() == 0
        assert (tmp_path / "index" / "eval-test").is_dir()
    finally:
        connector.close()


def test_engine_url_goes_through_connect(tmp_path: Path) -> None:
    spec = IndexSpec(name="eval-url", dense_field=None)
    connector = open_engine(f"qdrant-edge://{tmp_path / 'edge'}", spec, tmp_path / "unused")
    try:
        assert connector.spec is not None and connector.spec.name == "eval-url"
        assert (tmp_path / "edge" / "eval-url").is_dir()
        assert not (tmp_path / "unused").exists()
    finally:
        connector.close()
