"""ETags and the conditional headers' parsing, without a server (RFC 9110 section 13)."""

from __future__ import annotations

import pytest

from microforum.services import conditional
from microforum.services.conditional import etag_of, if_match, none_match, with_etag
from microforum.services.http import HttpError, Response, encode_json
from microforum.services.model import User

ANN = User(7, "ann", "Ann", "", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z")


def test_an_etag_is_a_strong_tag_of_the_bytes() -> None:
    assert etag_of(b"[1]") == etag_of(b"[" + b"1]") != etag_of(b"[2]")
    assert etag_of(b"[1]").startswith('"') and not etag_of(b"[1]").startswith("W/")


def test_remembered_tags_stay_within_their_budget() -> None:
    for n in range(3000):
        etag_of(b"x" * 1000 + str(n).encode())
    assert conditional._memo_size[0] <= conditional.MEMO_BYTES
    assert sum(map(len, conditional._memo)) == conditional._memo_size[0]


def test_a_created_records_tag_is_not_remembered() -> None:
    """Under a load of POSTs every 201 body is new: remembering them only held memory."""
    conditional._memo.clear()
    conditional._memo_size[0] = 0
    created = with_etag("POST", None, Response(201, b'{"id": 91}', "application/json"))
    read = with_etag("GET", None, Response(200, b'{"id": 92}', "application/json"))
    assert dict(created.headers)["etag"] == etag_of(b'{"id": 91}', remember=False)
    assert list(conditional._memo) == [read.body]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"a"', True),
        ('W/"a"', True),
        ('"b", "a"', True),
        ("*", True),
        ('"b"', False),
        ("", False),
    ],
)
def test_if_none_match_compares_weakly(header: str, expected: bool) -> None:
    assert none_match(header, '"a"') is expected


def test_with_etag_answers_304_only_for_reads() -> None:
    body = b'{"id":1}'
    tag = etag_of(body)
    assert with_etag("GET", tag, Response(200, body)).status == 304
    assert with_etag("PATCH", tag, Response(200, body)).status == 200
    assert with_etag("GET", None, Response(404, body)).headers == []


def test_if_match_is_strong_and_names_the_current_tag() -> None:
    current = etag_of(encode_json(ANN))
    assert if_match(None) is None
    if_match(current)(ANN)  # type: ignore[misc]
    if_match(f'"x", {current}')(ANN)  # type: ignore[misc]
    if_match("*")(ANN)  # type: ignore[misc]
    with pytest.raises(HttpError) as refused:
        if_match(f"W/{current}")(ANN)  # type: ignore[misc]
    assert (refused.value.status, refused.value.headers) == (412, [("etag", current)])
    with pytest.raises(HttpError) as malformed:
        if_match(" , ")
    assert malformed.value.status == 400
