"""`/api/posts`: the original list, in-thread and by-user lists, plus create, edit and delete.

A new post's `thread` and `user` must exist (asked of the threads and users services: 422
naming the field when missing, 503 naming the service when it cannot answer). `in-thread` and
`by-user` answer `[]` for an id nothing matches, as the original did.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from microforum.services import lifecycle, store
from microforum.services.conditional import if_match
from microforum.services.http import Request, Response, json_response
from microforum.services.model import NewPost, Post, PostChanges
from microforum.services.params import ALL, fetch_limit, loose_id, page_of, paginate
from microforum.services.routes.common import (
    BAD_BODY,
    BAD_IF_MATCH,
    BAD_QUERY,
    IN_FLIGHT,
    NOT_FOUND,
    PAGE_QUERY,
    PRECONDITION,
    READ,
    UNAVAILABLE,
    WRITE_UNAVAILABLE,
    Context,
    json_body,
    not_found,
    path_id,
)
from microforum.services.routing import Operation, Route

TAG = "posts"


def _location(post: Post) -> str:
    return f"/api/posts/{post.id}"


def routes(ctx: Context) -> list[Route]:
    """The posts routes, bound to `ctx`."""
    db = ctx.db("posts")

    async def _list(request: Request, key: Hashable, **where: int) -> Response:
        page = page_of(request)
        if page is ALL:  # the original answer, whole: cached under `key`
            return json_body(await db.read_json(key, store.list_posts, **where))
        posts = await db.read(store.list_posts, after=page.after, limit=fetch_limit(page), **where)
        posts, headers = paginate(posts, page, request)
        return json_response(posts, headers=headers)

    async def list_posts(request: Request) -> Response:
        return await _list(request, "posts")

    async def in_thread(request: Request) -> Response:
        thread = loose_id(request.params["threadId"])
        return await _list(request, ("in-thread", thread), thread=thread) if thread else json_response([])

    async def by_user(request: Request) -> Response:
        user = loose_id(request.params["userId"])
        return await _list(request, ("by-user", user), user=user) if user else json_response([])

    async def get_post(request: Request) -> Response:
        post_id = path_id(request.params, "postId", "post")
        body = await db.read_json(("post", post_id), store.get_post, post_id=post_id)
        if body is None:
            raise not_found("post", post_id)
        return json_body(body)

    async def create_post(request: Request) -> Response:
        new = await request.json(NewPost)
        trace = request.trace
        requirements = [
            lifecycle.Requirement(
                "thread",
                f"thread: no thread with id {new.thread}",
                lambda fresh: ctx.refs.thread_referable(new.thread, trace, fresh=fresh),
            ),
            lifecycle.Requirement(
                "user",
                f"user: no user with id {new.user}",
                lambda fresh: ctx.refs.user_referable(new.user, trace, fresh=fresh),
            ),
        ]
        spec = lifecycle.Create("posts", store.create_post, {"new": new}, new, _location, requirements)
        return await lifecycle.create(db, request, spec)

    async def update_post(request: Request) -> Response:
        post_id = path_id(request.params, "postId", "post")
        changes = await request.json(PostChanges)
        post = await db.write(
            store.update_post,
            post_id=post_id,
            text=changes.text,
            now=time.time(),
            expect=if_match(request.header("if-match")),
        )
        if post is None:
            raise not_found("post", post_id)
        return json_response(post)

    async def delete_post(request: Request) -> Response:
        post_id = path_id(request.params, "postId", "post")
        expect = if_match(request.header("if-match"))
        if not await db.write(store.delete_post, post_id=post_id, expect=expect):
            raise not_found("post", post_id)
        return Response(204, b"", None)

    listed = {200: ("Posts by id", list[Post]), **BAD_QUERY, **READ}
    return [
        Route(
            "/api/posts",
            {
                "GET": Operation(
                    list_posts,
                    "List posts (the original answer)",
                    tag=TAG,
                    responses=listed,
                    query=PAGE_QUERY,
                ),
                "POST": Operation(
                    create_post,
                    "Create a post",
                    body=NewPost,
                    tag=TAG,
                    responses={201: ("Created", Post), **BAD_BODY, **IN_FLIGHT, **UNAVAILABLE},
                ),
            },
        ),
        Route(
            "/api/posts/in-thread/{threadId}",
            {
                "GET": Operation(
                    in_thread,
                    "Posts in a thread (the original answer)",
                    tag=TAG,
                    responses=listed,
                    query=PAGE_QUERY,
                ),
            },
        ),
        Route(
            "/api/posts/by-user/{userId}",
            {
                "GET": Operation(
                    by_user,
                    "Posts by a user (the original answer)",
                    tag=TAG,
                    responses=listed,
                    query=PAGE_QUERY,
                ),
            },
        ),
        Route(
            "/api/posts/{postId}",
            {
                "GET": Operation(
                    get_post,
                    "One post",
                    tag=TAG,
                    responses={200: ("The post", Post), **NOT_FOUND, **READ},
                ),
                "PATCH": Operation(
                    update_post,
                    "Edit a post's text",
                    body=PostChanges,
                    tag=TAG,
                    responses={
                        200: ("Changed", Post),
                        **NOT_FOUND,
                        **BAD_BODY,
                        **PRECONDITION,
                        **WRITE_UNAVAILABLE,
                    },
                ),
                "DELETE": Operation(
                    delete_post,
                    "Delete a post",
                    tag=TAG,
                    responses={
                        204: ("Deleted", None),
                        **NOT_FOUND,
                        **BAD_IF_MATCH,
                        **PRECONDITION,
                        **WRITE_UNAVAILABLE,
                    },
                ),
            },
        ),
    ]
