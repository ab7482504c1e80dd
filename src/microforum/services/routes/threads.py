"""`/api/threads`: the original list and lookup, plus create, retitle and delete.

A new thread's `createdBy` must be an existing user (asked of the users service: 422 when
there is none, 503 when it cannot answer). Deleting a thread that has posts answers 409.
"""

from __future__ import annotations

import time
from typing import Any

from microforum.services import lifecycle, store
from microforum.services.conditional import if_match
from microforum.services.http import Problem, Request, Response, json_response
from microforum.services.model import MAX_ID, NewThread, Thread, ThreadChanges
from microforum.services.params import ALL, fetch_limit, int_query, page_of, paginate
from microforum.services.routes.common import (
    BAD_BODY,
    BAD_IF_MATCH,
    BAD_QUERY,
    IN_FLIGHT,
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

TAG = "threads"


def _location(thread: Thread) -> str:
    return f"/api/threads/{thread.id}"


BY_AUTHOR = ("createdBy", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Only threads by this user")


def routes(ctx: Context) -> list[Route]:
    """The threads routes, bound to `ctx`."""
    db = ctx.db("threads")
    fresh: SharedChecks[Any] = SharedChecks()  # ?referable=true reads

    async def list_threads(request: Request) -> Response:
        page = page_of(request)
        author = int_query(request, "createdBy")
        if page is ALL and author is None:
            return json_body(await db.read_json("threads", store.list_threads))
        threads = await db.read(
            store.list_threads, after=page.after, limit=fetch_limit(page), created_by=author
        )
        threads, headers = paginate(threads, page, request)
        return json_response(threads, headers=headers)

    async def get_thread(request: Request) -> Response:
        thread_id = path_id(request.params, "threadId", "thread")
        if referable_asked(request):  # from the database, never a cache (docs/consistency.md)
            referable = await fresh.ask(
                str(thread_id), lambda: db.read(store.referable_thread, thread_id=thread_id)
            )  # concurrent ones share a read sent after each was asked (sharedcheck.py)
            if referable is None:
                raise not_found("thread", thread_id)
            return json_response(referable)
        body = await db.read_json(("thread", thread_id), store.get_thread, thread_id=thread_id)
        if body is None:
            raise not_found("thread", thread_id)
        return json_body(body)

    async def create_thread(request: Request) -> Response:
        new = await request.json(NewThread)
        author = lifecycle.Requirement(
            "createdBy", f"createdBy: no user with id {new.created_by}",
            lambda fresh: ctx.refs.user_referable(new.created_by, request.trace, fresh=fresh),
        )  # fmt: skip
        spec = lifecycle.Create("threads", store.create_thread, {"new": new}, new, _location, [author])
        return await lifecycle.create(db, request, spec)

    async def update_thread(request: Request) -> Response:
        thread_id = path_id(request.params, "threadId", "thread")
        changes = await request.json(ThreadChanges)
        thread = await db.write(
            store.update_thread,
            thread_id=thread_id,
            title=changes.title,
            now=time.time(),
            expect=if_match(request.header("if-match")),
        )
        if thread is None:
            raise not_found("thread", thread_id)
        return json_response(thread)

    async def delete_thread(request: Request) -> Response:
        thread_id = path_id(request.params, "threadId", "thread")
        return await lifecycle.delete(
            db, table="threads", record_id=thread_id, what="thread",
            referenced=lambda: ctx.refs.thread_referenced(thread_id, request.trace),
            expect=if_match(request.header("if-match")),
        )  # fmt: skip

    return [
        Route(
            "/api/threads",
            {
                "GET": Operation(
                    list_threads,
                    "List threads (the original answer)",
                    tag=TAG,
                    responses={200: ("Threads by id", list[Thread]), **BAD_QUERY, **READ},
                    query=[*PAGE_QUERY, BY_AUTHOR],
                ),
                "POST": Operation(
                    create_thread,
                    "Create a thread",
                    body=NewThread,
                    tag=TAG,
                    responses={201: ("Created", Thread), **BAD_BODY, **IN_FLIGHT, **UNAVAILABLE},
                ),
            },
        ),
        Route(
            "/api/threads/{threadId}",
            {
                "GET": Operation(
                    get_thread,
                    "One thread (the original answer)",
                    tag=TAG,
                    responses={200: ("The thread", Thread), **NOT_FOUND, **READ},
                    query=[REFERABLE],
                ),
                "PATCH": Operation(
                    update_thread,
                    "Retitle a thread",
                    body=ThreadChanges,
                    tag=TAG,
                    responses={
                        200: ("Changed", Thread),
                        **NOT_FOUND,
                        **BAD_BODY,
                        **PRECONDITION,
                        **WRITE_UNAVAILABLE,
                    },
                ),
                "DELETE": Operation(
                    delete_thread,
                    "Delete a thread without posts",
                    tag=TAG,
                    responses={
                        204: ("Deleted", None),
                        **NOT_FOUND,
                        409: ("Posts are in the thread, or another delete of it is under way", Problem),
                        **BAD_IF_MATCH,
                        **PRECONDITION,
                        **UNAVAILABLE,
                    },
                ),
            },
        ),
    ]
