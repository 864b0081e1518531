"""A SparkSession for a master URL, with the Python workers on this interpreter when Spark runs locally."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

__all__ = ["spark_session"]


def spark_session(master: str, app_name: str = "spladebridge", *, log_level: str = "ERROR") -> SparkSession:
    """The active session, or a new one on `master` (`local[*]`, `local[2,3]`, `spark://host:7077`, `yarn`...).

    For a local master the Python workers run this interpreter (unless PYSPARK_PYTHON says otherwise), so
    they see the same installed packages; a cluster's executors use their own configured Python.
    """
    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        # pyspark starts its Python workers with PYSPARK_PYTHON (else `python3` on PATH, maybe another install)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.ui.enabled", "false")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config(
            "spark.driver.host", "127.0.0.1"
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(log_level)
    return session
