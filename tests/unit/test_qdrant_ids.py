"""Document ids <-> Qdrant point ids: deterministic, collision-free between types, exact round trip."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.connectors.ids import (
    ID_KEY,
    ID_TYPE_KEY,
    NAMESPACE,
    IdError,
    doc_id_from_payload,
    id_payload,
    point_key,
    to_point_id,
)

doc_ids = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.text(min_size=1))


@given(doc_ids)
def test_round_trip_through_payload_keeps_value_and_type(doc_id: str | int) -> None:
    payload = id_payload(doc_id)
    back = doc_id_from_payload(payload, to_point_id(doc_id))
    assert back == doc_id
    assert type(back) is type(doc_id)


@given(st.text(min_size=1))
def test_string_ids_map_to_a_stable_uuid5(doc_id: str) -> None:
    point = to_point_id(doc_id)
    assert isinstance(point, str)
    parsed = uuid.UUID(point)
    assert parsed.version == 5
    assert parsed == uuid.uuid5(NAMESPACE, doc_id)
    assert to_point_id(doc_id) == point


def test_integer_ids_stay_integers_and_do_not_collide_with_their_string_form() -> None:
    assert to_point_id(42) == 42
    assert to_point_id(2**64 - 1) == 2**64 - 1
    assert to_point_id("42") != 42
    assert isinstance(to_point_id("42"), str)


def test_the_namespace_is_pinned() -> None:
    # stored collections depend on this mapping: changing it would orphan every string-id point
    assert to_point_id("doc-1") == str(uuid.uuid5(uuid.UUID("6f1c3a52-5b8e-5d0e-9a57-2f3b9c1d7e40"), "doc-1"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (-1, r"\[0, 2\*\*64 - 1\]"),
        (2**64, r"\[0, 2\*\*64 - 1\]"),
        ("", "empty"),
        (True, "bool"),
        (1.5, "float"),
    ],
)
def test_invalid_ids_are_rejected_with_the_reason(bad: object, message: str) -> None:
    with pytest.raises(IdError, match=message):
        to_point_id(bad)


def test_big_integer_ids_survive_as_text_in_the_payload() -> None:
    payload = id_payload(2**64 - 1)
    assert payload == {ID_KEY: str(2**64 - 1), ID_TYPE_KEY: "int"}


def test_point_key_normalises_engine_ids() -> None:
    u = uuid.uuid5(NAMESPACE, "x")
    assert point_key(u) == str(u)
    assert point_key(str(u).upper()) == str(u)
    assert point_key(7) == 7


def test_points_written_by_others_fall_back_to_the_point_id() -> None:
    u = uuid.uuid4()
    assert doc_id_from_payload({"title": "x"}, u) == str(u)
    assert doc_id_from_payload(None, 9) == 9
