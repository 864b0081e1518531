"""The migration checkpoint: where the source scan stopped (cursor), running counts, the verification sample.

Saved as JSON after every written batch: a temporary file in the same folder, fsynced, then `os.replace`d,
so a kill leaves the old or the new checkpoint, never half of one. The cursor is whatever the source needs
to continue (a position for files and connector scans; PIT id and `search_after` sort values for
Elasticsearch / OpenSearch). `phase` moves copy -> copied -> verified -> finished; a finished checkpoint makes
a re-run a no-op. A live migration goes copy -> copied -> catch-up -> frozen -> finished instead, and keeps in
`live` how many catch-up passes ran and when the freeze began (its document versions are in a file beside
the checkpoint, `spladebridge.migrate.versions`), so a run killed during the catch-up or the freeze resumes
there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from ..atomic import write_json_atomic

__all__ = ["STATE_KIND", "STATE_VERSION", "MigrationState", "Phase", "StateError", "write_json_atomic"]

STATE_VERSION = 1
STATE_KIND = "spladebridge-migration"
Phase: TypeAlias = Literal["copy", "copied", "verified", "catch-up", "frozen", "finished"]
_PHASES: tuple[Phase, ...] = ("copy", "copied", "verified", "catch-up", "frozen", "finished")


class StateError(ValueError):
    """A checkpoint that cannot be used: unreadable, another format, or written for another migration."""


@dataclass(slots=True)
class MigrationState:
    """Everything a resumed or repeated run needs: identity, cursor, counts, sample, phase."""

    path: Path | None
    identity: dict[str, Any]
    cursor: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)
    phase: Phase = "copy"
    runs: int = 0
    finalized: list[str] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase == "finished"

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None, identity: Mapping[str, Any], *, restart: bool = False
    ) -> tuple[MigrationState, bool]:
        """The saved state for this migration (and True), or a fresh one (and False).

        Raises `StateError` when the file is unreadable or was written for another source / target /
        settings (unless `restart`).
        """
        fresh = cls(path=Path(path) if path is not None else None, identity=dict(identity))
        if fresh.path is None or restart or not fresh.path.exists():
            return fresh, False
        file = fresh.path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateError(f"checkpoint {file} is unreadable ({exc}); delete it or restart") from None
        if (
            not isinstance(data, dict)
            or data.get("kind") != STATE_KIND
            or data.get("version") != STATE_VERSION
        ):
            raise StateError(f"{file} is not a version {STATE_VERSION} spladebridge migration checkpoint")
        if data.get("identity") != fresh.identity:
            raise StateError(
                f"checkpoint {file} belongs to another migration ({data.get('identity')!r}, now "
                f"{fresh.identity!r}); use another checkpoint file or restart"
            )
        phase = data.get("phase")
        if phase not in _PHASES:
            raise StateError(f"checkpoint {file} has an unknown phase {phase!r}")
        try:
            counts = {str(k): int(v) for k, v in dict(data.get("counts") or {}).items()}
        except (TypeError, ValueError) as exc:
            raise StateError(f"checkpoint {file} has damaged counts ({exc}); delete it or restart") from None
        cursor = data.get("cursor")
        return (
            cls(
                path=file,
                identity=fresh.identity,
                cursor=dict(cursor) if isinstance(cursor, dict) else None,
                counts=counts,
                sample=dict(data.get("sample") or {}),
                phase=phase,
                runs=int(data.get("runs", 0)),
                finalized=[str(a) for a in data.get("finalized") or []],
                live=dict(data.get("live") or {}),
            ),
            True,
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "identity": self.identity,
            "phase": self.phase,
            "cursor": self.cursor,
            "counts": self.counts,
            "sample": self.sample,
            "runs": self.runs,
            "finalized": self.finalized,
            "live": self.live,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save(self) -> None:
        """Persist atomically (no-op without a path)."""
        if self.path is not None:
            write_json_atomic(self.path, self.to_json_obj())

    def add(self, **deltas: int) -> None:
        for key, value in deltas.items():
            self.counts[key] = self.counts.get(key, 0) + value
