# syntax=docker/dockerfile:1
# The microforum services' images: one Dockerfile, one final stage per service.
#
#   docker build --target users -t microforum/users .       (or: microforum images build users)
#
# Every service is the same Python package started as `microforum serve NAME`, so the four
# images share all layers but their last stage (a few bytes: the CMD and a label). A SERVICE
# build arg could not reach an exec-form CMD (CMD takes no variables), and a shell-form CMD
# would put /bin/sh between the engine and the server, eating SIGTERM.
#
# Users with Docker Hub build FROM python:3.12-slim; machines without a registry build FROM a
# local base: --build-arg BASE_IMAGE=localhost/python-base:bookworm (tests/images/make_base_image.sh).
ARG BASE_IMAGE=python:3.12-slim

# ---- build stage: install the package and its dependencies into a venv -------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/microforum
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer survives edits to the source.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/microforum/bin/pip install --requirement requirements.txt
COPY . .
RUN /opt/microforum/bin/pip install --no-deps . \
 && /opt/microforum/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/microforum/bin/python -m compileall -q /opt/microforum/lib >/dev/null

# ---- runtime: the venv only; no compilers, sources, tests or pip caches --------------------
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 microforum \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home microforum \
 && mkdir -p /data && chown microforum:microforum /data
COPY --from=build /opt/microforum /opt/microforum
ENV PATH=/opt/microforum/bin:$PATH \
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
HEALTHCHECK --interval=6s --timeout=5s --start-period=5s --retries=2 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('PORT', '3000'), timeout=4).read()"]
# ECS and `podman stop` send the STOPSIGNAL, then SIGKILL after the stop timeout; the server
# drains in-flight requests on SIGTERM and exits 0.
STOPSIGNAL SIGTERM

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
