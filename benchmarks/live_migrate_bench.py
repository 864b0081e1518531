"""The freeze of a live migration (issue 19): a BM25 index of `--docs` documents taking `--rate` writes/s is
migrated by reindex + alias swap while the writes go on; the freeze window and the delta of every pass are
measured, along with what the writer saw (the time from its first refused write to its retried write landing
through the alias in the new index).

The source is filled with short synthetic texts (12 words from a 400-word vocabulary, a `year` field) by
bulk. The encoder is named in the output: `splade-tiny` (default) is the real bundled SPLADE model (sparse
only, no dense model: the freeze is about the last delta, and the dense model would only slow the copy);
`hash` is a cheap stand-in (words hashed to token ids) for a quick run. The writer indexes new documents,
rewrites and partially updates existing ones and deletes others through the alias, at a steady rate, until
the write block refuses it; it then retries one write through the alias until it lands. The `--dry-run`
estimate of the freeze (`spladebridge.migrate.freeze_plan`) is measured first, under the same load.

    .venv/bin/python benchmarks/live_migrate_bench.py --url http://127.0.0.1:9200 --json
    .venv/bin/python benchmarks/live_migrate_bench.py --url http://127.0.0.1:9200 --docs 5000 --encoder hash
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from spladebridge.connectors.bulk import BulkAction, BulkConfig
from spladebridge.connectors.lucene_client import LuceneClient
from spladebridge.connectors.lucene_connector import lucene_connector
from spladebridge.migrate import migrate
from spladebridge.migrate.capture import PassReport
from spladebridge.migrate.freeze_plan import estimate_freeze
from spladebridge.migrate.live import LiveMigration, LiveOptions
from spladebridge.migrate.lucene_bodies import AddedFields
from spladebridge.migrate.lucene_cluster import LuceneIndexSource, ReindexTarget, resolve_reindex

FIELDS = ("title", "text")
PREFIX = "bench-live"


def _vocabulary(n: int = 400) -> list[str]:
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return sorted({"".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(n)})


WORDS = _vocabulary()


def _text(rng: random.Random, words: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _api(url: str) -> LuceneClient:
    from spladebridge.engines import detect_http_engine, http_settings, parse_engine_url

    target = parse_engine_url(url)
    flavour = detect_http_engine(http_settings(target, "elasticsearch"), timeout=30)
    hs = http_settings(target, flavour, timeout=120)
    if flavour == "elasticsearch":
        from spladebridge.connectors.elasticsearch import ElasticsearchConnector

        es = ElasticsearchConnector(settings=hs)
        es.node  # noqa: B018  (pins the compatible-with media type)
        return es.cluster
    from spladebridge.connectors.opensearch import OpenSearchConnector

    return OpenSearchConnector(settings=hs).cluster


def _fill(api: LuceneClient, index: str, docs: int) -> float:
    """A BM25 index of `docs` short synthetic documents behind the alias; seconds it took."""
    started = time.perf_counter()
    for name in api.client.indices.get(index=f"{PREFIX}*", allow_no_indices=True):
        api.delete_index(name)
    body = {
        "settings": {"index": {"number_of_shards": 2, "number_of_replicas": 0, "refresh_interval": "1s"}},
        "mappings": {
            "properties": {"title": {"type": "text"}, "text": {"type": "text"}, "year": {"type": "integer"}}
        },
    }
    api.create_index(index, body)
    rng = random.Random(2)

    def actions() -> Any:
        for i in range(docs):
            source = {"title": _text(rng, 4), "text": _text(rng), "year": 1900 + i % 200}
            yield BulkAction("index", index, f"d{i}", source)

    report = api.bulk(actions(), BulkConfig(chunk_size=5000, max_chunk_bytes=20 * 1024 * 1024))
    if not report.ok:
        raise SystemExit(f"filling {index}: {report.failed} documents failed")
    api.update_aliases({"actions": [{"add": {"index": index, "alias": PREFIX}}]})
    api.refresh(index)
    return time.perf_counter() - started


class Writer(threading.Thread):
    """Steady writes through the alias (index / rewrite / partial update / delete) until the block."""

    def __init__(self, api: LuceneClient, docs: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = api.client
        self.rate = rate
        self.rng = random.Random(3)
        self.next_id = docs
        self.live_ids = docs
        self.ops = 0
        self.started_at = 0.0
        self.first_refused: float | None = None
        self.landed: float | None = None
        self.refused = 0
        self.stop = threading.Event()
        self.error: str | None = None

    def _blocked(self, exc: BaseException) -> bool:
        return getattr(exc, "status_code", None) == 403 and "cluster_block_exception" in str(exc)

    def _op(self) -> None:
        kind = self.rng.choices(["index", "rewrite", "update", "delete"], [3, 3, 2, 2])[0]
        target = f"d{self.rng.randrange(self.next_id)}"
        if kind == "index":
            target = f"d{self.next_id}"
            self.next_id += 1
        try:
            if kind in ("index", "rewrite"):
                body = {"title": _text(self.rng, 4), "text": _text(self.rng), "year": 2100}
                self.client.index(index=PREFIX, id=target, body=body)
            elif kind == "update":
                self.client.update(index=PREFIX, id=target, body={"doc": {"text": _text(self.rng)}})
            else:
                self.client.delete(index=PREFIX, id=target)
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404:
                raise

    def run(self) -> None:
        self.started_at = time.perf_counter()
        interval = 1.0 / self.rate
        next_at = self.started_at
        try:
            while not self.stop.is_set():
                try:
                    self._op()
                    self.ops += 1
                except Exception as exc:
                    if not self._blocked(exc):
                        raise
                    self.refused += 1
                    self.first_refused = time.perf_counter()
                    self._retry()
                    return
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _retry(self) -> None:
        """What the README tells writers: back off briefly and retry through the alias."""
        body = {"title": "after the swap", "text": "retried through the alias", "year": 1}
        while not self.stop.is_set():
            try:
                self.client.index(index=PREFIX, id="retried-write", body=body)
                self.landed = time.perf_counter()
                return
            except Exception as exc:
                if not self._blocked(exc):
                    raise
                self.refused += 1
                time.sleep(0.05)

    def achieved_rate(self) -> float:
        end = self.first_refused or time.perf_counter()
        return self.ops / max(end - self.started_at, 1e-9)


def _encoder(name: str) -> Any:
    if name == "hash":
        import hashlib

        from spladebridge.encoder.sparse_vector import SparseVector

        class HashEncoder:
            """A stand-in: each word hashed to one of 30,522 token ids, weight 1."""

            def encode_documents(self, texts: Any) -> list[SparseVector]:
                out = []
                for text in texts:
                    ids = {
                        int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "big") % 30522
                        for w in text.split()
                    }
                    out.append(SparseVector.from_dict(dict.fromkeys(ids, 1.0)))
                return out

            def encode_queries(self, texts: Any) -> list[SparseVector]:
                return self.encode_documents(texts)

        return HashEncoder()
    import spladebridge as sb

    return sb.SpladeEncoder()


def _encode_rate(encoder: Any, n: int = 512) -> float:
    rng = random.Random(4)
    texts = [f"{_text(rng, 4)}\n{_text(rng)}" for _ in range(n)]
    encoder.encode_documents(texts[:8])
    started = time.perf_counter()
    for i in range(0, n, 128):
        encoder.encode_documents(texts[i : i + 128])
    return n / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=50.0, help="application writes per second")
    parser.add_argument("--encoder", choices=("splade-tiny", "hash"), default="splade-tiny")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--freeze-at", type=int, default=1000)
    parser.add_argument(
        "--node", default="", help="a label for the node in the output (e.g. opensearch-2.19)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    api = _api(args.url)
    engine = api.dialect
    old = f"{PREFIX}-1"
    fill_s = _fill(api, old, args.docs)
    encoder = _encoder(args.encoder)
    encode_rate = _encode_rate(encoder)
    writer = Writer(api, args.docs, args.rate)
    writer.start()
    time.sleep(2)
    added = AddedFields(sparse_type=lucene_connector(api).new_sparse_type())  # type: ignore[arg-type]
    source = LuceneIndexSource(api, old, FIELDS, added=added, track_versions=True)
    estimate = estimate_freeze(source, encode_rate, window_s=3.0)
    passes: list[PassReport] = []
    old_name, alias, options = resolve_reindex(api, PREFIX)
    live = LiveMigration(source, LiveOptions(freeze_at=args.freeze_at, on_pass=passes.append))
    with tempfile.TemporaryDirectory() as state:
        started = time.perf_counter()
        report = migrate(
            source,
            ReindexTarget(api, old_name, f"{PREFIX}-2", alias, FIELDS, added, alias_options=options),
            encoder,
            batch_size=args.batch_size,
            checkpoint=Path(state) / "ck.json",
            live=live,
        )
        total_s = time.perf_counter() - started
    writer.join(60)
    writer.stop.set()
    live_report = report.live or {}
    outage = (
        writer.landed - writer.first_refused
        if writer.landed is not None and writer.first_refused is not None
        else None
    )
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
        },
        "engine": engine,
        "url": args.url,
        "node": args.node,
        "documents": args.docs,
        "encoder": args.encoder,
        "encoder_note": "real SPLADE-tiny (sparse only)"
        if args.encoder == "splade-tiny"
        else "hash stand-in, not a model",
        "encode_docs_per_s": round(encode_rate, 1),
        "fill_s": round(fill_s, 1),
        "write_rate_target": args.rate,
        "write_rate_achieved": round(writer.achieved_rate(), 1),
        "writer_ops": writer.ops,
        "writer_error": writer.error,
        "migration_s": round(total_s, 1),
        "copy_docs": report.written,
        "ok": report.ok,
        "passes": [
            {
                "number": p.number,
                "frozen": p.frozen,
                "delta": p.delta,
                "changed": p.changed,
                "deleted": p.deleted,
                "scan_s": round(p.scan_s, 3),
                "encode_s": round(p.encode_s, 3),
                "write_s": round(p.write_s, 3),
                "seconds": round(p.seconds, 3),
            }
            for p in passes
        ],
        "freeze_s": live_report.get("freeze_s"),
        "freeze_parts_s": {
            "block": live_report.get("block_request_s"),
            "final_pass": live_report.get("final_pass_s"),
            "verify": live_report.get("verify_s"),
            "swap": live_report.get("finalize_s"),
            "block_lifted_after": live_report.get("block_s"),
        },
        "final_delta": live_report.get("final_delta"),
        "writer_outage_s": round(outage, 3) if outage is not None else None,
        "writer_refused_writes": writer.refused,
        "dry_run_estimate": estimate.to_json_obj(),
        "verification_ok": report.verification.ok if report.verification is not None else None,
    }
    for name in api.client.indices.get(index=f"{PREFIX}*", allow_no_indices=True):
        api.delete_index(name)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report.summary())
        print(f"freeze {result['freeze_s']:.2f}s, writer outage {result['writer_outage_s']}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
