"""The README's ten-line example runs as written, and finds the right document."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- README-EXAMPLE[^>]*-->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README has no marked example block"
    return match.group(1)


def test_readme_example_is_at_most_ten_lines_of_code() -> None:
    code_lines = [line for line in readme_example().splitlines() if line.strip() and not line.startswith("#")]
    assert len(code_lines) <= 11  # ten lines plus the closing `store.close()`


def test_readme_example_runs_and_ranks_the_bike_document_first(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", readme_example()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.split() for line in proc.stdout.strip().splitlines()]
    assert [line[:2] for line in lines] == [["1", "a"], ["2", "b"]], proc.stdout
    assert (tmp_path / "my-index").is_dir()
