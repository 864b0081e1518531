"""Live tests run against real engine servers started with testcontainers.

They need a Docker engine. When none answers, every test here is skipped with a one-line reason, so the suite
stays green on machines without Docker (such as CI here) and runs for real wherever Docker exists.
"""

from __future__ import annotations

import functools

import pytest


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = docker_unavailable_reason()
    for item in items:
        if "tests/live/" in item.nodeid.replace("\\", "/") or item.get_closest_marker("live"):
            item.add_marker(pytest.mark.live)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
