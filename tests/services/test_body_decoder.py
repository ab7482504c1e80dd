"""The request body decoder, fed arbitrary bytes: a value or a 400/422 naming why, never a crash.

Property-based (hypothesis): raw bytes; JSON documents of the right shape with bytes spliced
in (invalid UTF-8 inside strings, the case that once was a 500); nesting of any depth.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microforum.services.http import HttpError, decode_body
from microforum.services.model import (
    NewPost,
    NewThread,
    NewUser,
    PostChanges,
    ThreadChanges,
    UserChanges,
)

MODELS = [NewUser, UserChanges, NewThread, ThreadChanges, NewPost, PostChanges]
FIELDS = ["username", "name", "bio", "title", "createdBy", "thread", "user", "text"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5).map(
    lambda d: json.dumps(d).encode()
)


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """A JSON document with some bytes put in somewhere (often inside a string)."""
    doc = draw(documents)
    at = draw(st.integers(0, len(doc)))
    return doc[:at] + draw(st.binary(min_size=1, max_size=4)) + doc[at:]


def _decodes_or_refuses(body: bytes, model: type) -> None:
    try:
        decode_body(body, model)
    except HttpError as exc:
        assert exc.status in (400, 422), exc.detail
        assert exc.detail


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), model=st.sampled_from(MODELS))
def test_arbitrary_bytes(body: bytes, model: type) -> None:
    _decodes_or_refuses(body, model)


@settings(max_examples=300, deadline=None)
@given(body=spliced() | documents, model=st.sampled_from(MODELS))
def test_json_documents_with_bytes_spliced_in(body: bytes, model: type) -> None:
    _decodes_or_refuses(body, model)


@given(depth=st.integers(1, 200_000), opener=st.sampled_from([b"[", b'{"a":', b'{"username":[']))
@settings(max_examples=30, deadline=None)
def test_any_nesting(depth: int, opener: bytes) -> None:
    _decodes_or_refuses(opener * depth, NewUser)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"username": "\xff", "name": "x"}', 400, "byte 0xff at offset 14"),
        (b'{"username": "ok", "name": "caf\xc3"}', 400, "not valid UTF-8"),
        (b'{"username": "ok", "name": "\\ud800"}', 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 422, "Expected `object`"),
        (b'{"username": "ok", "name": "x", "bio": ' + b"9" * 5000 + b"}", 422, "bio"),
    ],
    ids=["bad-utf8-in-string", "truncated-utf8", "lone-surrogate", "deep-array", "huge-number"],
)
def test_named_cases(body: bytes, status: int, says: str) -> None:
    with pytest.raises(HttpError) as caught:
        decode_body(body, NewUser)
    assert caught.value.status == status and says in caught.value.detail
