#!/usr/bin/env bash
# Make the local Python base image the container tests build on: localhost/python-base:bookworm.
#
# There is no Docker Hub here, so `python:3.12-slim` cannot be pulled; this builds a small
# Debian 12 root file system with mmdebstrap (python3 + a venv at /opt/venv on PATH, so a
# Dockerfile written for python:*-slim can `pip install`) and imports it into podman.
# The result is saved as a tarball in a cache directory and loaded from there next time
# (making it costs ~60 s; loading it ~3 s). See ../../../shared/CONTAINERS.md for the facts.
#
# usage: make_base_image.sh [IMAGE]        env: MICROFORUM_IMAGE_CACHE (cache directory)
set -euo pipefail

image="${1:-localhost/python-base:bookworm}"
cache_dir="${MICROFORUM_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/microforum}"
cache_tar="$cache_dir/$(echo "$image" | tr '/:' '__').tar"

if podman image exists "$image"; then
  echo "base image $image: present"
  exit 0
fi
if [ -s "$cache_tar" ] && podman load --quiet --input "$cache_tar" >/dev/null; then
  echo "base image $image: loaded from $cache_tar"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Extra CA certificates of this host (a TLS-inspecting egress proxy): pip inside image builds
# must trust them too, or it cannot verify the package index.
mkdir -p "$work/ca"
cp /usr/local/share/ca-certificates/*.crt "$work/ca/" 2>/dev/null || true

echo "base image $image: building with mmdebstrap (about a minute)"
# `passwd` gives the Dockerfile `useradd`, as python:*-slim has it. Documentation, man pages
# and locales are left out to keep the image small.
mmdebstrap --variant=apt --quiet \
  --include=python3,python3-venv,ca-certificates,passwd \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\" && cp -r $work/ca/. \"\$1/usr/local/share/ca-certificates/\"" \
  --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null' \
  --customize-hook='chroot "$1" python3 -m venv /opt/venv' \
  --customize-hook='chroot "$1" /opt/venv/bin/python -m pip --version >/dev/null' \
  bookworm "$work/rootfs.tar"

podman import --quiet \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$work/rootfs.tar" "$image" >/dev/null

mkdir -p "$cache_dir"
podman save --quiet --output "$cache_tar.partial" "$image" && mv "$cache_tar.partial" "$cache_tar"
echo "base image $image: built and cached in $cache_tar"
