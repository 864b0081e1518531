"""Change capture: which source documents changed since the target got them, from per-document versions.

Every write of a document gives it a new `(seq_no, primary_term)`, read without `_source` by a scan of ids
and versions. A document is *changed* when its version differs from the one the target holds (new ones have
none), *deleted* when the target holds a version and the scan does not find the id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from spladebridge.connectors.lucene_client import DocVersion

__all__ = ["Delta", "PassReport", "diff_versions"]


@dataclass(slots=True)
class Delta:
    """Ids to re-encode (new or rewritten since the target got them) and ids to delete from the target."""

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.changed) + len(self.deleted)


def diff_versions(known: Mapping[str, DocVersion], current: Mapping[str, DocVersion]) -> Delta:
    """What to do so that the target matches `current` (the source's ids and versions now)."""
    changed = [doc_id for doc_id, version in current.items() if known.get(doc_id) != version]
    deleted = [doc_id for doc_id in known if doc_id not in current]
    return Delta(changed=changed, deleted=deleted)


@dataclass(slots=True)
class PassReport:
    """One catch-up pass: documents scanned, the delta found and applied, and where the time went."""

    number: int
    frozen: bool
    scanned: int = 0
    changed: int = 0
    deleted: int = 0
    written: int = 0
    failed: int = 0
    conflicts: int = 0
    scan_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0
    seconds: float = 0.0

    @property
    def delta(self) -> int:
        return self.changed + self.deleted

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["delta"] = self.delta
        return out
