"""benchmarks/eval_all.py helpers: the README section is replaced in place, targets are judged right."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_all.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_all_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_section_is_replaced_and_other_sections_kept(script: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Benchmarks\n\n## Encoder\n\nenc numbers\n\n## Retrieval quality\n\n"
        f"{script.BEGIN}\nold\n{script.END}\n\n## Latency\n\nlat numbers\n"
    )
    script.update_readme(readme, "new table")
    text = readme.read_text()
    assert "old" not in text and f"{script.BEGIN}\nnew table\n{script.END}" in text
    assert "enc numbers" in text and "lat numbers" in text
    assert text.index("## Encoder") < text.index("new table") < text.index("## Latency")


def test_readme_section_is_added_when_missing(script: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## Encoder\n\nenc\n")
    script.update_readme(readme, "body")
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\n## Encoder\n\nenc\n")
    assert text.endswith(f"## Retrieval quality\n\n{script.BEGIN}\nbody\n{script.END}\n")


def test_targets(script: ModuleType) -> None:
    summary = {
        "scifact": {
            "bm25": {"ndcg@10": 0.676},
            "hybrid_rrf": {"ndcg@10": 0.70},
            "hybrid_wsum": {"ndcg@10": 0.73},
        },
        "nfcorpus": {"bm25": {"ndcg@10": 0.30}},
        "cisi": {"bm25": {"ndcg@10": 0.3}},
    }
    rows = {(r["dataset"], r["target"].split()[0]): r["met"] for r in script.targets(summary)}
    assert rows == {
        ("scifact", "hybrid_rrf"): False,
        ("scifact", "hybrid_wsum"): True,
        ("scifact", "bm25"): True,
        ("nfcorpus", "bm25"): False,
    }
