"""The `--dry-run` estimate of a live migration's freeze, from rates measured on the source now.

Measured: the id/version scan (one full scan, timed: its rate in documents/s), the application's write rate
(growth of the source's index + delete counter over `window_s`), and the encode rate (`plan_migration`'s).
A catch-up pass that finds `d` changed documents lasts `scan + d / encode`, and during it `rate x` that many
seconds of writes arrive; the passes converge on the fixed point

    d* = rate x scan / (1 - rate / encode)            (when rate < encode; otherwise they never converge)

(reported as null when they do not), and the freeze is one more pass over the writes of the pass before it, plus the block, swap and lift calls:

    freeze = overhead + scan + d* / encode
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from .lucene_cluster import LuceneIndexSource

__all__ = ["FreezeEstimate", "estimate_freeze"]

#: The block, refresh, swap and lift calls of a freeze on a local node (measured: about 0.1 to 0.3 s).
OVERHEAD_S = 0.3


@dataclass(slots=True)
class FreezeEstimate:
    """The measured rates and the expected last delta and freeze window."""

    documents: int
    scan_s: float
    write_rate_per_s: float
    encode_docs_per_s: float
    window_s: float
    expected_last_delta: float | None
    expected_freeze_s: float | None
    converges: bool
    formula: str = (
        "last delta = write rate x scan / (1 - write rate / encode rate); "
        f"freeze = {OVERHEAD_S} s + scan + last delta / encode rate"
    )

    def to_json_obj(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if not self.converges or self.expected_freeze_s is None:
            return (
                f"expected freeze: unbounded: the source takes {self.write_rate_per_s:.1f} writes/s, more than "
                f"the {self.encode_docs_per_s:.1f} docs/s encoded; the catch-up cannot converge"
            )
        return (
            f"expected freeze: {self.expected_freeze_s:.2f}s (id/version scan of {self.documents} documents "
            f"{self.scan_s:.2f}s, {self.write_rate_per_s:.1f} writes/s measured over {self.window_s:.0f}s, "
            f"last delta about {self.expected_last_delta or 0:.0f} documents at {self.encode_docs_per_s:.1f} docs/s)"
        )


def estimate_freeze(
    source: LuceneIndexSource, encode_docs_per_s: float, *, window_s: float = 3.0, scan_batch: int = 10_000
) -> FreezeEstimate:
    """Time one id/version scan and measure the write rate over at least `window_s` seconds."""
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    ops_before = source.write_operations()
    started = time.perf_counter()
    documents = len(source.scan_versions(scan_batch))
    scan_s = time.perf_counter() - started
    remaining = window_s - (time.perf_counter() - started)
    if remaining > 0:
        time.sleep(remaining)
    elapsed = time.perf_counter() - started
    rate = max(0, source.write_operations() - ops_before) / elapsed
    encode = max(encode_docs_per_s, 1e-9)
    converges = rate < encode
    delta = rate * scan_s / (1 - rate / encode) if converges else None
    freeze = OVERHEAD_S + scan_s + delta / encode if delta is not None else None
    return FreezeEstimate(
        documents=documents,
        scan_s=scan_s,
        write_rate_per_s=rate,
        encode_docs_per_s=encode_docs_per_s,
        window_s=elapsed,
        expected_last_delta=delta,
        expected_freeze_s=freeze,
        converges=converges,
    )
