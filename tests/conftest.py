"""Suite-wide test settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Timings on a shared 2-core machine vary too much for per-example deadlines; CI runs derandomized so a
# failure there reproduces exactly.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the suite: 2 task slots, and up to 3 attempts per task (local mode retries
    nothing unless asked), on the machine's Java. Started on first use, stopped at the end."""
    from spladebridge.spark import spark_session

    session = spark_session("local[2,3]", "spladebridge-tests")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()
