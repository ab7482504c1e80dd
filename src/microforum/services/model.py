"""The forum's data, as msgspec types stacked by purpose: what is stored and answered
(`User`, `Thread`, `Post`), what a client sends to create (`NewUser`, ...) and to change
(`UserChanges`, ...). The rules of every field live here, once; msgspec checks them while
decoding and the OpenAPI document is generated from them.

Field names and order are the original API's (`id, username, name, bio`; `id, title,
createdBy`; `thread, text, user`); posts gained an `id`, and every resource `created_at` and
`updated_at` (RFC 3339 in UTC, `2026-12-05T03:22:10.123Z`), added last.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

MAX_ID = 2**63 - 1  # ids are 64-bit integers in both SQLite and PostgreSQL
USERNAME_PATTERN = "^[A-Za-z0-9_.-]+$"
# Free text may hold any character but NUL, which PostgreSQL's text type cannot store.
TEXT_PATTERN = "^[^\\x00]*$"

Id = Annotated[int, Meta(ge=1, le=MAX_ID, description="A positive 64-bit id")]
Username = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=40,
        pattern=USERNAME_PATTERN,
        description="1-40 characters: letters A-Z a-z, digits, '_', '.', '-'; unique, ignoring case",
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=100, pattern=TEXT_PATTERN)]
Bio = Annotated[str, Meta(max_length=1000, pattern=TEXT_PATTERN)]
Title = Annotated[str, Meta(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
PostText = Annotated[str, Meta(min_length=1, max_length=10_000, pattern=TEXT_PATTERN)]


class User(Struct):
    """A user as stored and answered."""

    id: int
    username: str
    name: str
    bio: str
    created_at: str
    updated_at: str


class Thread(Struct, rename={"created_by": "createdBy"}):
    """A thread as stored and answered; `createdBy` is a user id."""

    id: int
    title: str
    created_by: int
    created_at: str
    updated_at: str


class Post(Struct):
    """A post as stored and answered; `thread` and `user` are ids."""

    thread: int
    text: str
    user: int
    id: int
    created_at: str
    updated_at: str


class NewUser(Struct, forbid_unknown_fields=True):
    """The body of POST /api/users."""

    username: Username
    name: Name
    bio: Bio = ""


class UserChanges(Struct, forbid_unknown_fields=True):
    """The body of PATCH /api/users/{userId}: the fields to change."""

    username: Username | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    bio: Bio | UnsetType = UNSET


class NewThread(Struct, forbid_unknown_fields=True, rename={"created_by": "createdBy"}):
    """The body of POST /api/threads; `createdBy` must be an existing user."""

    title: Title
    created_by: Id


class ThreadChanges(Struct, forbid_unknown_fields=True):
    """The body of PATCH /api/threads/{threadId}: a new title (the author cannot change)."""

    title: Title


class NewPost(Struct, forbid_unknown_fields=True):
    """The body of POST /api/posts; `thread` and `user` must exist."""

    thread: Id
    text: PostText
    user: Id


class PostChanges(Struct, forbid_unknown_fields=True):
    """The body of PATCH /api/posts/{postId}: new text (thread and author cannot change)."""

    text: PostText


def changes_of(changes: Struct) -> dict[str, object]:
    """The fields a PATCH body actually set, by attribute name."""
    return {
        name: value for name in changes.__struct_fields__ if (value := getattr(changes, name)) is not UNSET
    }


__all__ = [
    "MAX_ID",
    "NewPost",
    "NewThread",
    "NewUser",
    "Post",
    "PostChanges",
    "Thread",
    "ThreadChanges",
    "User",
    "UserChanges",
    "changes_of",
    "msgspec",
]
