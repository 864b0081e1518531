"""An engine-neutral metadata filter: term, terms and range conditions, all of which must hold.

Each connector translates a `Filter` into its engine's own syntax; nothing here knows an engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "Condition",
    "Filter",
    "FilterError",
    "FilterLike",
    "Range",
    "Scalar",
    "Term",
    "Terms",
    "as_filter",
]

Scalar: TypeAlias = str | int | float | bool


class FilterError(ValueError):
    """A filter that cannot mean anything (empty field, empty range, non-scalar value)."""


def _check_field(field: str) -> None:
    if not isinstance(field, str) or not field.strip():
        raise FilterError(f"filter field must be a non-empty string, got {field!r}")


def _check_scalar(value: object, where: str) -> None:
    if not isinstance(value, str | int | float | bool):
        raise FilterError(f"{where}: value must be a string, number or boolean, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{where}: value must be finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class Term:
    """`field` equals `value` exactly."""

    field: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_field(self.field)
        _check_scalar(self.value, f"term filter on {self.field!r}")


@dataclass(frozen=True, slots=True)
class Terms:
    """`field` equals any of `values`."""

    field: str
    values: tuple[Scalar, ...]

    def __init__(self, field: str, values: Iterable[Scalar]) -> None:
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "values", tuple(values))
        _check_field(field)
        if not self.values:
            raise FilterError(f"terms filter on {field!r} needs at least one value")
        for i, value in enumerate(self.values):
            _check_scalar(value, f"terms filter on {field!r}, value {i}")


@dataclass(frozen=True, slots=True)
class Range:
    """Numeric range on `field`; at least one bound. `gt`/`lt` are exclusive, `gte`/`lte` inclusive."""

    field: str
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    def __post_init__(self) -> None:
        _check_field(self.field)
        bounds = {"gte": self.gte, "gt": self.gt, "lte": self.lte, "lt": self.lt}
        if all(b is None for b in bounds.values()):
            raise FilterError(f"range filter on {self.field!r} needs at least one bound")
        for name, bound in bounds.items():
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                raise FilterError(
                    f"range filter on {self.field!r}: {name} must be a finite number, got {bound!r}"
                )
        if self.gte is not None and self.gt is not None:
            raise FilterError(f"range filter on {self.field!r}: give gte or gt, not both")
        if self.lte is not None and self.lt is not None:
            raise FilterError(f"range filter on {self.field!r}: give lte or lt, not both")

    def bounds(self) -> dict[str, float]:
        """The bounds that are set, by name."""
        pairs = (("gte", self.gte), ("gt", self.gt), ("lte", self.lte), ("lt", self.lt))
        return {name: float(value) for name, value in pairs if value is not None}


Condition: TypeAlias = Term | Terms | Range


@dataclass(frozen=True, slots=True)
class Filter:
    """All `conditions` must hold (logical AND). An empty filter matches everything."""

    conditions: tuple[Condition, ...] = ()

    def __init__(self, *conditions: Condition) -> None:
        for i, cond in enumerate(conditions):
            if not isinstance(cond, Term | Terms | Range):
                raise FilterError(
                    f"filter condition {i} must be Term, Terms or Range, got {type(cond).__name__}"
                )
        object.__setattr__(self, "conditions", tuple(conditions))

    def __bool__(self) -> bool:
        return bool(self.conditions)


FilterLike: TypeAlias = Filter | Condition | None


def as_filter(value: FilterLike) -> Filter | None:
    """Normalise a user filter: a single condition becomes a one-condition `Filter`; empty becomes None."""
    if value is None:
        return None
    if isinstance(value, Filter):
        return value if value.conditions else None
    if isinstance(value, Term | Terms | Range):
        return Filter(value)
    raise FilterError(f"expected a Filter, Term, Terms or Range, got {type(value).__name__}")
