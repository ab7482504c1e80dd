"""`/api/threads`: the original list and lookup, plus create, retitle and delete.

A new thread's `createdBy` must be an existing user (asked of the users service: 422 when
there is none, 503 when it cannot answer). Deleting a thread that has posts answers 409.
"""

from __future__ import annotations

from microforum.services import store
from microforum.services.http import HttpError, Problem, Request, Response, json_response
from microforum.services.model import MAX_ID, NewThread, Thread, ThreadChanges
from microforum.services.params import ALL, fetch_limit, int_query, page_of, paginate
from microforum.services.routes.common import (
    BAD_BODY,
    BAD_QUERY,
    NOT_FOUND,
    PAGE_QUERY,
    UNAVAILABLE,
    Context,
    json_body,
    not_found,
    path_id,
)
from microforum.services.routing import Operation, Route

TAG = "threads"
BY_AUTHOR = ("createdBy", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Only threads by this user")


def routes(ctx: Context) -> list[Route]:
    """The threads routes, bound to `ctx`."""
    db = ctx.db("threads")

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
        body = await db.read_json(("thread", thread_id), store.get_thread, thread_id=thread_id)
        if body is None:
            raise not_found("thread", thread_id)
        return json_body(body)

    async def create_thread(request: Request) -> Response:
        new = await request.json(NewThread)
        if not await ctx.refs.user_exists(new.created_by):
            raise HttpError(422, f"createdBy: no user with id {new.created_by}", field="createdBy")
        thread = await db.write(store.create_thread, new=new)
        return json_response(thread, 201, [("location", f"/api/threads/{thread.id}")])

    async def update_thread(request: Request) -> Response:
        thread_id = path_id(request.params, "threadId", "thread")
        changes = await request.json(ThreadChanges)
        thread = await db.write(store.update_thread, thread_id=thread_id, title=changes.title)
        if thread is None:
            raise not_found("thread", thread_id)
        return json_response(thread)

    async def delete_thread(request: Request) -> Response:
        thread_id = path_id(request.params, "threadId", "thread")
        if await db.read(store.get_thread, thread_id=thread_id) is None:
            raise not_found("thread", thread_id)
        if await ctx.refs.thread_referenced(thread_id):
            raise HttpError(409, f"thread {thread_id} still has posts; delete those first")
        if not await db.write(store.delete_thread, thread_id=thread_id):
            raise not_found("thread", thread_id)
        return Response(204, b"", None)

    return [
        Route(
            "/api/threads",
            {
                "GET": Operation(
                    list_threads,
                    "List threads (the original answer)",
                    tag=TAG,
                    responses={200: ("Threads by id", list[Thread]), **BAD_QUERY},
                    query=[*PAGE_QUERY, BY_AUTHOR],
                ),
                "POST": Operation(
                    create_thread,
                    "Create a thread",
                    body=NewThread,
                    tag=TAG,
                    responses={201: ("Created", Thread), **BAD_BODY, **UNAVAILABLE},
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
                    responses={200: ("The thread", Thread), **NOT_FOUND},
                ),
                "PATCH": Operation(
                    update_thread,
                    "Retitle a thread",
                    body=ThreadChanges,
                    tag=TAG,
                    responses={200: ("Changed", Thread), **NOT_FOUND, **BAD_BODY},
                ),
                "DELETE": Operation(
                    delete_thread,
                    "Delete a thread without posts",
                    tag=TAG,
                    responses={
                        204: ("Deleted", None),
                        **NOT_FOUND,
                        409: ("Posts are in the thread", Problem),
                        **UNAVAILABLE,
                    },
                ),
            },
        ),
    ]
