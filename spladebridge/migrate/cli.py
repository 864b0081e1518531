"""`spladebridge migrate`: the command-line face of `spladebridge.migrate`.

Wiring (in `spladebridge/cli.py`): `p = migrate_cli.add_parser(sub, parents=[_common()])` in
`build_parser()`, and `COMMANDS["migrate"] = lambda args, settings, out: migrate_cli.run(args, out)`.
Without `parents`, `add_parser` adds the same options itself (`_add_common_options`, less `--index`: SOURCE
names the index), so the module also runs alone: `python -m spladebridge.migrate.cli SOURCE ...`.

Modes: `reindex` and `in-place` take an Elasticsearch / OpenSearch index or alias on `--url`; `to-qdrant`
copies one into a Qdrant collection (`--to qdrant-edge://PATH` or `qdrant://HOST:PORT`); `copy` re-encodes a
JSONL / CSV / Parquet file or any engine's index (`--from-url`) into `--to`. `--live` (reindex, in-place,
to-qdrant) migrates an index that keeps taking writes (`spladebridge.migrate.live`); with `--dry-run` it also
prints the freeze to expect, from rates measured on the source (`spladebridge.migrate.freeze_plan`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, TextIO

from spladebridge.cli import _add_common_options
from spladebridge.config import SETTINGS, Settings, resolve
from spladebridge.connectors.base import Connector, IndexSpec
from spladebridge.connectors.lucene_client import LuceneClient
from spladebridge.connectors.lucene_connector import LuceneConnector, lucene_connector
from spladebridge.engines import connect, detect_http_engine, http_settings, parse_engine_url
from spladebridge.spark_option import add_spark_option, spark_stage

from .core import MigrationError, MigrationReport, migrate
from .freeze_plan import estimate_freeze
from .live import LiveMigration, LiveOptions
from .lucene_bodies import AddedFields
from .lucene_cluster import (
    InPlaceTarget,
    LuceneIndexSource,
    ReindexTarget,
    default_new_index,
    resolve_reindex,
)
from .plan import MigrationPlan, plan_migration
from .sources import (
    ConnectorSource,
    ConnectorTarget,
    MigrationSource,
    MigrationTarget,
    RecordFileSource,
    SourceChanged,
)

__all__ = ["MODES", "add_parser", "main", "run"]

MODES = ("reindex", "in-place", "to-qdrant", "copy")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("spladebridge.migrate.cli")


class MigrateUsageError(ValueError):
    """A mistake in how `spladebridge migrate` was called (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"spladebridge: error: {message} (see `{self.prog} --help`)\n")


def _own_common(p: argparse.ArgumentParser) -> None:
    """`spladebridge.cli`'s engine and output options for the sub-command run alone: no `--index` (SOURCE
    names the index) and help that speaks of the source cluster."""
    _add_common_options(
        p,
        index=False,
        url_help="engine URL of the source cluster or index (http(s)://, qdrant-edge://)",
        api_key_help="API key (better: SPLADEBRIDGE_ES_API_KEY / SPLADEBRIDGE_OS_API_KEY)",
        password_help="basic-auth password (better: the environment)",
    )


def add_parser(
    subparsers: Any, parents: Sequence[argparse.ArgumentParser] = (), name: str = "migrate"
) -> argparse.ArgumentParser:
    """Add the `migrate` sub-command to an argparse sub-parser collection and return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        name,
        parents=list(parents),
        help="migrate a BM25 index to learned sparse + hybrid (reindex + alias swap, in place, to Qdrant)",
        description=(
            "Add SPLADE (and dense) vectors to an existing deployment: reindex into a new index and swap the "
            "alias, update in place, copy into Qdrant, or re-encode any index or file. Checkpointed after "
            "every batch (--resume continues after a crash), verified before it goes live."
        ),
    )
    if not parents:
        _own_common(p)
    p.add_argument(
        "source", help="index or alias (reindex, in-place, to-qdrant), or a file / index name (copy)"
    )
    p.add_argument("--mode", "-m", choices=MODES, default="reindex", help="what to do (default reindex)")
    p.add_argument("--to", dest="to_url", help="target engine URL (to-qdrant, copy): qdrant-edge://PATH, ...")
    p.add_argument("--from-url", help="copy: read the index SOURCE at this engine URL instead of a file")
    p.add_argument("--target-index", help="target index / collection name (to-qdrant, copy; default: SOURCE)")
    p.add_argument("--new-index", help="reindex: name of the new index (default SOURCE-splade)")
    p.add_argument("--alias", help="reindex: the alias clients use (default: SOURCE when it is an alias)")
    p.add_argument("--delete-old", action="store_true", help="reindex: delete the old index after the swap")
    p.add_argument("--sparse-field", default="splade", help="sparse field name (default splade)")
    p.add_argument("--dense-field", default="dense", help="dense field name, with --dense (default dense)")
    p.add_argument(
        "--sparse-type",
        choices=("auto", "sparse_vector", "rank_features"),
        default="auto",
        help="Elasticsearch sparse field type (default: sparse_vector on 8.15+, else rank_features)",
    )
    p.add_argument("--sort-field", help="a unique sortable field for a scan that resumes across PITs")
    p.add_argument("--text-field", "-f", dest="text_fields", action="append", help="text field(s) to encode")
    p.add_argument("--id-field", help="copy from a file: the id field (default _id, then id)")
    p.add_argument("--batch-size", type=int, help="documents per encode/write batch (default 64)")
    add_spark_option(p)
    p.add_argument("--checkpoint", help="checkpoint file (default: under the state folder)")
    p.add_argument("--dead-letter", help="JSONL file for failed documents (default: beside the checkpoint)")
    p.add_argument("--state-dir", help="folder for checkpoints and dead letters (default .spladebridge)")
    p.add_argument(
        "--resume", action="store_true", help="continue an unfinished migration from its checkpoint"
    )
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint, start over")
    p.add_argument("--dry-run", action="store_true", help="print the plan and estimates; write nothing")
    p.add_argument(
        "--sample-size", type=int, default=20, help="documents compared field by field (default 20)"
    )
    p.add_argument(
        "--query", "-Q", dest="queries", action="append", default=[], help="a sample query (repeat)"
    )
    p.add_argument("-k", type=int, default=10, help="hits per sample query (default 10)")
    p.add_argument("--no-verify", action="store_true", help="skip verification (not recommended)")
    p.add_argument(
        "--allow-unverified", action="store_true", help="finalize (swap the alias) even if verification fails"
    )
    live = p.add_argument_group("live source (reindex, in-place, to-qdrant)")
    live.add_argument(
        "--live",
        action="store_true",
        help="the source keeps taking writes: capture changes during the copy, catch up, then freeze writes "
        "for the last delta and swap (in place: conditional updates, no freeze)",
    )
    live.add_argument(
        "--freeze-at",
        type=int,
        default=1000,
        help="freeze once a catch-up pass finds at most this many changed documents (default 1000)",
    )
    live.add_argument("--max-passes", type=int, default=10, help="catch-up passes at most (default 10)")
    live.add_argument(
        "--after-swap",
        choices=("lift", "read-only"),
        default="lift",
        help="the old index after the swap: lift its write block, or keep it read-only (default lift)",
    )
    live.add_argument(
        "--rate-window",
        type=float,
        default=3.0,
        help="--dry-run --live: seconds over which the source's write rate is measured (default 3)",
    )
    g = p.add_argument_group("models")
    g.add_argument("--sparse-model", help="SPLADE model name or folder (default: bundled SPLADE-tiny)")
    g.add_argument("--dense-model", help="dense model name or folder (default: bundled all-MiniLM-L6-v2)")
    g.add_argument(
        "--dense", action=argparse.BooleanOptionalAction, default=False, help="also add dense vectors"
    )
    g.add_argument(
        "--dense-precision",
        choices=("exact", "fast"),
        help="dense encoder arithmetic: exact (float32, the CPU default) or fast (bfloat16 where the hardware "
        "has it: about 1.5x faster, cosine >= 0.9999 to exact; the CUDA default)",
    )
    g.add_argument("--device", help="torch device, e.g. cpu or cuda (default: best available)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {}
    for name in SETTINGS:
        value = getattr(args, name, None)
        if value is not None and name not in ("dense", "index"):
            flags[name] = value
    if getattr(args, "insecure", None):
        flags["verify_certs"] = False
    if getattr(args, "text_fields", None):
        flags["text_fields"] = [f.strip() for arg in args.text_fields for f in arg.split(",") if f.strip()]
    return resolve(flags, config_file=getattr(args, "config", None))


def _http_client(settings: Settings, url: str | None) -> LuceneClient:
    target = parse_engine_url(url or settings["url"], settings.get("engine"))
    if target.kind not in (None, "elasticsearch", "opensearch"):
        raise MigrateUsageError(
            f"this mode reads an Elasticsearch / OpenSearch index; {target.url!r} is {target.kind}"
        )
    creds: dict[str, Any] = {
        "api_key": settings.get("api_key"),
        "username": settings.get("username"),
        "password": settings.get("password"),
        "ca_certs": settings.get("ca_certs"),
        "verify_certs": settings["verify_certs"],
        "timeout": settings.get("timeout"),
    }
    flavour: Literal["elasticsearch", "opensearch"]
    if target.kind is None:
        flavour = detect_http_engine(
            http_settings(target, "elasticsearch", **creds), timeout=creds["timeout"]
        )
    else:
        flavour = target.kind
    hs = http_settings(target, flavour, **creds)
    reader: LuceneConnector
    if flavour == "elasticsearch":
        from spladebridge.connectors.elasticsearch import ElasticsearchConnector

        # the connector's client speaks to the server's major (an 8.x cluster through elasticsearch-py 9)
        reader = ElasticsearchConnector(settings=hs)
        reader.node  # noqa: B018  (reads the version once; pins the compatible-with media type)
    else:
        from spladebridge.connectors.opensearch import OpenSearchConnector

        reader = OpenSearchConnector(settings=hs)
        reader.server_info()  # refuses a server that is not OpenSearch
    return reader.cluster


def _connect(settings: Settings, url: str, index: str, spec: IndexSpec | None = None) -> Connector:
    return connect(
        url,
        index=index,
        spec=spec,
        api_key=settings.get("api_key"),
        username=settings.get("username"),
        password=settings.get("password"),
        ca_certs=settings.get("ca_certs"),
        verify_certs=settings["verify_certs"],
        timeout=settings.get("timeout"),
    )


@dataclass(slots=True)
class _Setup:
    """A source and a target ready to run, the engine name for estimates, and what a dry run would do."""

    source: MigrationSource
    target: MigrationTarget | None
    engine: str
    actions: list[str] = field(default_factory=list)
    mappings: dict[str, Any] = field(default_factory=dict)


def _added(api: LuceneClient, args: argparse.Namespace, dense_dim: int | None) -> AddedFields:
    sparse_type = args.sparse_type
    if sparse_type == "auto":  # what a new index of the connector gets (OpenSearch: rank_features)
        sparse_type = lucene_connector(api).new_sparse_type()
    return AddedFields(
        sparse_field=args.sparse_field,
        sparse_type=sparse_type,
        dense_field=args.dense_field if dense_dim else None,
        dense_dim=dense_dim,
    )


def _setup(
    args: argparse.Namespace, settings: Settings, text_fields: tuple[str, ...], dense_dim: int | None
) -> _Setup:
    mode = args.mode
    live = bool(getattr(args, "live", False))
    if mode in ("reindex", "in-place", "to-qdrant"):
        api = _http_client(settings, None)
        added = _added(api, args, dense_dim if mode != "to-qdrant" else None)
        if mode == "reindex":
            old, alias, options = (
                resolve_reindex(api, args.source, args.alias)
                if not args.dry_run
                else _resolve_dry(api, args.source, args.alias)
            )
            new = args.new_index or default_new_index(old)
            source = LuceneIndexSource(
                api, old, text_fields, added=added, sort_field=args.sort_field, track_versions=live
            )
            target = ReindexTarget(
                api, old, new, alias, text_fields, added, alias_options=options, delete_old=args.delete_old
            )
            body = target.index_body() if args.dry_run else {}
            return _Setup(
                source,
                target,
                api.dialect,
                [
                    f"create index {new!r} from {old!r}'s mappings and settings, plus "
                    f"{', '.join(added.names())}",
                    f"scan {old!r} with a point in time, encode {', '.join(text_fields)}, "
                    f"bulk-index into {new!r}",
                    f"verify, then POST /_aliases {json.dumps(target.swap_body())}",
                    "delete the old index" if args.delete_old or alias == old else f"keep {old!r}",
                ],
                {
                    "properties": {
                        n: body.get("mappings", {}).get("properties", {}).get(n) for n in added.names()
                    }
                }
                if body
                else {},
            )
        if mode == "in-place":
            source = LuceneIndexSource(
                api, args.source, text_fields, added=added, sort_field=args.sort_field, track_versions=live
            )
            in_place = InPlaceTarget(api, args.source, text_fields, added)
            mapping = in_place.mapping_body() if args.dry_run else {}
            return _Setup(
                source,
                in_place,
                api.dialect,
                [
                    f"PUT /{args.source}/_mapping adding {', '.join(added.names())}",
                    f"scan {args.source!r} with a point in time, bulk-update each document with its vectors",
                ],
                {"properties": mapping.get("properties", {})} if mapping else {},
            )
        source = LuceneIndexSource(
            api, args.source, text_fields, added=added, sort_field=args.sort_field, track_versions=live
        )
        return _to_connector(args, settings, source, text_fields, dense_dim)
    if args.from_url:
        reader = _connect(settings, args.from_url, args.source)
        source_c: MigrationSource = ConnectorSource(reader, text_fields=text_fields)
    else:
        source_c = RecordFileSource(args.source, id_field=settings.get("id_field"), text_fields=text_fields)
    return _to_connector(args, settings, source_c, text_fields, dense_dim)


def _resolve_dry(api: LuceneClient, name: str, alias: str | None) -> tuple[str, str, dict[str, Any]]:
    """`resolve_reindex` without its one write (creating a missing alias)."""
    found = api.aliases(name)
    if found is not None and len(found) == 1:
        ((old, options),) = found.items()
        return old, name, options
    return name, alias or name, {}


def _to_connector(
    args: argparse.Namespace,
    settings: Settings,
    source: MigrationSource,
    text_fields: tuple[str, ...],
    dense_dim: int | None,
) -> _Setup:
    if not args.to_url:
        raise MigrateUsageError(f"--mode {args.mode} needs --to URL (e.g. qdrant-edge://./shards)")
    name = args.target_index or Path(str(args.source)).stem
    spec = IndexSpec(
        name=name,
        sparse_field=args.sparse_field,
        dense_field=args.dense_field if dense_dim else None,
        dense_dim=dense_dim,
        text_fields=text_fields,
    )
    kind = parse_engine_url(args.to_url).kind or "elasticsearch"
    engine = "qdrant" if kind in ("qdrant", "qdrant-edge") else kind
    actions = [f"create {name!r} at {args.to_url} with sparse field {spec.sparse_field!r}"]
    if args.dry_run:
        return _Setup(source, None, engine, actions)
    connector = _connect(settings, args.to_url, name)
    return _Setup(source, ConnectorTarget(connector, spec), engine, actions)


def _state_paths(args: argparse.Namespace, settings: Settings) -> tuple[Path, Path]:
    key = f"{args.mode}|{settings['url']}|{args.source}|{args.to_url}|{args.target_index}|{args.new_index}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = f"{args.mode}-{Path(str(args.source)).name}-{digest}"
    folder = Path(args.state_dir or settings["state_dir"]) / "migrate"
    checkpoint = Path(args.checkpoint) if args.checkpoint else folder / f"{stem}.checkpoint.json"
    dead = Path(args.dead_letter) if args.dead_letter else checkpoint.with_name(f"{stem}.dead-letter.jsonl")
    return checkpoint, dead


def _encoders(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any]:
    from spladebridge.encoder.splade import SpladeEncoder

    sparse = SpladeEncoder(settings.get("sparse_model"), device=settings.get("device"))
    dense = None
    if args.dense:
        from spladebridge.encoder.dense import DenseEncoder

        dense = DenseEncoder(
            settings.get("dense_model"),
            device=settings.get("device"),
            precision=settings.get("dense_precision"),
        )
    return sparse, dense


def run(
    args: argparse.Namespace, out: TextIO | None = None, *, encoders: tuple[Any, Any] | None = None
) -> int:
    """Run `spladebridge migrate` for parsed `args`; returns the exit code (0 ok, 1 failures, 2 usage)."""
    out = out or sys.stdout
    if args.resume and args.restart:
        raise MigrateUsageError("--resume and --restart contradict each other")
    for flag in ("batch_size", "sample_size", "k"):
        value = getattr(args, flag, None)
        if value is not None and value < (0 if flag == "sample_size" else 1):
            raise MigrateUsageError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    if args.mode in ("to-qdrant", "copy") and not args.to_url:
        raise MigrateUsageError(f"--mode {args.mode} needs --to URL (e.g. qdrant-edge://./shards)")
    if args.from_url and args.mode != "copy":
        raise MigrateUsageError("--from-url is for --mode copy")
    if getattr(args, "live", False):
        if args.mode == "copy":
            raise MigrateUsageError(
                "--live reads the versions of an Elasticsearch / OpenSearch index: use it with --mode reindex, "
                "in-place or to-qdrant (a file or another engine's index cannot be caught up)"
            )
        if args.freeze_at < 0 or args.max_passes < 1 or args.rate_window <= 0:
            raise MigrateUsageError("--freeze-at must be >= 0, --max-passes >= 1 and --rate-window > 0")
    settings = _settings(args)
    text_fields = tuple(settings["text_fields"])
    batch_size = settings["batch_size"]
    query_encoder = None
    if encoders is not None:
        sparse, dense = encoders
    elif getattr(args, "spark", None):
        stage = spark_stage(args.spark, settings, bool(args.dense), args.batch_size)
        sparse, dense, batch_size, query_encoder = (
            stage.sparse,
            stage.dense,
            stage.batch_size,
            stage.query_encoder,
        )
    else:
        sparse, dense = _encoders(args, settings)
    dense_dim = int(dense.dim) if dense is not None else None
    setup = _setup(args, settings, text_fields, dense_dim)
    try:
        if args.dry_run:
            plan: MigrationPlan = plan_migration(
                setup.source,
                sparse,
                dense,
                mode=args.mode,
                engine=setup.engine,
                text_fields=text_fields,
                actions=setup.actions,
                mappings=setup.mappings,
            )
            if getattr(args, "live", False) and isinstance(setup.source, LuceneIndexSource):
                estimate = estimate_freeze(setup.source, plan.encode_docs_per_s, window_s=args.rate_window)
                plan.freeze = estimate.to_json_obj()
                plan.freeze_summary = estimate.summary()
            _emit(plan.to_json_obj() if args.json else plan.summary(), out, args.json)
            return EXIT_OK
        assert setup.target is not None
        checkpoint, dead = _state_paths(args, settings)
        live = _live(args, setup.source)
        report: MigrationReport = migrate(
            setup.source,
            setup.target,
            sparse,
            dense,
            text_fields=text_fields,
            batch_size=batch_size,
            checkpoint=checkpoint,
            resume=args.resume,
            restart=args.restart,
            dead_letter=dead,
            verify_after=not args.no_verify,
            sample_size=args.sample_size,
            sample_queries=args.queries,
            k=args.k,
            require_verified=not args.allow_unverified,
            mode=args.mode,
            live=live,
            query_encoder=query_encoder,
        )
    except (MigrationError, SourceChanged) as exc:
        print(f"spladebridge: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        setup.source.close()
        if setup.target is not None:
            setup.target.close()
    _emit(report.to_json_obj() if args.json else report.summary(), out, args.json)
    return EXIT_OK if report.ok or report.already_finished else EXIT_FAILED


def _live(args: argparse.Namespace, source: MigrationSource) -> LiveMigration | None:
    """The live part of the migration, when `--live` asks for one."""
    if not getattr(args, "live", False):
        return None
    assert isinstance(source, LuceneIndexSource)
    options = LiveOptions(freeze_at=args.freeze_at, max_passes=args.max_passes, after_swap=args.after_swap)
    return LiveMigration(source, options)


def _emit(value: Any, out: TextIO, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
    else:
        out.write(str(value) + "\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """`python -m spladebridge.migrate.cli ...`: the sub-command on its own."""
    from spladebridge.config import ConfigError
    from spladebridge.connectors.base import ConnectorError
    from spladebridge.engines import EngineConfigError

    parser = _Parser(prog="spladebridge")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    add_parser(sub)
    args = parser.parse_args(["migrate", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING if not args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args, out)
    except (MigrateUsageError, ConfigError, EngineConfigError) as exc:
        print(f"spladebridge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConnectorError, OSError, ValueError) as exc:
        print(f"spladebridge: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("spladebridge: interrupted; run again with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
