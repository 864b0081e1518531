"""Live tests run against real engine servers.

Elasticsearch and OpenSearch nodes come, in this order, from
1. `SPLADEBRIDGE_TEST_<NODE>_URL` (for example `SPLADEBRIDGE_TEST_OPENSEARCH_2_19_URL`): an external node;
2. a node that `make engines-up` left running (reused, not stopped);
3. what `make engines` fetched from Maven Central (tests/live/nodes.py starts it once per test session on free
   loopback ports and stops it at exit; its logs are kept when a test fails);
4. testcontainers, where a Docker engine answers.
When none of these can give a node, its tests are skipped with the reason, except under CI (`CI` set) or with
`SPLADEBRIDGE_REQUIRE_NODES=1`, where that is an error: `make test` must really run them.

Qdrant server tests need a Docker engine (no Qdrant server is published on the registries we reach); they are
skipped with that reason elsewhere. Qdrant Edge, the real engine in-process, is tested in tests/integration.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nodes


@functools.cache
def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers a ping, else a one-line reason."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed (pip install -e '.[dev]')"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # any failure to reach the daemon means "no Docker here"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no Docker engine answers ({first_line[:160]})"
    return None


def nodes_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("SPLADEBRIDGE_REQUIRE_NODES") == "1"


@dataclass
class LiveNode:
    """A real node the tests talk to: its name (`opensearch-2.19`), engine, URL and, when we started it, handle."""

    name: str
    engine: str
    url: str
    running: nodes.RunningNode | None = None  # set when this session started the node
    source: str = "maven"


class NodePool:
    """Starts each node at most once per session (lazily, on first use) and stops those it started."""

    def __init__(self) -> None:
        self._nodes: dict[str, LiveNode] = {}
        self._failures: dict[str, str] = {}
        self._containers: list[Any] = []

    def get(self, name: str) -> LiveNode:
        if name in self._failures:
            pytest.fail(self._failures[name], pytrace=False)
        if name not in self._nodes:
            try:
                self._nodes[name] = self._acquire(name)
            except nodes.NodeError as exc:
                self._failures[name] = f"{name} did not start: {exc}"
                pytest.fail(self._failures[name], pytrace=False)
        return self._nodes[name]

    def _acquire(self, name: str) -> LiveNode:
        kind = nodes.NODE_KINDS[name]
        external = os.environ.get(kind.env_var)
        if external:
            return LiveNode(name, kind.engine, external.rstrip("/"), source=kind.env_var)
        found = nodes.recorded(name)
        if found is not None:
            return LiveNode(name, kind.engine, found.url, source="make engines-up")
        if kind.fetched():
            running = nodes.start(kind)
            print(
                f"\n[live] {name} started at {running.url} in {running.started_in_s:.1f} s, "
                f"RSS {running.rss_mb():.0f} MB",
                file=sys.stderr,
            )
            return LiveNode(name, kind.engine, running.url, running)
        docker_reason = docker_unavailable_reason()
        if docker_reason is None and kind.docker_image:
            return self._container(kind)
        reason = f"{name}: not fetched (run `make engines`), no {kind.env_var}, and {docker_reason}"
        if nodes_required():
            raise nodes.NodeError(reason)
        pytest.skip(reason)

    def _container(self, kind: nodes.NodeKind) -> LiveNode:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(kind.docker_image).with_env("discovery.type", "single-node")
        if kind.engine == "elasticsearch":
            container = container.with_env("xpack.security.enabled", "false")
        else:
            container = container.with_env("DISABLE_SECURITY_PLUGIN", "true").with_env(
                "DISABLE_INSTALL_DEMO_CONFIG", "true"
            )
        container = container.with_exposed_ports(9200).start()
        self._containers.append(container)
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"
        probe = nodes.RunningNode(kind, url, os.getpid(), Path("."))
        nodes.wait_healthy(probe)
        return LiveNode(kind.name, kind.engine, url, source="testcontainers")

    def close(self, keep_logs: bool) -> list[str]:
        """Stop what this session started; returns the run folders kept (with logs) for the report."""
        kept = []
        for node in self._nodes.values():
            if node.running is None:
                _SUMMARY.append(f"{node.name}: {node.url} ({node.source})")
                continue
            _SUMMARY.append(
                f"{node.name}: started in {node.running.started_in_s:.1f} s, "
                f"RSS {node.running.rss_mb():.0f} MB at the end of the run"
            )
            node.running.stop()
            if keep_logs:
                kept.append(f"{node.name}: {node.running.run_dir}")
            else:
                shutil.rmtree(node.running.run_dir, ignore_errors=True)
        for container in self._containers:
            container.stop()
        return kept


_POOL = NodePool()
_KEPT: list[str] = []
_SUMMARY: list[str] = []


@pytest.fixture(scope="session")
def node_pool() -> Iterator[NodePool]:
    yield _POOL


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _KEPT.extend(_POOL.close(keep_logs=session.testsfailed > 0))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _SUMMARY:
        terminalreporter.write_line(f"live node {line}")
    for line in _KEPT:
        terminalreporter.write_line(f"live node logs kept: {line}")


OPENSEARCH_NODES = [n for n, k in nodes.NODE_KINDS.items() if k.engine == "opensearch"]
ELASTICSEARCH_NODES = [n for n, k in nodes.NODE_KINDS.items() if k.engine == "elasticsearch"]


@pytest.fixture(scope="module", params=OPENSEARCH_NODES)
def os_node(request: pytest.FixtureRequest, node_pool: NodePool) -> LiveNode:
    """Each OpenSearch node in turn (module scope: a module's tests share one node)."""
    return node_pool.get(request.param)


@pytest.fixture(scope="module", params=ELASTICSEARCH_NODES)
def es_node(request: pytest.FixtureRequest, node_pool: NodePool) -> LiveNode:
    """Each Elasticsearch node in turn."""
    return node_pool.get(request.param)


@pytest.fixture(scope="module", params=OPENSEARCH_NODES + ELASTICSEARCH_NODES)
def lucene_node(request: pytest.FixtureRequest, node_pool: NodePool) -> LiveNode:
    """Every Elasticsearch and OpenSearch node in turn."""
    return node_pool.get(request.param)


def raw_client(node: LiveNode, timeout: float = 60) -> Any:
    """The engine's official client for `node` (test set-up). Elasticsearch: the connector's own client, which
    speaks `compatible-with=<server major>` to an older node (elasticsearch-py 9 to 8.19)."""
    if node.engine == "opensearch":
        from opensearchpy import OpenSearch

        return OpenSearch(hosts=[node.url], timeout=timeout)
    from spladebridge.connectors.elasticsearch import ElasticsearchConnector

    connector = ElasticsearchConnector(node.url)
    connector.node  # noqa: B018  (reads the version; pins the media type)
    return connector.client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Keep each phase's report on the item (`rep_setup`, `rep_call`), so fixtures can keep a failed test's
    node logs."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = docker_unavailable_reason()
    for item in items:
        path = item.nodeid.replace("\\", "/")
        if "tests/live/" in path or item.get_closest_marker("live"):
            item.add_marker(pytest.mark.live)
        if item.get_closest_marker("docker") and reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


# -- the adi collection and the default models, shared by the modules that run real text --------------------

ADI = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "adi"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def adi() -> dict[str, Any]:
    """adi's corpus and queries (82 documents, 35 queries), from ../shared/datasets."""
    if not ADI.is_dir():
        pytest.skip(f"the adi collection is not at {ADI}")
    return {"corpus": _jsonl(ADI / "corpus.jsonl"), "queries": _jsonl(ADI / "queries.jsonl")}


@pytest.fixture(scope="session")
def encoders() -> tuple[Any, Any]:
    """The default offline models: SPLADE-tiny and all-MiniLM-L6-v2."""
    import spladebridge as sb

    return sb.SpladeEncoder(), sb.DenseEncoder()


def ingest_adi(conn: Any, spec: Any, adi: dict[str, Any], encoders: tuple[Any, Any], state: Path) -> None:
    """adi's corpus through `spladebridge.ingest` with both default models (the product path), every document
    written, then flushed."""
    import spladebridge as sb

    sparse, dense = encoders
    report = sb.ingest(
        adi["corpus"],
        conn,
        sparse,
        dense_encoder=dense,
        text_fields=["title", "text"],
        spec=spec,
        checkpoint=state / "ckpt.json",
        dead_letter=state / "dead.jsonl",
        progress=False,
    )
    assert report.complete and report.failed == 0 and report.written == len(adi["corpus"]), report
    conn.flush()
