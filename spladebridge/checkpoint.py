"""Resumable-ingest checkpoints: which input positions are settled, saved as JSON, atomically.

A position is *settled* once its document landed in the engine (the engine acknowledged the write) or was
written to the dead-letter file; a resumed run skips settled positions without reading them into the encoder.
Positions are stored as a watermark (every position below it is settled) plus the sorted set of settled
positions above it, so the file stays small however long the input. JSON only (never pickle); written to
a temporary file, fsynced, then `os.replace`d, so a crash leaves the old or the new checkpoint, never half.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spladebridge.atomic import write_text_atomic

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "CheckpointError", "SettledPositions"]

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, another format, or written for other input."""


class SettledPositions:
    """A set of non-negative ints kept as `watermark` (all below are in) plus the members at or above it."""

    __slots__ = ("_above", "watermark")

    def __init__(self, watermark: int = 0, above: Iterable[int] = ()) -> None:
        if watermark < 0:
            raise ValueError(f"watermark must be >= 0, got {watermark}")
        self.watermark = watermark
        self._above: set[int] = {p for p in above if p >= watermark}
        self._advance()

    def _advance(self) -> None:
        while self.watermark in self._above:
            self._above.discard(self.watermark)
            self.watermark += 1

    def add(self, position: int) -> None:
        if position < self.watermark:
            return
        self._above.add(position)
        self._advance()

    def update(self, positions: Iterable[int]) -> None:
        for position in positions:
            if position >= self.watermark:
                self._above.add(position)
        self._advance()

    def __contains__(self, position: object) -> bool:
        return isinstance(position, int) and (0 <= position < self.watermark or position in self._above)

    def __len__(self) -> int:
        return self.watermark + len(self._above)

    def above(self) -> list[int]:
        """Settled positions at or above the watermark, sorted."""
        return sorted(self._above)


@dataclass(slots=True)
class Checkpoint:
    """The saved state of one ingest: the input it belongs to, the settled positions, and running totals."""

    path: Path
    source: dict[str, Any]
    target: dict[str, Any]
    settled: SettledPositions = field(default_factory=SettledPositions)
    complete: bool = False
    totals: dict[str, int] = field(default_factory=dict)
    runs: int = 0

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        source: Mapping[str, Any],
        target: Mapping[str, Any],
        *,
        restart: bool = False,
    ) -> Checkpoint:
        """Load the checkpoint at `path` for this source and target, or start a fresh one.

        Raises `CheckpointError` when the file belongs to another input or index (unless `restart`).
        """
        file = Path(path)
        fresh = cls(path=file, source=dict(source), target=dict(target))
        try:  # here, before any work, rather than in the writer after the first batch
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"checkpoint folder {file.parent} cannot be created ({exc})") from None
        if restart or not file.exists():
            return fresh
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"checkpoint {file} is unreadable ({exc}); delete it or restart") from None
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {file} is not a version {CHECKPOINT_VERSION} spladebridge checkpoint"
            )
        if data.get("source") != fresh.source:
            raise CheckpointError(
                f"checkpoint {file} was written for another input ({_describe(data.get('source'))}, now "
                f"{_describe(fresh.source)}); delete it or restart to ingest from the beginning"
            )
        if data.get("target") != fresh.target:
            raise CheckpointError(
                f"checkpoint {file} was written for another target ({data.get('target')!r}, now "
                f"{fresh.target!r}); use another checkpoint file or restart"
            )
        try:
            settled = SettledPositions(int(data["watermark"]), (int(p) for p in data.get("above", [])))
            totals = {str(k): int(v) for k, v in dict(data.get("totals", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {file} is damaged ({exc}); delete it or restart") from None
        return cls(
            path=file,
            source=fresh.source,
            target=fresh.target,
            settled=settled,
            complete=bool(data.get("complete", False)),
            totals=totals,
            runs=int(data.get("runs", 0)),
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "source": self.source,
            "target": self.target,
            "watermark": self.settled.watermark,
            "above": self.settled.above(),
            "complete": self.complete,
            "totals": self.totals,
            "runs": self.runs,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save(self) -> None:
        """Write atomically: a temporary file in the same folder, fsync, then `os.replace`."""
        write_text_atomic(self.path, json.dumps(self.to_json_obj(), separators=(",", ":")))


def _describe(source: object) -> str:
    if isinstance(source, Mapping) and source.get("kind") == "file":
        return f"{source.get('path')}, {source.get('size')} bytes"
    return repr(source)
