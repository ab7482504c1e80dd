# syntax=docker/dockerfile:1
# The microforum services' images: one Dockerfile, one final stage per service.
#
#   docker build --target users -t microforum/users .       (or: microforum images build users)
#
# Every service is the same Python package started as `microforum serve NAME`, so the four
# images share every layer; their final stages add only metadata (a label and the CMD). A
# SERVICE build arg could not reach an exec-form CMD (CMD takes no variables), and a shell-form
# CMD would put /bin/sh between the engine and the server, eating SIGTERM.
#
# Layers, for small pushes (docs/containers.md): the locked dependencies first (changed only
# when requirements/images.txt is), the project's own code last (about half a megabyte).
#
# Users with Docker Hub build FROM python:3.12-slim (pin it: --build-arg
# BASE_IMAGE=python:3.12-slim@sha256:...); machines without a registry build FROM a base made
# from Debian packages: scripts/make_base_image.sh, then --build-arg BASE_IMAGE=localhost/python-base:bookworm.
ARG BASE_IMAGE=python:3.12-slim

# ---- venv: the locked dependencies, every file checked against its sha256 ------------------
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY requirements/images.txt /tmp/requirements.txt
RUN python3 -m venv /opt/microforum \
 && /opt/microforum/bin/pip install --require-hashes --only-binary=:all: --no-deps \
      --requirement /tmp/requirements.txt

# ---- app: the project itself, into /app (its own layer in the runtime stage) --------------
FROM venv AS app
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/microforum/bin/pip install --no-deps --no-build-isolation --no-compile --target /app . \
 && /opt/microforum/bin/python -m compileall -q --invalidation-mode unchecked-hash /app

# ---- deps: the venv without the build tools (pip, setuptools, wheel) -----------------------
FROM venv AS deps
RUN /opt/microforum/bin/pip uninstall --yes --quiet setuptools wheel packaging pip

# ---- runtime: dependencies, then the code; no compilers, sources, tests or pip -------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.description="microforum: a forum API as Python microservices" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 microforum \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home microforum \
 && mkdir -p /data && chown microforum:microforum /data
ENV PATH=/app/bin:/opt/microforum/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PORT=3000 \
    HOST=0.0.0.0 \
    DATA_DIR=/data
WORKDIR /data
USER microforum:microforum
# HOST: `microforum serve` listens on 127.0.0.1 unless told otherwise; in a container it must
# listen on every interface for the published (bridge) port to reach it. An environment
# variable rather than a --host flag in CMD: `up --containers` runs the images on the host's
# network and passes HOST=127.0.0.1, which a flag would override.
# The container port of every task definition (spec/defaults.py CONTAINER_PORT).
EXPOSE 3000
# Mirrors the target group health check (spec/defaults.py: path /, interval 6 s, timeout 5 s,
# 2 failures); tests/images checks the two stay equal. No curl in slim images: use Python.
# `microforum up --containers` runs without it (--no-healthcheck): the local ALB checks health.
HEALTHCHECK --interval=6s --timeout=5s --start-period=5s --retries=2 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('PORT', '3000'), timeout=4).read()"]
# ECS and `podman stop` send the STOPSIGNAL, then SIGKILL after the stop timeout; the server
# drains in-flight requests on SIGTERM and exits 0.
STOPSIGNAL SIGTERM
COPY --from=deps /opt/microforum /opt/microforum
COPY --from=app /app /app
# What the image was built from (OCI annotations: source, revision, created, version, base) is
# added by `microforum images build` in a last stage of literal LABELs after the service's
# (docs/containers.md): a LABEL reading build args, or `--label`, was served from podman's layer
# cache with an earlier build's values.

FROM runtime AS users
LABEL org.opencontainers.image.title="microforum-users"
CMD ["microforum", "serve", "users"]

FROM runtime AS threads
LABEL org.opencontainers.image.title="microforum-threads"
CMD ["microforum", "serve", "threads"]

FROM runtime AS posts
LABEL org.opencontainers.image.title="microforum-posts"
CMD ["microforum", "serve", "posts"]

# Last, so a plain `docker build .` gives the monolith (the listener's default target).
FROM runtime AS monolith
LABEL org.opencontainers.image.title="microforum-monolith"
CMD ["microforum", "serve", "monolith"]
