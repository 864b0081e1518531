"""The README's "Beyond one machine" PySpark example runs as written (in a fresh Python with the project's
virtual environment first on PATH, as an activated venv has it), writes both documents and finds the right one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def spark_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- SPARK-EXAMPLE[^>]*-->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README has no marked Spark example block"
    return match.group(1)


def test_spark_example_is_about_ten_lines() -> None:
    lines = [line for line in spark_example().splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) <= 12  # imports included


def test_spark_example_runs_and_finds_the_bike_document(tmp_path: Path) -> None:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "JAVA_HOME": os.environ.get("JAVA_HOME", ""),
    }
    proc = subprocess.run(
        [sys.executable, "-c", spark_example()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in env.items() if v},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("wrote 2 documents to docs from the driver"), proc.stdout
    assert "failed 0" in lines[0]
    assert lines[-1] == "a", proc.stdout
    assert (tmp_path / "spark-index" / "docs").is_dir()
