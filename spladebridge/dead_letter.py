"""The dead-letter file: one JSON line per item that could not be ingested, with where, why and what was read.

Each line keeps the original record under `"record"` (or the raw line text when it was not valid JSON), so
the file can be fixed and ingested again. The file is opened lazily (a clean run leaves no empty file) and
appended to, so that a resumed run adds only its own failures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = ["DeadLetterFile"]


class DeadLetterFile:
    """Appends failures as JSON lines; `sync()` makes them durable before a checkpoint marks them done."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.count = 0
        self._handle: IO[str] | None = None

    def write(self, entry: dict[str, Any]) -> None:
        """Append one entry (a `"time"` field is added)."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        stamped = {**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        line = json.dumps(stamped, ensure_ascii=False, default=str)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: keep it as a \udXXX escape rather than fail the run
            line = json.dumps(stamped, ensure_ascii=True, default=str)
        self._handle.write(line + "\n")
        self.count += 1

    def sync(self) -> None:
        """Flush and fsync what was written so far (no-op when nothing was)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
