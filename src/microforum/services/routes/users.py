"""`/api/users`: the original list and lookup, plus create, change and delete.

Deleting a user that a thread or a post still refers to answers 409 (the threads and posts
services are asked first; 503 when they cannot answer). Usernames are unique ignoring case:
creating or renaming to a taken one answers 409.
"""

from __future__ import annotations

import time
from typing import Any

from microforum.services import lifecycle, store
from microforum.services.conditional import if_match
from microforum.services.http import Problem, Request, Response, json_response
from microforum.services.model import NewUser, User, UserChanges, changes_of
from microforum.services.params import ALL, fetch_limit, page_of, paginate
from microforum.services.routes.common import (
    BAD_BODY,
    BAD_IF_MATCH,
    BAD_QUERY,
    NOT_FOUND,
    PAGE_QUERY,
    PRECONDITION,
    READ,
    REFERABLE,
    UNAVAILABLE,
    WRITE_UNAVAILABLE,
    Context,
    json_body,
    not_found,
    path_id,
    referable_asked,
)
from microforum.services.routing import Operation, Route
from microforum.services.sharedcheck import SharedChecks

TAG = "users"


def _location(user: User) -> str:
    return f"/api/users/{user.id}"


CONFLICT = {409: ("The username is taken", Problem)}
CREATE_CONFLICT = {
    409: ("The username is taken, or a request with this Idempotency-Key is still being answered", Problem)
}


def routes(ctx: Context) -> list[Route]:
    """The users routes, bound to `ctx`."""
    db = ctx.db("users")
    fresh: SharedChecks[Any] = SharedChecks()  # ?referable=true reads

    async def list_users(request: Request) -> Response:
        page = page_of(request)
        if page is ALL:
            return json_body(await db.read_json("users", store.list_users))
        users = await db.read(store.list_users, after=page.after, limit=fetch_limit(page))
        users, headers = paginate(users, page, request)
        return json_response(users, headers=headers)

    async def get_user(request: Request) -> Response:
        user_id = path_id(request.params, "userId", "user")
        if referable_asked(request):  # from the database, never a cache (docs/consistency.md)
            referable = await fresh.ask(
                str(user_id), lambda: db.read(store.referable_user, user_id=user_id)
            )  # concurrent ones share a read sent after each was asked (sharedcheck.py)
            if referable is None:
                raise not_found("user", user_id)
            return json_response(referable)
        body = await db.read_json(("user", user_id), store.get_user, user_id=user_id)
        if body is None:
            raise not_found("user", user_id)
        return json_body(body)

    async def create_user(request: Request) -> Response:
        new = await request.json(NewUser)
        spec = lifecycle.Create("users", store.create_user, {"new": new}, new, _location, [])
        return await lifecycle.create(db, request, spec)

    async def update_user(request: Request) -> Response:
        user_id = path_id(request.params, "userId", "user")
        changes = changes_of(await request.json(UserChanges))
        user = await db.write(
            store.update_user,
            user_id=user_id,
            changes=changes,
            now=time.time(),
            expect=if_match(request.header("if-match")),
        )
        if user is None:
            raise not_found("user", user_id)
        return json_response(user)

    async def delete_user(request: Request) -> Response:
        user_id = path_id(request.params, "userId", "user")
        return await lifecycle.delete(
            db, table="users", record_id=user_id, what="user",
            referenced=lambda: ctx.refs.user_referenced(user_id, request.trace),
            expect=if_match(request.header("if-match")),
        )  # fmt: skip

    return [
        Route(
            "/api/users",
            {
                "GET": Operation(
                    list_users,
                    "List users (the original answer)",
                    tag=TAG,
                    responses={200: ("Users by id", list[User]), **BAD_QUERY, **READ},
                    query=PAGE_QUERY,
                ),
                "POST": Operation(
                    create_user,
                    "Create a user",
                    body=NewUser,
                    tag=TAG,
                    responses={201: ("Created", User), **BAD_BODY, **CREATE_CONFLICT, **WRITE_UNAVAILABLE},
                ),
            },
        ),
        Route(
            "/api/users/{userId}",
            {
                "GET": Operation(
                    get_user,
                    "One user (the original answer)",
                    tag=TAG,
                    responses={200: ("The user", User), **NOT_FOUND, **READ},
                    query=[REFERABLE],
                ),
                "PATCH": Operation(
                    update_user,
                    "Change a user",
                    body=UserChanges,
                    tag=TAG,
                    responses={
                        200: ("Changed", User),
                        **NOT_FOUND,
                        **BAD_BODY,
                        **CONFLICT,
                        **PRECONDITION,
                        **WRITE_UNAVAILABLE,
                    },
                ),
                "DELETE": Operation(
                    delete_user,
                    "Delete a user nobody refers to",
                    tag=TAG,
                    responses={
                        204: ("Deleted", None),
                        **NOT_FOUND,
                        409: (
                            "Threads or posts refer to the user, or another delete of it is under way",
                            Problem,
                        ),
                        **BAD_IF_MATCH,
                        **PRECONDITION,
                        **UNAVAILABLE,
                    },
                ),
            },
        ),
    ]
