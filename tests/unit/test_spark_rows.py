"""Rows -> documents for spladebridge.spark: the same checks on executors and driver, with where and why."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import numpy as np
import pytest

from spladebridge.connectors.base import IndexSpec
from spladebridge.spark.rows import (
    RowLayout,
    RowProblem,
    content_id,
    metadata_columns,
    plain,
    row_to_document,
)

SPEC = IndexSpec(name="docs", dense_dim=3, text_fields=("title", "text"))
LAYOUT = RowLayout(SPEC, "id", ("title", "text"), ("year",))


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "d1",
        "title": "Flat tyres",
        "text": "Patch the tube.",
        "year": np.int64(2024),
        "sparse_indices": [3, 9],
        "sparse_values": [0.5, 1.25],
        "dense": [0.1, 0.2, 0.3],
        "encode_error": None,
    }
    return {**base, **changes}


def test_a_good_row_becomes_a_document_with_plain_metadata() -> None:
    doc = row_to_document(row(), LAYOUT, "partition 0 row 4")
    assert doc.id == "d1"
    assert doc.fields == {"title": "Flat tyres", "text": "Patch the tube."}
    assert doc.metadata == {"year": 2024} and type(doc.metadata["year"]) is int
    assert doc.sparse is not None and doc.sparse.indices.tolist() == [3, 9]
    assert doc.dense is not None and np.allclose(doc.dense, [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("changes", "stage", "message"),
    [
        ({"id": None}, "read", "partition 2 row 7: id column 'id' is null"),
        ({"id": -3}, "read", "partition 2 row 7: column 'id': "),
        ({"encode_error": "no text in column(s) title, text"}, "encode", "no text in column(s) title, text"),
        ({"sparse_indices": None}, "read", "no SPLADE vector"),
        ({"sparse_values": [0.5, float("nan")]}, "read", "partition 2 row 7: "),
        ({"dense": [0.1, 0.2]}, "read", "dense vector has shape (2,), index wants (3,)"),
        ({"dense": [0.1, float("inf"), 0.3]}, "read", "not finite"),
        ({"dense": None}, "read", "no dense vector"),
    ],
)
def test_bad_rows_say_where_and_why(changes: dict[str, Any], stage: str, message: str) -> None:
    with pytest.raises(RowProblem) as caught:
        row_to_document(row(**changes), LAYOUT, "partition 2 row 7")
    assert caught.value.stage == stage
    assert message in str(caught.value)
    assert str(caught.value).startswith("partition 2 row 7: ")


def test_content_ids_are_deterministic_and_tell_rows_apart() -> None:
    layout = RowLayout(SPEC, None, ("title", "text"), ("year",))
    first = row_to_document(row(), layout, "r").id
    assert first == row_to_document(row(id="ignored"), layout, "r").id  # the id column plays no part
    assert first == content_id({"title": "Flat tyres", "text": "Patch the tube."}, {"year": 2024})
    assert first != row_to_document(row(text="Patch the tube!"), layout, "r").id


def test_plain_values_are_json_ready() -> None:
    value = {
        "when": dt.datetime(2024, 5, 1, 12, 0),
        "price": decimal.Decimal("2.5"),
        "tags": np.array([1, 2]),
    }
    assert plain(value) == {"when": "2024-05-01T12:00:00", "price": 2.5, "tags": [1, 2]}
    assert plain(float("nan")) is None


def test_metadata_is_every_other_column() -> None:
    columns = [
        "id",
        "title",
        "text",
        "year",
        "lang",
        "sparse_indices",
        "sparse_values",
        "dense",
        "encode_error",
    ]
    assert metadata_columns(columns, "id", ("title", "text")) == ("year", "lang")
