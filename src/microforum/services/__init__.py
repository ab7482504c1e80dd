"""The forum services: users, threads, posts, and the monolith (all three in one process).

`microforum serve NAME` runs one (see `settings` for its environment). Each is a small raw
app (`app`) served by its own HTTP/1.1 server (`server`, `connection`, `http1`), with one
router module per resource (`routes/`), its data in SQLite or PostgreSQL (`storage`, `schema`,
`store`), and references to other services' resources checked over HTTP (`refs`).

The API, beyond the original read routes (answered exactly as the original Koa services did):

| route | answers |
|---|---|
| `POST /api/users` | 201 + the user; 409 if the username is taken (case-insensitive) |
| `PATCH /api/users/{id}` | 200 + the user; fields `username`, `name`, `bio` |
| `DELETE /api/users/{id}` | 204; **409 while a thread or post refers to the user** |
| `POST /api/threads` | 201; `createdBy` must be an existing user (422 otherwise) |
| `PATCH /api/threads/{id}` | 200; field `title` |
| `DELETE /api/threads/{id}` | 204; **409 while the thread has posts** |
| `POST /api/posts` | 201; `thread` and `user` must exist (422 naming the field otherwise) |
| `GET/PATCH/DELETE /api/posts/{id}` | the post; `text` can change |
| any list `?limit=N&cursor=C` | one page (a JSON array); `Link` rel=next, `X-Next-Cursor` |

Errors are JSON problem bodies naming the field (400 malformed JSON or query, 413 body over
1 MiB, 415 not JSON, 422 invalid field, 404 unknown id or path, 405 + Allow, 409 conflicts,
503 + the dependency's name when another service cannot answer; nothing is written then).
The OpenAPI document is at `/api/<service>/openapi.json`.
"""
