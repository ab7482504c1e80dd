"""One router module per resource (users, threads, posts) plus the root and the OpenAPI route."""
