"""The `spladebridge` command: index, search, encode, stats, engines, demo.

Exit codes: 0 ok, 1 some items failed (or the engine failed), 2 usage or configuration error, 130 Ctrl-C.
Settings come from flags, then `SPLADEBRIDGE_*` environment variables, then a TOML file (see `config`).
User mistakes print one line `spladebridge: error: ...` and never a traceback (`--verbose` adds it).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from spladebridge.checkpoint import CheckpointError
from spladebridge.config import SETTINGS, ConfigError, Settings, resolve
from spladebridge.connectors.base import Connector, ConnectorError, IndexNotFound, IndexSpec
from spladebridge.connectors.filters import Term
from spladebridge.connectors.http_settings import HttpSettingsError
from spladebridge.engines import (
    ENGINES,
    EngineConfigError,
    client_libraries,
    connect,
    install_hint,
    parse_engine_url,
)
from spladebridge.readers import FORMATS, ReaderError
from spladebridge.spark_option import add_spark_option, spark_stage

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
SIGNAL_NAMES = ("sparse", "dense", "bm25")

log = logging.getLogger("spladebridge.cli")


class UsageError(ValueError):
    """A mistake in how the command was called (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one `spladebridge: error:` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"spladebridge: error: {message} (see `{self.prog} --help`)\n")


# -- parser ---------------------------------------------------------------------------------------------


def _common(json_output: bool = True) -> _Parser:
    """The engine, settings and output options every sub-command shares, as a parent parser."""
    p = _Parser(add_help=False)
    _add_common_options(p, json_output)
    return p


def _add_common_options(
    p: argparse.ArgumentParser,
    json_output: bool = True,
    *,
    index: bool = True,
    url_help: str = "engine URL: qdrant-edge://PATH (default .spladebridge), "
    "qdrant://HOST:PORT, http(s)://HOST:PORT",
    api_key_help: str = "API key (better: SPLADEBRIDGE_API_KEY)",
    password_help: str = "basic-auth password (better: SPLADEBRIDGE_PASSWORD)",
) -> None:
    """Add the engine, settings and output option groups to `p`.

    `index=False` leaves out `--index` and the `*_help` texts replace the defaults (`spladebridge.migrate.cli`
    run on its own uses both).
    """
    g = p.add_argument_group("engine and settings")
    g.add_argument("--url", "-u", help=url_help)
    g.add_argument("--engine", choices=ENGINES, help="engine for an http(s) URL (default: ask the engine)")
    if index:
        g.add_argument("--index", "-i", help="index / collection name (default spladebridge)")
    g.add_argument(
        "--config", help="TOML settings file (default ./spladebridge.toml, or $SPLADEBRIDGE_CONFIG)"
    )
    g.add_argument("--api-key", help=api_key_help)
    g.add_argument("--username", help="basic-auth user")
    g.add_argument("--password", help=password_help)
    g.add_argument("--ca-certs", help="CA bundle to verify the engine's TLS certificate")
    g.add_argument(
        "--insecure", action="store_true", default=None, help="do not verify TLS certificates (unsafe)"
    )
    g.add_argument("--timeout", type=float, help="engine request timeout in seconds")
    o = p.add_argument_group("output")
    verbosity = o.add_mutually_exclusive_group()
    verbosity.add_argument("--verbose", "-v", action="count", default=0, help="more logging (-vv: debug)")
    verbosity.add_argument("--quiet", "-q", action="store_true", help="only errors; no progress bar")
    if json_output:
        o.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _encoder_options(p: argparse.ArgumentParser, dense: bool = True) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--sparse-model", help="SPLADE model name or folder (default: bundled SPLADE-tiny)")
    if dense:
        g.add_argument("--dense-model", help="dense model name or folder (default: bundled all-MiniLM-L6-v2)")
        g.add_argument(
            "--dense",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="also use dense vectors (default on)",
        )
        g.add_argument(
            "--dense-precision",
            choices=("exact", "fast"),
            help="dense encoder arithmetic: exact (float32, the CPU default) or fast (bfloat16 where the hardware "
            "has it: about 1.5x faster, cosine >= 0.9999 to exact; the CUDA default)",
        )
    g.add_argument("--device", help="torch device, e.g. cpu or cuda (default: best available)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spladebridge",
        description="Learned sparse (SPLADE) and hybrid search for Elasticsearch, OpenSearch and Qdrant.",
        epilog="Exit codes: 0 ok, 1 some items failed, 2 usage or configuration error.",
    )
    from spladebridge import __version__

    parser.add_argument("--version", action="version", version=f"spladebridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "index",
        parents=[_common()],
        help="encode and write a JSONL/CSV/Parquet file",
        description="Read documents, encode them (sparse + dense) and write them, resumably.",
    )
    p.add_argument("input", help="input file (.jsonl, .csv or .parquet)")
    p.add_argument("--format", choices=FORMATS, help="input format (default: from the file suffix)")
    p.add_argument("--id-field", help="field holding the document id (default: _id, then id)")
    p.add_argument(
        "--text-field",
        "-f",
        dest="text_fields",
        action="append",
        help="a text field to encode; repeat or comma-separate (default: title,text)",
    )
    p.add_argument("--batch-size", type=int, help="documents per encode/write batch (default 64)")
    p.add_argument(
        "--max-retries",
        type=int,
        help="re-sends of a transiently failing write by the connector; a document is sent at most "
        "N+1 times (default 3; Qdrant Edge writes in-process and never retries)",
    )
    p.add_argument("--max-text-chars", type=int, help="longest accepted document text (default 1000000)")
    p.add_argument("--checkpoint", help="checkpoint file (default: under the state folder)")
    p.add_argument("--dead-letter", help="JSONL file for failed documents (default: beside the checkpoint)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint, start over")
    p.add_argument("--state-dir", help="folder for checkpoints and dead letters (default .spladebridge)")
    add_spark_option(p)
    _encoder_options(p)

    p = sub.add_parser("search", parents=[_common()], help="hybrid search, as a table or JSON")
    p.add_argument("query", help="query text")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--signals", help="comma-separated signals: sparse,dense,bm25 (default: all available)")
    p.add_argument(
        "--fusion", choices=("rrf", "weighted", "dbsf"), default="rrf", help="fusion (default rrf)"
    )
    p.add_argument(
        "--rrf-k",
        type=_rank_constant,
        default=60,
        help="RRF rank constant, an integer >= 1 as every engine takes (default 60)",
    )
    p.add_argument("--weights", help="comma-separated weights, one per signal")
    p.add_argument("--candidates", type=int, default=100, help="candidates per signal (default 100)")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="keep hits whose metadata FIELD equals VALUE (repeatable)",
    )
    p.add_argument(
        "--server-fusion",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fuse in the engine (default: client-side: showing each signal's rank takes one search per "
        "signal anyway, and those results fuse locally with one request fewer)",
    )
    p.add_argument("--explain", action="store_true", help="show the matching expansion terms")
    _encoder_options(p)

    p = sub.add_parser("encode", parents=[_common()], help="show a text's top weighted SPLADE terms")
    p.add_argument("text", help="text to encode ('-' reads standard input)")
    p.add_argument("--top-k", type=int, default=20, help="terms to show (default 20)")
    p.add_argument("--query", action="store_true", help="encode as a query (default: as a document)")
    _encoder_options(p, dense=False)

    p = sub.add_parser("stats", parents=[_common()], help="document count, mean active dims, FLOPS")
    p.add_argument("--limit", type=int, help="look at the first N documents only")

    sub.add_parser("engines", parents=[_common()], help="connectivity and capabilities of the engine")
    from spladebridge.migrate import cli as migrate_cli

    migrate_cli.add_parser(sub, parents=[_common()])
    sub.add_parser("demo", add_help=False, help="index a bundled corpus and run example queries")
    sub.add_parser(
        "eval", add_help=False, help="measure BM25, SPLADE, dense and hybrid quality on a BEIR folder"
    )
    sub.add_parser("train", add_help=False, help="fine-tune a SPLADE model on your own data")
    return parser


# -- helpers --------------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {}
    for name in SETTINGS:
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    if getattr(args, "insecure", None):
        flags["verify_certs"] = False
    if getattr(args, "text_fields", None):
        flags["text_fields"] = [f.strip() for arg in args.text_fields for f in arg.split(",") if f.strip()]
    return resolve(flags, config_file=args.config)


def _connect(settings: Settings, spec: IndexSpec | None = None) -> Connector:
    return connect(
        settings["url"],
        index=settings["index"],
        spec=spec,
        engine=settings.get("engine"),
        api_key=settings.get("api_key"),
        username=settings.get("username"),
        password=settings.get("password"),
        ca_certs=settings.get("ca_certs"),
        verify_certs=settings["verify_certs"],
        timeout=settings.get("timeout"),
    )


def _sparse_encoder(settings: Settings) -> Any:
    from spladebridge.encoder.splade import SpladeEncoder

    return SpladeEncoder(settings.get("sparse_model"), device=settings.get("device"))


def _dense_encoder(settings: Settings) -> Any:
    if not settings["dense"]:
        return None
    from spladebridge.encoder.dense import DenseEncoder

    return DenseEncoder(
        settings.get("dense_model"), device=settings.get("device"), precision=settings.get("dense_precision")
    )


_RRF_K_RULE = "expected a finite whole number >= 1 (engines fuse with an integer rank constant)"


def _rank_constant(text: str) -> int:
    """`--rrf-k`: an integer >= 1. Engines fuse server-side only with an integer rank constant, so a
    fraction would silently move fusion client-side; it is refused instead."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_RRF_K_RULE + f", got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(_RRF_K_RULE + f", got {text!r}")
    return value


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be >= 1, got {value}")


def _state_paths(settings: Settings, source: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """Default checkpoint and dead-letter paths: one pair per (engine URL, index, input file)."""
    key = f"{settings['url']}|{settings['index']}|{source.resolve()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = Path(settings["state_dir"]) / "ingest"
    stem = f"{settings['index']}-{source.stem}-{digest}"
    checkpoint = Path(args.checkpoint) if args.checkpoint else folder / f"{stem}.checkpoint.json"
    dead = (
        Path(args.dead_letter)
        if args.dead_letter
        else checkpoint.with_name(
            checkpoint.name.removesuffix(".checkpoint.json").removesuffix(".json") + ".dead-letter.jsonl"
        )
    )
    return checkpoint, dead


def _print_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _snippet(fields: dict[str, Any], text_fields: Sequence[str], width: int = 70) -> str:
    parts = [str(fields[n]) for n in text_fields if isinstance(fields.get(n), str) and fields[n]]
    if not parts:
        parts = [str(v) for v in fields.values() if isinstance(v, str) and v]
    text = " | ".join(parts).replace("\n", " ")
    return textwrap.shorten(text, width=width, placeholder="...") if text else ""


# -- commands -------------------------------------------------------------------------------------------


def _progress(total: int | None, quiet: bool, desc: str) -> Any:
    """A tqdm bar on stderr when it is a terminal (and not --quiet), else one that draws nothing."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=quiet or not sys.stderr.isatty())


def cmd_index(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from spladebridge.ingest import IngestInterrupted, ingest
    from spladebridge.readers import check_source

    source = Path(args.input)
    check_source(source, args.format)
    for name in ("batch_size", "max_text_chars"):
        _positive(settings[name], "--" + name.replace("_", "-"))
    if settings["max_retries"] < 0:
        raise UsageError(f"--max-retries must be >= 0, got {settings['max_retries']}")
    checkpoint, dead = _state_paths(settings, source, args)
    with _connect(settings) as connector:  # before the models load: a bad URL fails fast
        _set_write_retries(connector, settings["max_retries"])
        batch_size = settings["batch_size"]
        if args.spark:
            stage = spark_stage(args.spark, settings, bool(settings["dense"]), args.batch_size)
            sparse, dense, batch_size = stage.sparse, stage.dense, stage.batch_size
        else:
            sparse = _sparse_encoder(settings)
            dense = _dense_encoder(settings)
        try:
            report = ingest(
                source,
                connector,
                sparse,
                dense,
                id_field=settings.get("id_field"),
                text_fields=settings["text_fields"],
                format=args.format,
                index=settings["index"],
                batch_size=batch_size,
                checkpoint=checkpoint,
                restart=args.restart,
                dead_letter=dead,
                max_text_chars=settings["max_text_chars"],
                progress=False if args.quiet else None,
            )
        except IngestInterrupted as exc:
            if not args.quiet:
                print(exc.report.summary(), file=sys.stderr)
            print("spladebridge: interrupted; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    if args.json:
        _print_json(report.to_json_obj(), out)
    elif not args.quiet:
        out.write(f"index {report.index!r} at {parse_engine_url(settings['url']).describe()}\n")
        out.write(report.summary() + "\n")
        for failure in report.failures[:10]:
            out.write(f"  failed: {failure.error}\n")
        if report.failed > 10:
            out.write(f"  ... {report.failed - 10} more in {report.dead_letter}\n")
    if report.stopped:
        print(
            f"spladebridge: stopped: {report.stopped}; run the same command again to resume", file=sys.stderr
        )
    return EXIT_OK if report.ok else EXIT_FAILED


def _set_write_retries(connector: Connector, max_retries: int) -> None:
    """`--max-retries` sets the write retry policy of the connector the CLI built (every connector that
    retries has a `retry` policy; Qdrant Edge writes in-process and has none): ingest never re-sends."""
    from dataclasses import replace

    from spladebridge.connectors.retry import RetryPolicy

    policy = getattr(connector, "retry", None)
    if isinstance(policy, RetryPolicy):
        connector.retry = replace(policy, max_retries=max_retries)  # type: ignore[attr-defined]


def _filter_value(text: str) -> str | int | float | bool:
    """A `--filter` value: `true` / `false`, a number written the way the number prints (`7`, `-3`,
    `2.5`), or else the string as given (`007`, `1e3`, `+5`, `nan` and `2.50` stay strings, so codes
    and ids with leading zeros match their stored string)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for convert in (int, float):
        try:
            number = convert(text)
        except ValueError:
            continue
        if str(number) == text and math.isfinite(number):
            return number
    return text


def _parse_filters(items: Sequence[str]) -> list[Term]:
    terms = []
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise UsageError(f"--filter {item!r}: expected FIELD=VALUE")
        terms.append(Term(field.strip(), _filter_value(value)))
    return terms


def _fusion(args: argparse.Namespace, n_signals: int | None) -> Any:
    from spladebridge.hybrid.settings import RRF, WeightedSum

    weights: tuple[float, ...] | None = None
    if args.weights:
        try:
            weights = tuple(float(w) for w in args.weights.split(","))
        except ValueError:
            raise UsageError(f"--weights {args.weights!r}: expected comma-separated numbers") from None
        if n_signals is not None and len(weights) != n_signals:
            raise UsageError(f"--weights gives {len(weights)} weights for {n_signals} signals")
    if args.fusion == "rrf":
        return RRF(k=args.rrf_k, weights=weights)
    if args.fusion == "dbsf":
        return WeightedSum(weights=weights, normalize="dbsf")
    return WeightedSum(weights=weights)


def cmd_search(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from spladebridge.connectors.filters import Filter
    from spladebridge.hybrid.searcher import HybridSearcher

    _positive(args.k, "-k")
    _positive(args.candidates, "--candidates")
    signals: list[str] | None = None
    if args.signals:
        signals = [s.strip() for s in args.signals.split(",") if s.strip()]
        unknown = [s for s in signals if s not in SIGNAL_NAMES]
        if unknown or not signals:
            raise UsageError(f"--signals {args.signals!r}: choose from {', '.join(SIGNAL_NAMES)}")
    fusion = _fusion(args, len(signals) if signals else None)
    terms = _parse_filters(args.filter)
    flt = Filter(*terms) if terms else None
    with _open_existing(settings) as connector:
        spec = connector.existing_spec()  # the stored spec says whether there are dense vectors
        dense = _dense_encoder(settings) if spec.dense_field is not None else None
        if signals is not None and "dense" in signals and dense is None:
            raise UsageError(f"index {settings['index']!r} has no dense vectors; drop 'dense' from --signals")
        searcher = HybridSearcher(
            connector,
            _sparse_encoder(settings),
            dense,
            signals=signals,  # type: ignore[arg-type]
            fusion=fusion,
            candidates=args.candidates,
            server_fusion=args.server_fusion,
        )
        hits = searcher.search(args.query, args.k, flt, explain=args.explain)
        text_fields = spec.text_fields
    if args.json:
        _print_json(
            {
                "query": args.query,
                "signals": list(searcher.signals),
                "server_fusion": searcher.uses_server_fusion,
                "hits": [
                    {
                        "rank": h.rank,
                        "id": h.id,
                        "score": h.score,
                        "signals": {s: {"rank": r.rank, "score": r.score} for s, r in h.signals.items()},
                        "fields": h.fields,
                        **({"explanation": h.explanation} if args.explain else {}),
                    }
                    for h in hits
                ],
            },
            out,
        )
        return EXIT_OK
    used = list(searcher.signals)
    rows = []
    for h in hits:
        ranks = [str(h.signals[s].rank) if s in h.signals else "-" for s in used]
        rows.append([str(h.rank), str(h.id), f"{h.score:.4f}", *ranks, _snippet(h.fields, text_fields)])
    _table(rows, ["rank", "id", "score", *used, "text"], out)
    if args.explain:
        for h in hits:
            if h.explanation:
                terms_text = ", ".join(f"{t} {w:.2f}" for t, w in h.explanation[:10])
                out.write(f"{h.rank}. {h.id}: {terms_text}\n")
    if not hits:
        out.write("no results\n")
    return EXIT_OK


def _open_existing(settings: Settings) -> Connector:
    """Open an index that must already exist, by name, with the spec stored in the engine (never one
    guessed from the command-line defaults, and never creating anything). A missing index is a usage
    error (exit 2). Qdrant Edge: the index folder must hold a shard (opening creates nothing there)."""
    target = parse_engine_url(settings["url"], settings.get("engine"))
    where = f"in {target.path}" if target.path is not None else f"at {target.describe()}"
    missing = f"no index {settings['index']!r} {where}; create it with `spladebridge index`"
    if target.kind == "qdrant-edge":
        from spladebridge.connectors.qdrant_edge import SPEC_FILE

        assert target.path is not None
        if not (target.path / settings["index"] / SPEC_FILE).is_file():
            raise UsageError(missing)
    connector = _connect(settings)
    try:
        connector.existing_spec()
    except IndexNotFound:
        connector.close()
        raise UsageError(missing) from None
    except BaseException:
        connector.close()
        raise
    return connector


def cmd_encode(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    _positive(args.top_k, "--top-k")
    text = sys.stdin.read() if args.text == "-" else args.text
    encoder = _sparse_encoder(settings)
    vector = (encoder.encode_queries([text]) if args.query else encoder.encode_documents([text]))[0]
    top = encoder.decode(vector, top_k=args.top_k)
    if args.json:
        _print_json({"text": text, "nnz": vector.nnz, "terms": [[t, w] for t, w in top]}, out)
        return EXIT_OK
    out.write(f"{vector.nnz} active dimensions; top {len(top)}:\n")
    _table([[t, f"{w:.3f}"] for t, w in top], ["term", "weight"], out)
    return EXIT_OK


def cmd_stats(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    import numpy as np

    _positive(args.limit, "--limit")
    with _open_existing(settings) as connector:
        count = connector.count()
        bar = _progress(count, args.quiet, "scan")
        nnz: list[int] = []
        rates = np.zeros(0, dtype=np.float64)
        for doc in connector.scan():
            if args.limit is not None and len(nnz) >= args.limit:
                break
            bar.update(1)
            if doc.sparse is None:
                continue
            vec = doc.sparse
            nnz.append(vec.nnz)
            if vec.nnz:
                top = int(vec.indices[-1]) + 1
                if top > rates.size:
                    rates = np.concatenate([rates, np.zeros(top - rates.size)])
                rates[vec.indices] += 1.0
        bar.close()
    n = len(nnz)
    p = rates / n if n else rates
    stats = {
        "index": settings["index"],
        "count": count,
        "scanned": n,
        "mean_active_dims": float(np.mean(nnz)) if n else 0.0,
        "median_active_dims": float(np.median(nnz)) if n else 0.0,
        "max_active_dims": int(max(nnz)) if n else 0,
        "flops": float(np.dot(p, p)),
    }
    if args.json:
        _print_json(stats, out)
    else:
        _table(
            [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in stats.items()],
            ["stat", "value"],
            out,
        )
    return EXIT_OK


def cmd_engines(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    libraries = client_libraries()
    target = parse_engine_url(settings["url"], settings.get("engine"))
    result: dict[str, Any] = {"url": target.describe(), "client_libraries": libraries}
    code = EXIT_OK
    try:
        if (
            target.kind == "qdrant-edge"
            and target.path is not None
            and not (target.path / settings["index"]).exists()
        ):
            # embedded: nothing to reach; ask a throwaway shard so that no folder is left behind
            import tempfile

            with (
                tempfile.TemporaryDirectory(prefix="spladebridge-engines-") as tmp,
                connect(f"qdrant-edge://{tmp}", index=settings["index"]) as connector,
            ):
                caps = connector.capabilities()
        else:
            with _connect(settings) as connector:
                caps = connector.capabilities()
        result["reachable"] = True
        result["capabilities"] = {
            "engine": caps.engine,
            "version": caps.version,
            "sparse_field_types": list(caps.sparse_field_types),
            "server_fusion": sorted(caps.server_fusion),
            "weighted_fusion": caps.weighted_fusion,
            "dense": caps.dense,
            "lexical": caps.lexical,
            "notes": list(caps.notes),
        }
    except (ConnectorError, EngineConfigError) as exc:  # unreachable, refused, or no client library
        result["reachable"] = False
        result["error"] = str(exc)
        code = EXIT_FAILED
    if args.json:
        _print_json(result, out)
        return code
    rows = [[k, v or f"not installed ({install_hint(k)})"] for k, v in libraries.items()]
    _table(rows, ["engine", "client library"], out)
    out.write(f"\n{result['url']}: ")
    if not result["reachable"]:
        out.write(f"unreachable ({result['error']})\n")
        return code
    c = result["capabilities"]
    out.write(f"{c['engine']} {c['version'] or ''}\n".replace(" \n", "\n"))
    out.write(f"  sparse field types: {', '.join(c['sparse_field_types']) or '-'}\n")
    out.write(
        f"  server-side fusion: {', '.join(c['server_fusion']) or 'none'}"
        f"{' (weighted)' if c['weighted_fusion'] else ''}\n"
    )
    out.write(f"  dense: {'yes' if c['dense'] else 'no'}, BM25: {'yes' if c['lexical'] else 'no'}\n")
    for note in c["notes"]:
        out.write(f"  note: {note}\n")
    return code


def cmd_migrate(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """`spladebridge migrate` (see `spladebridge.migrate.cli`), which resolves its own settings."""
    from spladebridge.migrate import cli as migrate_cli
    from spladebridge.migrate.core import MigrationError

    try:
        return int(migrate_cli.run(args, out))
    except MigrationError as exc:
        _error(str(exc), args.verbose)
        return EXIT_FAILED


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, TextIO], int]] = {
    "index": cmd_index,
    "search": cmd_search,
    "encode": cmd_encode,
    "stats": cmd_stats,
    "engines": cmd_engines,
    "migrate": cmd_migrate,
}

# errors that mean "the user asked for something that cannot work": exit 2, one line
_USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ConfigError,
    EngineConfigError,
    HttpSettingsError,
    ReaderError,
    CheckpointError,
)


_CLIENT_LOGGERS = ("elastic_transport", "elasticsearch", "opensearch", "urllib3", "httpx", "httpcore")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.ERROR
        if quiet
        else logging.WARNING
        if verbose == 0
        else logging.INFO
        if verbose == 1
        else (logging.DEBUG)
    )
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    # The engine clients log every failed attempt with its traceback at WARNING; our own one-line error
    # says what failed, so they speak only from -vv on.
    for name in _CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose >= 2 else logging.ERROR)


_PASSTHROUGH = {
    "demo": "spladebridge.demo",
    "eval": "spladebridge.evaluation.cli",
    "train": "spladebridge.training.cli",
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _PASSTHROUGH:
        # commands with parsers of their own: hand them the rest of the line
        module = importlib.import_module(_PASSTHROUGH[args_list[0]])
        return int(module.main(args_list[1:]))
    out = out or sys.stdout
    args = build_parser().parse_args(args_list)
    _setup_logging(args.verbose, args.quiet)
    try:
        settings = _settings(args)
        log.debug("settings:\n  %s", "\n  ".join(settings.describe()))
        return COMMANDS[args.command](args, settings, out)
    except _USAGE_ERRORS as exc:
        _error(str(exc), args.verbose)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        _error(f"missing module {exc.name!r}: {exc}", args.verbose)
        return EXIT_USAGE
    except (ConnectorError, OSError) as exc:
        _error(str(exc) or type(exc).__name__, args.verbose)
        return EXIT_FAILED
    except (ValueError, LookupError) as exc:  # bad combinations found by the library (spec, fusion, model)
        _error(str(exc), args.verbose)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("spladebridge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _error(message: str, verbose: int) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    print(f"spladebridge: error: {first}", file=sys.stderr)
    if verbose:
        logging.getLogger("spladebridge").exception("details")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
