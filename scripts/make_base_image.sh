#!/usr/bin/env bash
# Make a Python base image from Debian 12 packages, for machines that cannot pull
# python:3.12-slim (no Docker Hub): localhost/python-base:bookworm by default.
#
#   scripts/make_base_image.sh                       # about half a minute, once
#   microforum images build --base-image localhost/python-base:bookworm
#
# A minimal Debian root file system made with mmdebstrap: the Essential packages, python3 with
# venv, CA certificates and passwd's useradd, as python:*-slim has them; no apt, documentation,
# man pages or locales; /usr merged by mmdebstrap's hook rather than the usrmerge package, which
# would pull in Perl. The host's extra CA certificates are copied in (a TLS-inspecting proxy):
# pip inside image builds must trust them too. The image is saved as a tarball in a cache
# directory and loaded from there next time. docs/containers.md explains it.
#
# usage: make_base_image.sh [IMAGE]     env: MICROFORUM_IMAGE_CACHE (cache directory)
# needs: apt-get install --no-install-recommends podman mmdebstrap
set -euo pipefail

image="${1:-localhost/python-base:bookworm}"
cache_dir="${MICROFORUM_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/microforum}"
# The recipe is this file: an image or a cached tarball made by another version is remade.
recipe="$(sha256sum "$0" | cut -c1-16)"
stem="$cache_dir/$(echo "$image" | tr '/:' '__')"
cache_tar="$stem-$recipe.tar"
label=io.microforum.base.recipe

have() { [ "$(podman image inspect --format "{{index .Labels \"$label\"}}" "$image" 2>/dev/null)" = "$recipe" ]; }

if have; then
  echo "base image $image: present"
  exit 0
fi
if [ -s "$cache_tar" ] && podman load --quiet --input "$cache_tar" >/dev/null && have; then
  echo "base image $image: loaded from $cache_tar"
  exit 0
fi

for tool in mmdebstrap podman; do
  if ! command -v "$tool" >/dev/null; then
    echo "make_base_image.sh: $tool is not installed (apt-get install --no-install-recommends $tool)" >&2
    exit 1
  fi
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ca"
cp /usr/local/share/ca-certificates/*.crt "$work/ca/" 2>/dev/null || true

echo "base image $image: building with mmdebstrap (about half a minute)"
mmdebstrap --variant=essential --quiet \
  --include=python3,python3-venv,ca-certificates,passwd \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\" && cp -r $work/ca/. \"\$1/usr/local/share/ca-certificates/\"" \
  --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null 2>&1' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  bookworm "$work/rootfs.tar"

podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL $label=$recipe" \
  --change 'CMD ["python3"]' \
  "$work/rootfs.tar" "$image" >/dev/null

mkdir -p "$cache_dir"
rm -f "$stem".tar "$stem"-*.tar
podman save --quiet --output "$cache_tar.partial" "$image" && mv "$cache_tar.partial" "$cache_tar"
echo "base image $image: built and cached in $cache_tar"
