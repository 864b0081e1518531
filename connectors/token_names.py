"""Reversible, collision-free feature names for token strings in Lucene-based engines.

Elasticsearch `rank_features` rejects dots in feature names and turns each name into a sub-field path
(`field.name`); patterns treat `*` as a wildcard. A lossy replacement such as '.' -> '_' collides with the
real '_' token. We use a restricted percent-encoding instead:

* '%' itself, '.', '*', '"', '\\', ',', whitespace and control characters become `%XX` (two upper-case hex
  digits of the code point, which is below 0x100 for all of them);
* lone surrogates (which cannot be sent as UTF-8) become `%uXXXX`;
* the empty string becomes a lone `%` (no other name can end in a bare '%').

Every other character, including all of BERT's WordPiece tokens except '.', '%', '*', '"', '\\' and ',', is
kept as is, so names stay readable (`##ing`, `[CLS]`, `café`). Encoding is injective and `decode_token`
inverts it exactly.
"""

from __future__ import annotations

import re

__all__ = ["TokenNameError", "decode_token", "encode_token", "is_safe_name"]

_ESCAPED = frozenset('%.*"\\,')
_HEX = "0123456789ABCDEF"
_ESCAPE_RE = re.compile(r"%(u[0-9A-F]{4}|[0-9A-F]{2})")


class TokenNameError(ValueError):
    """A feature name that `encode_token` could not have produced."""


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    return ch in _ESCAPED or code < 0x20 or code == 0x7F or ch.isspace() or 0xD800 <= code <= 0xDFFF


def encode_token(token: str) -> str:
    """The feature name for `token` (see the module docstring for the scheme)."""
    if token == "":
        return "%"
    if not any(_needs_escape(ch) for ch in token):
        return token
    out: list[str] = []
    for ch in token:
        if not _needs_escape(ch):
            out.append(ch)
            continue
        code = ord(ch)
        if code < 0x100:
            out.append("%" + _HEX[code >> 4] + _HEX[code & 0xF])
        else:
            out.append(f"%u{code:04X}")
    return "".join(out)


def decode_token(name: str) -> str:
    """The token that `encode_token` turned into `name`; raises `TokenNameError` for foreign names."""
    if name == "%":
        return ""
    if name == "":
        raise TokenNameError("an empty feature name is never produced (the empty token is named '%')")
    if "%" not in name:
        if any(_needs_escape(ch) for ch in name):
            raise TokenNameError(f"feature name {name!r} contains an unescaped reserved character")
        return name
    out: list[str] = []
    pos = 0
    for match in _ESCAPE_RE.finditer(name):
        literal = name[pos : match.start()]
        if "%" in literal or any(_needs_escape(ch) for ch in literal):
            raise TokenNameError(f"feature name {name!r} is not a valid encoded token")
        out.append(literal)
        code = match.group(1)
        value = int(code[1:], 16) if code.startswith("u") else int(code, 16)
        ch = chr(value)
        if not _needs_escape(ch) or (code.startswith("u") and value < 0x100):
            raise TokenNameError(f"feature name {name!r} escapes a character that is never escaped")
        out.append(ch)
        pos = match.end()
    tail = name[pos:]
    if "%" in tail or any(_needs_escape(ch) for ch in tail):
        raise TokenNameError(f"feature name {name!r} is not a valid encoded token")
    out.append(tail)
    return "".join(out)


def is_safe_name(name: str) -> bool:
    """True when `name` is exactly what `encode_token` produces for some token (so engines accept it)."""
    try:
        return encode_token(decode_token(name)) == name
    except TokenNameError:
        return False
