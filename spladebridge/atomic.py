"""Atomic file writes: a temporary file in the same folder, fsynced, then `os.replace`d over the target.

A crash leaves the old file or the new one, never half of one. Used for the ingest and migration checkpoints
and the Qdrant Edge spec file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_json_atomic", "write_text_atomic"]


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (temporary file in the same folder, fsync, `os.replace`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as compact JSON (UTF-8, values JSON cannot hold as `str`) to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str))
