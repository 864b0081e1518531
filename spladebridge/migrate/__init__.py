"""Migrate a BM25 deployment (or any connector's index) to learned sparse + hybrid search.

`migrate()` is the engine-neutral loop (source -> encode -> target, checkpointed, resumable, verified);
`spladebridge.migrate.lucene_cluster` holds the Elasticsearch / OpenSearch side (reindex with an alias swap,
in-place mapping + partial updates, PIT scans); `plan_migration()` is the `--dry-run`. `LiveMigration` makes a
migration of an index that keeps taking writes end equal to its final state (`spladebridge.migrate.live`).
"""

from __future__ import annotations

from .._callable_module import make_module_callable
from .core import MigrationError, MigrationReport, migrate
from .live import LiveMigration, LiveOptions
from .lucene_bodies import AddedFields
from .lucene_cluster import (
    InPlaceTarget,
    LuceneIndexSource,
    MigrationSetupError,
    ReindexTarget,
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
from .state import MigrationState, StateError
from .verify import QueryComparison, SampleCheck, VerificationReport

__all__ = [
    "AddedFields",
    "ConnectorSource",
    "ConnectorTarget",
    "InPlaceTarget",
    "LiveMigration",
    "LiveOptions",
    "LuceneIndexSource",
    "MigrationError",
    "MigrationPlan",
    "MigrationReport",
    "MigrationSetupError",
    "MigrationSource",
    "MigrationState",
    "MigrationTarget",
    "QueryComparison",
    "RecordFileSource",
    "ReindexTarget",
    "SampleCheck",
    "SourceChanged",
    "StateError",
    "VerificationReport",
    "migrate",
    "plan_migration",
    "resolve_reindex",
]


# `spladebridge.migrate` names this package and (the top-level lazy export) the `migrate` function: once the
# package is imported Python binds the name to the package, so the package forwards calls to the function and
# `spladebridge.migrate(...)` works whatever was imported first.
make_module_callable(__name__, "migrate")
