"""The one parser of engine version strings ("8.19.3", "3.6.0-SNAPSHOT", "v1.15.1"), for every connector."""

from __future__ import annotations

import re

__all__ = ["parse_version"]

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(text: str | None) -> tuple[int, int, int]:
    """`(major, minor, patch)` of a version string (missing parts are 0; suffixes such as `-SNAPSHOT` are
    ignored). ValueError when the string does not start with a number."""
    match = _VERSION.match((text or "").strip())
    if match is None:
        raise ValueError(f"cannot read a version from {text!r}")
    return int(match[1]), int(match[2] or 0), int(match[3] or 0)
