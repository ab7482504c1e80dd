"""Container images of the services: build them, push them, run them.

`build(services, tag=...)` builds one image per service from the project's Dockerfile with
docker (when its engine answers) or podman; `push(images, registry=..., ...)` logs in the way
ECR expects and pushes them. `deploy` uses both; `microforum images build|push` wraps them.
`content_tag()` is the tag that names the source's content (the default of both).
"""

from __future__ import annotations

from microforum.images.build import build
from microforum.images.content import content_tag
from microforum.images.engine import Engine, detect_engine
from microforum.images.push import push
from microforum.images.refs import local_ref, pushed_ref, repository_name

__all__ = [
    "Engine",
    "build",
    "content_tag",
    "detect_engine",
    "local_ref",
    "push",
    "pushed_ref",
    "repository_name",
]
