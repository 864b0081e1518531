"""Test utilities for users of spladebridge: a fault-injecting connector wrapper (no pytest dependency)."""

from __future__ import annotations

from spladebridge.testing.faults import (
    FATAL_STATUS,
    RETRYABLE_STATUSES,
    FaultStats,
    FaultyConnector,
    InjectedOutage,
    rejects,
)

__all__ = ["FATAL_STATUS", "RETRYABLE_STATUSES", "FaultStats", "FaultyConnector", "InjectedOutage", "rejects"]
