"""The engine-neutral filter type: validation and normalisation."""

from __future__ import annotations

import pytest

from spladebridge.connectors.filters import Filter, FilterError, Range, Term, Terms, as_filter


def test_single_condition_becomes_a_filter() -> None:
    assert as_filter(Term("lang", "en")) == Filter(Term("lang", "en"))
    assert as_filter(None) is None
    assert as_filter(Filter()) is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Term("", "x"), "non-empty"),
        (lambda: Term("a", [1, 2]), "string, number or boolean"),
        (lambda: Terms("a", []), "at least one value"),
        (lambda: Range("year"), "at least one bound"),
        (lambda: Range("year", gte=1, gt=2), "not both"),
        (lambda: Range("year", lte=float("nan")), "finite"),
        (lambda: Filter("lang=en"), "condition 0"),
    ],
)
def test_bad_filters_say_what_is_wrong(build: object, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        build()  # type: ignore[operator]


def test_range_bounds() -> None:
    assert Range("year", gte=2000, lt=2010).bounds() == {"gte": 2000.0, "lt": 2010.0}
