"""The one index-name rule, checked before a name reaches a URL path or a folder, so the error says which rule.

Every engine: not empty, not `.` / `..`, none of `\\/*?"<>| ,#:` (path separators, wildcards, and the
separators that make one name mean several indices), at most 255 bytes. Elasticsearch and OpenSearch also
want lowercase and no leading `-`, `_` or `+`; Qdrant collection names may hold upper case.
"""

from __future__ import annotations

import re

__all__ = ["check_index_name"]

_BAD = re.compile(r'[\\/*?"<>| ,#:]')


def check_index_name(name: str, *, lucene: bool = True) -> str:
    """`name` when it is a usable index name (`lucene`: for Elasticsearch / OpenSearch); ValueError saying
    which rule it breaks otherwise."""
    why = _problem(name, lucene)
    if why is not None:
        raise ValueError(f"index name {name!r} is not usable: {why}")
    return name


def _problem(name: str, lucene: bool) -> str | None:
    if not isinstance(name, str) or not name or name in (".", ".."):
        return "it is empty or '.'/'..'"
    bad = _BAD.search(name)
    if bad:
        return f'it has the character {bad.group()!r} (none of \\/*?"<>| ,#:)'
    if lucene:
        upper = next((c for c in name if c != c.lower()), None)
        if upper is not None:
            return (
                f"it has the upper-case character {upper!r} (Elasticsearch / OpenSearch names are lowercase)"
            )
        if name[0] in "-_+":
            return "it must not start with '-', '_' or '+'"
    if len(name.encode("utf-8")) > 255:
        return "it is longer than 255 bytes"
    return None
