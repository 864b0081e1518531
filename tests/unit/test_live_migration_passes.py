"""The pieces of a live migration that need no engine: the versions kept through a kill, the delta, the
conditional bulk actions and their versions, the checkpoint's live phases, the freeze estimate, the CLI's
refusals. The whole flow runs on real nodes in tests/live/test_migrate_live_writes.py."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from spladebridge.connectors.bulk import BulkAction, BulkConfig, item_version, run_bulk
from spladebridge.connectors.lucene_connector import pit_page_body
from spladebridge.migrate import cli as migrate_cli
from spladebridge.migrate.capture import diff_versions
from spladebridge.migrate.freeze_plan import OVERHEAD_S, estimate_freeze
from spladebridge.migrate.live import LiveOptions
from spladebridge.migrate.state import MigrationState, StateError
from spladebridge.migrate.versions import KnownVersions, VersionsError


def test_versions_survive_a_reload_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ck.json.versions"
    known = KnownVersions(path)
    known.record({"a": (1, 1), "b": (4, 1)})
    known.record({"c": (7, 2)}, drops=["b"])
    known.close()
    assert KnownVersions(path).load().versions == {"a": (1, 1), "c": (7, 2)}
    with (tmp_path / "ck.json.versions.log").open("a") as log:
        log.write('{"set":{"d":[9')  # a kill in the middle of an append
    assert KnownVersions(path).load().versions == {"a": (1, 1), "c": (7, 2)}


def test_a_damaged_line_before_the_last_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "v"
    (tmp_path / "v.log").write_text('not json\n{"set":{"a":[1,1]},"drop":[]}\n')
    with pytest.raises(VersionsError, match="line 1 is damaged"):
        KnownVersions(path).load()
    (tmp_path / "v.log").write_text('{"set":{"a":[1]},"drop":[]}\n')
    with pytest.raises(VersionsError, match=r"expected \[seq_no, primary_term\]"):
        KnownVersions(path).load()


def test_compact_folds_the_log_into_the_snapshot_and_remove_deletes_both(tmp_path: Path) -> None:
    path = tmp_path / "v"
    known = KnownVersions(path)
    known.record({"a": (1, 1)})
    known.compact()
    assert not (tmp_path / "v.log").exists()
    assert json.loads(path.read_text())["versions"] == {"a": [1, 1]}
    known.record({"b": (2, 1)})
    assert KnownVersions(path).load().versions == {"a": (1, 1), "b": (2, 1)}
    known.remove()
    assert not path.exists() and not (tmp_path / "v.log").exists()


def test_delta_finds_new_rewritten_and_deleted_documents() -> None:
    known = {"same": (3, 1), "rewritten": (4, 1), "gone": (5, 1), "failover": (6, 1)}
    current = {"same": (3, 1), "rewritten": (9, 1), "new": (10, 1), "failover": (6, 2)}
    delta = diff_versions(known, current)
    assert sorted(delta.changed) == ["failover", "new", "rewritten"]
    assert delta.deleted == ["gone"] and len(delta) == 4


def test_conditional_bulk_actions_and_the_versions_they_produce() -> None:
    action = BulkAction("update", "i", "a", {"doc": {"x": 1}}, if_seq_no=5, if_primary_term=2)
    assert action.to_action() == {
        "_op_type": "update",
        "_index": "i",
        "_id": "a",
        "_source": {"doc": {"x": 1}},
        "if_seq_no": 5,
        "if_primary_term": 2,
    }
    with pytest.raises(ValueError, match="together"):
        BulkAction("update", "i", "a", {"doc": {}}, if_seq_no=5)
    assert item_version({"_seq_no": 3, "_primary_term": 1}) == (3, 1)
    assert item_version({"_seq_no": -2, "_primary_term": 1}) is None and item_version({}) is None

    def streaming_bulk(client: Any, actions: Any, **kwargs: Any) -> Any:
        for a in actions:
            if a["if_seq_no"] == 5:
                yield True, {"update": {"_id": a["_id"], "status": 200, "_seq_no": 8, "_primary_term": 2}}
            else:
                error = {"type": "version_conflict_engine_exception", "reason": "changed"}
                yield False, {"update": {"_id": a["_id"], "status": 409, "error": error}}

    actions = [action, BulkAction("update", "i", "b", {"doc": {}}, if_seq_no=1, if_primary_term=1)]
    ok, conflict = run_bulk(streaming_bulk, None, actions, BulkConfig()).outcomes
    assert ok.ok and ok.version == (8, 2)
    assert (
        not conflict.ok and conflict.status == "409" and not conflict.retryable and conflict.version is None
    )


def test_a_version_scan_page_reads_no_source() -> None:
    body = pit_page_body("p", 100, "1m", ["_shard_doc"], [7], ["splade"], versions=True, source=False)
    assert body["seq_no_primary_term"] is True and body["_source"] is False and body["search_after"] == [7]
    plain = pit_page_body("p", 100, "1m", ["_id"], None, ["splade"])
    assert "seq_no_primary_term" not in plain and plain["_source"] == {"excludes": ["splade"]}


def test_the_checkpoint_keeps_the_live_phases_and_progress(tmp_path: Path) -> None:
    path = tmp_path / "ck.json"
    state, _ = MigrationState.open(path, {"mode": "reindex", "live": {"after_swap": "lift"}})
    state.phase = "frozen"
    state.live = {"passes": 3, "last_delta": 12, "blocked_at": 1.5}
    state.save()
    again, existed = MigrationState.open(path, {"mode": "reindex", "live": {"after_swap": "lift"}})
    assert existed and again.phase == "frozen" and again.live == state.live
    with pytest.raises(StateError, match="another migration"):
        MigrationState.open(path, {"mode": "reindex", "live": {"after_swap": "read-only"}})


def test_live_options_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_passes"):
        LiveOptions(max_passes=0)
    with pytest.raises(ValueError, match="after_swap"):
        LiveOptions(after_swap="delete")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="freeze_at"):
        LiveOptions(freeze_at=-1)


class _Counting:
    """A source whose write counter grows by `per_call` each time it is read, with `documents` to scan."""

    def __init__(self, documents: int, per_call: int) -> None:
        self.documents = documents
        self.per_call = per_call
        self.ops = 0

    def write_operations(self) -> int:
        self.ops += self.per_call
        return self.ops

    def scan_versions(self, batch_size: int = 5000) -> dict[str, tuple[int, int]]:
        return {f"d{i}": (i, 1) for i in range(self.documents)}


def test_the_freeze_estimate_follows_its_formula() -> None:
    estimate = estimate_freeze(_Counting(1000, 20), 400.0, window_s=0.2)  # type: ignore[arg-type]
    rate = estimate.write_rate_per_s
    assert estimate.documents == 1000 and estimate.converges and 20 / 0.3 < rate <= 20 / 0.2 + 1e-6
    delta = rate * estimate.scan_s / (1 - rate / 400.0)
    assert estimate.expected_last_delta == pytest.approx(delta)
    assert estimate.expected_freeze_s == pytest.approx(OVERHEAD_S + estimate.scan_s + delta / 400.0)
    assert "expected freeze" in estimate.summary()
    runaway = estimate_freeze(_Counting(10, 1000), 50.0, window_s=0.1)  # type: ignore[arg-type]
    assert not runaway.converges and runaway.expected_freeze_s is None
    assert "cannot converge" in runaway.summary()
    json.dumps(runaway.to_json_obj(), allow_nan=False)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spladebridge")
    migrate_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["migrate", *argv])


def test_the_cli_refuses_live_where_nothing_can_be_caught_up(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": 1, "text": "a"}\n')
    args = _args(str(corpus), "--mode", "copy", "--to", f"qdrant-edge://{tmp_path}/s", "--live")
    with pytest.raises(migrate_cli.MigrateUsageError, match="--live reads the versions"):
        migrate_cli.run(args, io.StringIO(), encoders=(object(), None))
    args = _args("idx", "--live", "--max-passes", "0")
    with pytest.raises(migrate_cli.MigrateUsageError, match="--max-passes"):
        migrate_cli.run(args, io.StringIO(), encoders=(object(), None))
    parsed = _args("idx", "--live", "--after-swap", "read-only", "--freeze-at", "50")
    assert (parsed.live, parsed.after_swap, parsed.freeze_at, parsed.max_passes) == (
        True,
        "read-only",
        50,
        10,
    )
