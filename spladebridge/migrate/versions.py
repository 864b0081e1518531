"""What the target holds of each source document: its `(seq_no, primary_term)`, kept through a kill.

A live migration compares these versions with a later scan of the source to find what changed meanwhile.
The map is too large to go into the checkpoint after every batch (100,000 documents are a few MB of JSON),
so it is kept beside it as a snapshot plus an append-only log: every written batch appends one JSON line
(versions set, ids dropped), flushed and fsynced before the checkpoint moves on; `compact()` folds the log into
a new snapshot (written atomically) at the end of each catch-up pass. A kill leaves at most a torn last line,
which `load` skips: that batch's documents then look changed and are re-encoded, never lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from spladebridge.atomic import write_json_atomic
from spladebridge.connectors.lucene_client import DocVersion

__all__ = ["KnownVersions", "VersionsError"]

_KIND = "spladebridge-migration-versions"


class VersionsError(ValueError):
    """A versions file that cannot be used (another format, a damaged line before the last)."""


def _version(value: Any, where: str) -> DocVersion:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise VersionsError(f"{where}: expected [seq_no, primary_term], got {value!r}")


class KnownVersions:
    """Lucene id -> version of the source document the target holds (in memory; `path` keeps it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.versions: dict[str, DocVersion] = {}
        self._log: IO[str] | None = None

    @property
    def log_path(self) -> Path | None:
        return self.path.with_name(self.path.name + ".log") if self.path is not None else None

    def load(self) -> KnownVersions:
        """Read the snapshot, then replay the log (a torn last line, from a kill, is skipped)."""
        self.versions = {}
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise VersionsError(f"{self.path} is unreadable ({exc}); restart the migration") from None
            if not isinstance(data, dict) or data.get("kind") != _KIND:
                raise VersionsError(f"{self.path} is not a spladebridge migration versions file")
            raw = data.get("versions") or {}
            self.versions = {str(k): _version(v, f"{self.path} id {k!r}") for k, v in raw.items()}
        log_path = self.log_path
        if log_path is not None and log_path.exists():
            lines = log_path.read_text(encoding="utf-8").splitlines()
            for n, line in enumerate(lines, start=1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    if n == len(lines):
                        break  # torn by a kill mid-append: its batch is simply done again
                    raise VersionsError(f"{log_path} line {n} is damaged; restart the migration") from None
                self._apply(entry.get("set") or {}, entry.get("drop") or [], f"{log_path} line {n}")
        return self

    def _apply(self, updates: Mapping[str, Any], drops: Iterable[str], where: str) -> None:
        for doc_id, value in updates.items():
            self.versions[str(doc_id)] = value if isinstance(value, tuple) else _version(value, where)
        for doc_id in drops:
            self.versions.pop(str(doc_id), None)

    def get(self, doc_id: str) -> DocVersion | None:
        return self.versions.get(doc_id)

    def __len__(self) -> int:
        return len(self.versions)

    def record(self, updates: Mapping[str, DocVersion], drops: Iterable[str] = ()) -> None:
        """Set and drop entries, and append them to the log durably (before the checkpoint moves on)."""
        dropped = [str(d) for d in drops]
        if not updates and not dropped:
            return
        self._apply(updates, dropped, "record")
        if self.path is None:
            return
        if self._log is None:
            log_path = self.log_path
            assert log_path is not None
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = log_path.open("a", encoding="utf-8")
        line = {"set": {k: list(v) for k, v in updates.items()}, "drop": dropped}
        self._log.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._log.flush()
        os.fsync(self._log.fileno())

    def compact(self) -> None:
        """Fold the log into a new snapshot (atomic), then empty the log."""
        if self.path is None:
            return
        write_json_atomic(
            self.path, {"kind": _KIND, "versions": {k: list(v) for k, v in self.versions.items()}}
        )
        self.close()
        log_path = self.log_path
        assert log_path is not None
        log_path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the files (a finished migration needs them no more)."""
        self.close()
        for file in (self.path, self.log_path):
            if file is not None:
                file.unlink(missing_ok=True)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
