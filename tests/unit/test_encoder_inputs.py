"""Input checks and length-sorted batching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.encoder.batching import pad_batch, plan_batches, windows
from spladebridge.encoder.inputs import EncoderInputError, check_texts, coerce_text


def test_strings_and_utf8_bytes_pass() -> None:
    assert coerce_text("héllo", 0) == "héllo"
    assert coerce_text("héllo".encode(), 3) == "héllo"
    assert coerce_text(bytearray(b"abc"), 1) == "abc"


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        (None, r"index 7 is None"),
        (42, r"index 7 is a int"),
        (b"\xff\xfe", r"index 7 is bytes that are not valid UTF-8 \(byte 0\)"),
        ("bad \ud800 surrogate", r"index 7 is not valid Unicode \(character 4"),
    ],
)
def test_bad_items_name_their_index(item: object, pattern: str) -> None:
    with pytest.raises(EncoderInputError, match=pattern):
        coerce_text(item, 7)


def test_error_is_a_value_error_and_check_texts_counts_from_start() -> None:
    texts = ["a", "b", None]
    with pytest.raises(ValueError, match="index 12 is None"):
        list(check_texts(texts, start=10))


def test_a_bare_string_is_refused() -> None:
    with pytest.raises(EncoderInputError, match="single string"):
        list(check_texts("not a list"))


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=300), min_size=0, max_size=80),
    max_tokens=st.integers(min_value=1, max_value=2000),
    max_items=st.integers(min_value=1, max_value=40),
)
def test_plan_batches_covers_every_item_once_within_budget(
    lengths: list[int], max_tokens: int, max_items: int
) -> None:
    batches = plan_batches(lengths, max_tokens=max_tokens, max_items=max_items)
    flat = [pos for batch in batches for pos in batch]
    assert sorted(flat) == list(range(len(lengths)))
    previous_longest = None
    for batch in batches:
        assert 1 <= len(batch) <= max_items
        longest = max(lengths[pos] for pos in batch)
        if len(batch) > 1:
            assert len(batch) * longest <= max_tokens
        # longest first: batches come in non-increasing order of length
        if previous_longest is not None:
            assert longest <= previous_longest
        previous_longest = min(lengths[pos] for pos in batch)


def test_plan_batches_puts_more_short_texts_in_a_batch() -> None:
    batches = plan_batches([10] * 50 + [100] * 5, max_tokens=200, max_items=100)
    # the fifth long text shares its batch with a short one: 2 * 100 <= 200
    assert [len(b) for b in batches] == [2, 2, 2, 20, 20, 9]


def test_plan_batches_rejects_nonsense_budgets() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        plan_batches([1], max_tokens=0, max_items=1)


def test_pad_batch_pads_right_and_masks() -> None:
    import torch

    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_windows_are_consecutive_and_bounded() -> None:
    assert list(windows(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(windows([], 3)) == []
    with pytest.raises(ValueError, match="window size"):
        list(windows([1], 0))
