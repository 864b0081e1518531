"""Real Elasticsearch and OpenSearch nodes on 127.0.0.1, started from what `make engines` fetched from Maven.

No Docker and no download at start time: `make engines` (docker/nodes/pom.xml) puts the jars and zips into
`.engines/`; this module lays them out once (`prepare`), starts a node on a free loopback port, waits for its
health, and stops it. The pytest fixtures in tests/live/conftest.py use it; so do `make engines-up` /
`make engines-down` (`python tests/live/nodes.py up|down|status`), which leave nodes running in the background
and record them in `.engines/run/NAME/node.json` so that a later test run reuses them.

Elasticsearch refuses to run as root; when this process is root, the node runs as `nobody` (setpriv) and its
run folder is handed to that user. Heaps are 768 MB: four nodes fit a 2-core, 24 GB machine side by side.
Standard library only, so that it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINES_DIR = Path(os.environ.get("SPLADEBRIDGE_ENGINES_DIR", REPO / ".engines"))
RUN_DIR = ENGINES_DIR / "run"
JVM_DIR = Path("/usr/lib/jvm")
HEAP = os.environ.get("SPLADEBRIDGE_NODE_HEAP", "768m")
START_TIMEOUT_S = float(os.environ.get("SPLADEBRIDGE_NODE_START_TIMEOUT", "240"))
NOBODY = 65534

# The OpenSearch runner takes its HTTP port from baseHttpPort + 1, moved up while busy, and never above 9299.
_OS_PORT_RANGE = range(9200, 9300)


class NodeError(RuntimeError):
    """A node could not be prepared or started; the message says which and why (with its log's tail)."""


@dataclass(frozen=True)
class NodeKind:
    """One node this suite can run: its name (`opensearch-2.19`), engine, Java and distribution."""

    name: str
    engine: str  # "opensearch" | "elasticsearch"
    java_major: int  # the lowest Java it runs on
    dist: str  # folder (OpenSearch runner) or zip (Elasticsearch) under ENGINES_DIR
    plugin_classes: tuple[str, ...] = ()
    docker_image: str = ""  # the testcontainers fallback where a Docker engine answers

    @property
    def env_var(self) -> str:
        """SPLADEBRIDGE_TEST_<NAME>_URL: point the suite at an external node instead of starting one."""
        return "SPLADEBRIDGE_TEST_" + re.sub(r"[^A-Z0-9]+", "_", self.name.upper()) + "_URL"

    def fetched(self) -> bool:
        return (ENGINES_DIR / self.dist).exists()


NODE_KINDS: dict[str, NodeKind] = {
    k.name: k
    for k in (
        NodeKind(
            "opensearch-2.19",
            "opensearch",
            17,
            "opensearch-2.19",
            ("org.opensearch.knn.plugin.KNNPlugin", "org.opensearch.neuralsearch.plugin.NeuralSearch"),
            "opensearchproject/opensearch:2.19.1",
        ),
        NodeKind(
            "opensearch-3.6",
            "opensearch",
            21,
            "opensearch-3.6",
            ("org.opensearch.knn.plugin.KNNPlugin", "org.opensearch.neuralsearch.plugin.NeuralSearch"),
            "opensearchproject/opensearch:3.3.0",
        ),
        NodeKind(
            "elasticsearch-8.19",
            "elasticsearch",
            17,
            "elasticsearch-8.19.zip",
            docker_image="docker.elastic.co/elasticsearch/elasticsearch:8.19.0",
        ),
        NodeKind(
            "elasticsearch-9.5",
            "elasticsearch",
            21,
            "elasticsearch-9.5.zip",
            docker_image="docker.elastic.co/elasticsearch/elasticsearch:9.1.5",
        ),
    )
}


@dataclass
class RunningNode:
    """A started node: where it answers, its process group and its run folder (data, logs)."""

    kind: NodeKind
    url: str
    pid: int
    run_dir: Path
    started_in_s: float = 0.0

    @property
    def log_file(self) -> Path:
        return self.run_dir / "node.log"

    def alive(self) -> bool:
        return _pid_alive(self.pid)

    def rss_mb(self) -> float:
        """Resident memory of the node's JVM(s), in MB (0 when unknown)."""
        total = 0
        for pid in _process_tree(self.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the node's whole process group (SIGKILL: a crash, as the fault tests want)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; waits until the process group is gone."""
        self.kill(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.alive():
            self.kill(signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, os.WNOHANG)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def record(self) -> dict[str, object]:
        return {"name": self.kind.name, "url": self.url, "pid": self.pid, "run_dir": str(self.run_dir)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child of ours counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            rest = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(rest[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


# ---- Java ---------------------------------------------------------------------------------------------------


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    with contextlib.suppress(OSError):
        match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
        if match:
            return int(match.group(1))
    return None


def find_java_home(min_major: int) -> Path:
    """A JDK of at least `min_major`: SPLADEBRIDGE_JAVA<N>_HOME or JAVA_HOME when they fit, else /usr/lib/jvm."""
    candidates: list[Path] = []
    for var in (f"SPLADEBRIDGE_JAVA{min_major}_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    if JVM_DIR.is_dir():
        candidates.extend(sorted(p for p in JVM_DIR.iterdir() if p.is_dir() and not p.is_symlink()))
    fitting = [(major, home) for home in candidates if (major := _java_major(home)) and major >= min_major]
    if not fitting:
        raise NodeError(
            f"no JDK {min_major}+ found (looked at JAVA_HOME and {JVM_DIR}); install one or set "
            f"SPLADEBRIDGE_JAVA{min_major}_HOME"
        )
    # the oldest that fits: the Java a distribution was tested with most
    return min(fitting, key=lambda t: t[0])[1]


# ---- layout -------------------------------------------------------------------------------------------------


def _unzip_once(archive: Path, into: Path) -> Path:
    """Unpack `archive` into `into` (once: a marker file says it is complete); keeps unix modes."""
    marker = into / ".unpacked"
    if marker.exists():
        return into
    if not archive.exists():
        raise NodeError(f"{archive} is missing: run `make engines` first")
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, into))
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                path.chmod(mode & 0o777)
    marker.touch()
    return into


def prepare(kind: NodeKind) -> Path:
    """Lay out `kind`'s distribution under ENGINES_DIR/dist (idempotent); returns its home folder."""
    if kind.engine == "opensearch":
        base = ENGINES_DIR / kind.dist
        if not (base / "lib").is_dir():
            raise NodeError(f"{base}/lib is missing: run `make engines` first")
        lib_names = {_jar_stem(p.name) for p in (base / "lib").glob("*.jar")}
        for plugin in ("knn", "neural-search"):
            into = _unzip_once(base / f"{plugin}.zip", base / "plugins" / plugin)
            # a flat classpath must not see a library twice: the runner's copy wins
            for jar in into.glob("*.jar"):
                if _jar_stem(jar.name) in lib_names:
                    jar.unlink()
        return base
    home_parent = _unzip_once(ENGINES_DIR / kind.dist, ENGINES_DIR / "dist" / kind.name)
    homes = [p for p in home_parent.iterdir() if p.is_dir() and (p / "bin" / "elasticsearch").exists()]
    if len(homes) != 1:
        raise NodeError(f"{home_parent} does not hold one Elasticsearch distribution")
    return homes[0]


def _jar_stem(name: str) -> str:
    return re.sub(r"-\d[\w.\-]*\.jar$", "", name)


# ---- ports --------------------------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port(candidates: range | None = None, avoid: set[int] | None = None) -> int:
    """A loopback port nobody listens on (from `candidates`, or one the kernel picks)."""
    avoid = avoid or set()
    if candidates is not None:
        for port in candidates:
            if port not in avoid and _port_free(port):
                return port
        raise NodeError(f"no free port in {candidates.start}-{candidates.stop - 1}")
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


# ---- start / wait / stop ------------------------------------------------------------------------------------


def _node_settings(kind: NodeKind, http_port: int, transport_port: int, run_dir: Path) -> dict[str, str]:
    settings = {
        "cluster.name": f"spladebridge-{kind.name}",
        "node.name": kind.name,
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(http_port),
        "transport.port": str(transport_port),
        "path.data": str(run_dir / "data"),
        "path.logs": str(run_dir / "logs"),
        # a test machine's disk may be fuller than a production node's watermarks allow
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if kind.engine == "elasticsearch":
        settings["xpack.security.enabled"] = "false"
    return settings


def _yaml(settings: Mapping[str, str]) -> str:
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())


def start(
    kind: NodeKind,
    *,
    extra_settings: Mapping[str, str] | None = None,
    run_dir: Path | None = None,
    detach: bool = False,
    plugin_classes: tuple[str, ...] | None = None,
) -> RunningNode:
    """Start one node of `kind` on free loopback ports and wait until it is healthy.

    `extra_settings` go into the node's configuration (e.g. `thread_pool.write.queue_size` for the 429 test);
    `run_dir` reuses a node's data (restart after a crash); `plugin_classes` replaces an OpenSearch node's
    plugins (`()`: a bare node without k-NN and neural-search). Raises NodeError with the log's tail on failure.
    """
    home = prepare(kind)
    java_home = find_java_home(kind.java_major)
    started = time.monotonic()
    if run_dir is None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        run_dir = RUN_DIR / f"{kind.name}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    extra = dict(extra_settings or {})
    transport_port = free_port()
    if kind.engine == "opensearch":
        http_port = free_port(_OS_PORT_RANGE)
        plugins = kind.plugin_classes if plugin_classes is None else plugin_classes
        command, env = _opensearch_command(kind, home, java_home, http_port, run_dir, plugins)
        config_dir = run_dir / "node_1" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        settings = _node_settings(kind, http_port, transport_port, run_dir) | extra
        settings.pop("http.port")  # the runner sets it from -baseHttpPort
        (config_dir / "opensearch.yml").write_text(_yaml(settings))
    else:
        http_port = free_port(avoid={transport_port})
        config_dir = run_dir / "config"
        if not config_dir.exists():
            shutil.copytree(home / "config", config_dir)
        settings = _node_settings(kind, http_port, transport_port, run_dir) | extra
        (config_dir / "elasticsearch.yml").write_text(_yaml(settings))
        jvm_options = config_dir / "jvm.options.d"
        jvm_options.mkdir(exist_ok=True)
        (jvm_options / "heap.options").write_text(f"-Xms{HEAP}\n-Xmx{HEAP}\n")
        command = [str(home / "bin" / "elasticsearch")]
        env = {
            "ES_JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(config_dir),
            "ES_TMPDIR": str(run_dir / "tmp"),
        }
        (run_dir / "tmp").mkdir(exist_ok=True)
        if os.geteuid() == 0:  # Elasticsearch will not run as root
            _hand_to_nobody(run_dir)
            command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    log = (run_dir / "node.log").open("ab")
    process = subprocess.Popen(
        command,
        cwd=run_dir,
        env={**_clean_env(), **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    node = RunningNode(kind, f"http://127.0.0.1:{http_port}", process.pid, run_dir)
    try:
        if kind.engine == "opensearch":
            node.url = f"http://127.0.0.1:{_runner_port(node, http_port)}"
        wait_healthy(node)
    except BaseException:
        node.stop(timeout=5)
        raise
    node.started_in_s = time.monotonic() - started
    if detach:
        (run_dir / "node.json").write_text(json.dumps(node.record()))
    return node


def _opensearch_command(
    kind: NodeKind, home: Path, java_home: Path, http_port: int, run_dir: Path, plugins: tuple[str, ...]
) -> tuple[list[str], dict[str, str]]:
    classpath = [str(home / "lib" / "*")] + [str(p / "*") for p in sorted((home / "plugins").iterdir())]
    command = [
        str(java_home / "bin" / "java"),
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        "-XX:+UseG1GC",
        f"-Djava.io.tmpdir={run_dir / 'tmp'}",
        "-Dlog4j2.formatMsgNoLookups=true",
        "-cp",
        os.pathsep.join(classpath),
        "org.codelibs.opensearch.runner.OpenSearchRunner",
        "-basePath",
        str(run_dir),
        "-numOfNode",
        "1",
        "-baseHttpPort",
        str(http_port - 1),
        "-clusterName",
        f"spladebridge-{kind.name}",
    ]
    if plugins:
        command += ["-pluginTypes", ",".join(plugins)]
    (run_dir / "tmp").mkdir(exist_ok=True)
    return command, {"JAVA_HOME": str(java_home)}


def _clean_env() -> dict[str, str]:
    drop = {"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "ES_JAVA_OPTS", "OPENSEARCH_JAVA_OPTS", "CLASSPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _hand_to_nobody(run_dir: Path) -> None:
    for path in [run_dir, *run_dir.rglob("*")]:
        with contextlib.suppress(OSError):
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    # nobody must be able to walk down to the run folder
    for parent in run_dir.parents:
        if parent == Path("/"):
            break
        with contextlib.suppress(OSError):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


def _runner_port(node: RunningNode, asked: int) -> int:
    """The runner prints `HTTP Port: N` (asked, or the next free one)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = re.search(r"HTTP Port:\s+(\d+)", node.log_tail(200))
        if match:
            return int(match.group(1))
        if not node.alive():
            raise NodeError(
                f"{node.kind.name} exited while starting; log {node.log_file}:\n{node.log_tail()}"
            )
        time.sleep(0.2)
    return asked


def wait_healthy(node: RunningNode, timeout: float = START_TIMEOUT_S) -> None:
    """Poll `_cluster/health?wait_for_status=yellow` until it answers 200; fail fast if the process died."""
    deadline = time.monotonic() + timeout
    url = node.url + "/_cluster/health?wait_for_status=yellow&timeout=2s"
    while True:
        if not node.alive():
            raise NodeError(
                f"{node.kind.name} exited while starting; log {node.log_file}:\n{node.log_tail()}"
            )
        with (
            contextlib.suppress(urllib.error.URLError, OSError, ValueError),
            urllib.request.urlopen(url, timeout=5) as response,
        ):
            if response.status == 200 and json.loads(response.read()).get("status") in (
                "yellow",
                "green",
            ):
                return
        if time.monotonic() > deadline:
            raise NodeError(
                f"{node.kind.name} not healthy after {timeout:.0f} s; log {node.log_file}:\n{node.log_tail()}"
            )
        time.sleep(0.5)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_cluster/health", timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def recorded(name: str) -> RunningNode | None:
    """The node `make engines-up` left running for `name`, when it still answers."""
    path = RUN_DIR / name / "node.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    node = RunningNode(NODE_KINDS[name], str(data["url"]), int(data["pid"]), Path(str(data["run_dir"])))
    return node if node.alive() and healthy(node.url) else None


# ---- command line (make engines-up / engines-down) ----------------------------------------------------------


def _cmd_prepare(names: list[str]) -> int:
    for name in names:
        prepare(NODE_KINDS[name])
        print(f"{name} ready")
    return 0


def _cmd_up(names: list[str]) -> int:
    failed = 0
    for name in names:
        kind = NODE_KINDS[name]
        node = recorded(name)
        if node is None:
            try:
                node = start(kind, run_dir=RUN_DIR / name, detach=True)
            except NodeError as exc:
                print(f"{name} FAILED: {exc}", file=sys.stderr)
                failed += 1
                continue
        print(f"{name} {node.url}")
    return 1 if failed else 0


def _cmd_down(names: list[str]) -> int:
    for name in names:
        path = RUN_DIR / name / "node.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        node = RunningNode(NODE_KINDS[name], str(data["url"]), int(data["pid"]), Path(str(data["run_dir"])))
        node.stop()
        path.unlink(missing_ok=True)
        print(f"{name} stopped")
    return 0


def _cmd_status(names: list[str]) -> int:
    for name in names:
        node = recorded(name)
        print(f"{name} {node.url if node else 'down'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nodes.py", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("command", choices=["prepare", "up", "down", "status"])
    parser.add_argument("names", nargs="*", help=f"nodes (default: all of {', '.join(NODE_KINDS)})")
    args = parser.parse_args(argv)
    names = args.names or list(NODE_KINDS)
    unknown = [n for n in names if n not in NODE_KINDS]
    if unknown:
        parser.error(f"unknown node(s) {', '.join(unknown)}; known: {', '.join(NODE_KINDS)}")
    command = {"prepare": _cmd_prepare, "up": _cmd_up, "down": _cmd_down, "status": _cmd_status}[args.command]
    try:
        return command(names)
    except NodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
