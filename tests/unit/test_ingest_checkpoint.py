"""Checkpoints: the settled-position set, atomic JSON saves, and refusing a checkpoint that does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.checkpoint import Checkpoint, CheckpointError, SettledPositions


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300))
def test_settled_positions_behave_like_a_set(positions: list[int]) -> None:
    settled = SettledPositions()
    for p in positions:
        settled.add(p)
    expected = set(positions)
    assert len(settled) == len(expected)
    assert all((p in settled) == (p in expected) for p in range(-1, 205))
    first_missing = next(i for i in range(len(expected) + 1) if i not in expected)
    assert settled.watermark == first_missing
    assert all(p > settled.watermark for p in settled.above())
    # round trip through its stored form
    again = SettledPositions(settled.watermark, settled.above())
    assert len(again) == len(settled) and again.above() == settled.above()


def test_save_is_atomic_json_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ckpt.json"
    ckpt = Checkpoint.open(path, {"kind": "file", "path": "/x", "size": 1}, {"index": "i"})
    ckpt.settled.update([0, 1, 2, 5, 7])
    ckpt.totals = {"written": 5}
    ckpt.save()
    data = json.loads(path.read_text())
    assert data["watermark"] == 3 and data["above"] == [5, 7] and data["version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.json"]  # no temporary file left behind
    again = Checkpoint.open(path, {"kind": "file", "path": "/x", "size": 1}, {"index": "i"})
    assert 5 in again.settled and 4 not in again.settled and again.totals == {"written": 5}


def test_mismatched_or_damaged_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.json"
    Checkpoint.open(path, {"kind": "iterable"}, {"index": "a"}).save()
    with pytest.raises(CheckpointError, match="another input"):
        Checkpoint.open(path, {"kind": "file", "path": "/y"}, {"index": "a"})
    with pytest.raises(CheckpointError, match="another target"):
        Checkpoint.open(path, {"kind": "iterable"}, {"index": "b"})
    assert len(Checkpoint.open(path, {"kind": "iterable"}, {"index": "b"}, restart=True).settled) == 0
    path.write_text("{truncated")
    with pytest.raises(CheckpointError, match="unreadable"):
        Checkpoint.open(path, {"kind": "iterable"}, {"index": "a"})
    path.write_text(
        '{"version": 1, "source": {"kind": "iterable"}, "target": {"index": "a"}, "watermark": "x"}'
    )
    with pytest.raises(CheckpointError, match="damaged"):
        Checkpoint.open(path, {"kind": "iterable"}, {"index": "a"})
