"""Input checks for the encoders: each text is a `str` (or UTF-8 bytes), or the error names its index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["EncoderInputError", "check_texts", "coerce_text"]


class EncoderInputError(ValueError):
    """A text cannot be encoded (None, not a string, undecodable bytes); the message names its index."""


def coerce_text(item: object, index: int) -> str:
    """Return `item` as a `str`; UTF-8 `bytes` are decoded, anything else raises `EncoderInputError`."""
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncoderInputError(
                f"text at index {index} is not valid Unicode (character {exc.start} is a lone surrogate)"
            ) from None
        return item
    if isinstance(item, bytes | bytearray | memoryview):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncoderInputError(
                f"text at index {index} is bytes that are not valid UTF-8 (byte {exc.start}): decode it first"
            ) from None
    if item is None:
        raise EncoderInputError(f"text at index {index} is None; pass a string (use '' for an empty text)")
    raise EncoderInputError(f"text at index {index} is a {type(item).__name__}, not a string")


def check_texts(texts: Iterable[object], *, start: int = 0) -> Iterator[str]:
    """Lazily coerce every item of `texts`; a bare string is refused, since iterating it yields characters."""
    if isinstance(texts, str | bytes | bytearray):
        raise EncoderInputError("expected an iterable of texts, got a single string: wrap it in a list")
    for offset, item in enumerate(texts):
        yield coerce_text(item, start + offset)
