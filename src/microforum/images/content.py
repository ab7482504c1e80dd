"""The build context and the tag that names its content.

The build context is the handful of files the Dockerfile copies (see .dockerignore): the
Dockerfile, the lock file, pyproject.toml, README.md and src/. `content_tag` hashes exactly
those files' paths and bytes, with the base image and platform, into an image tag: the same
source gives the same tag on every machine and at every commit, and any edit gives a new one.
`deploy` tags what it pushes with it (ECR's tags are immutable: an unchanged source is not
pushed again), and `up --containers` uses it to see that a service's source changed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from microforum.errors import MicroforumError

CONTEXT_FILES = ("Dockerfile", ".dockerignore", "requirements/images.txt", "pyproject.toml", "README.md")
CONTEXT_DIRS = ("src",)
TAG_PREFIX = "src-"  # a content tag: TAG_PREFIX + 16 hex digits of a sha256
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".so")


def content_tag(
    root: Path | None = None, *, base_image: str | None = None, platform: str | None = None
) -> str:
    """The image tag for the build context of `root` (default: this checkout): `src-<16 hex>`.

    The one function that decides image tags by content; `base_image` and `platform` are part
    of what is hashed, since they change the image built from the same files.
    """
    files = context_files(root or project_root())
    return content_digest({name: path.read_bytes() for name, path in files.items()}, base_image, platform)


def content_digest(files: Mapping[str, bytes], base_image: str | None, platform: str | None) -> str:
    """The content tag of `files` (relative path -> bytes) built on `base_image` for `platform`."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    digest.update(f"base={base_image or ''}\0platform={platform or ''}".encode())
    return TAG_PREFIX + digest.hexdigest()[:16]


def context_files(root: Path) -> dict[str, Path]:
    """The files of the build context under `root`, by path relative to it (sorted)."""
    found = {name: root / name for name in CONTEXT_FILES if (root / name).is_file()}
    for top in CONTEXT_DIRS:
        for path in sorted((root / top).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and not _skipped(relative):
                found[relative.as_posix()] = path
    return dict(sorted(found.items()))


def _skipped(relative: Path) -> bool:
    return any(part in _SKIPPED_DIRS or part.endswith(_SKIPPED_SUFFIXES) for part in relative.parts)


@contextmanager
def snapshot(root: Path) -> Iterator[Path]:
    """A copy of the build context, so every image of one build has the same code.

    Built from the live tree, an edit made while the images build would give the services
    different code (and a content tag that does not match them).
    """
    with tempfile.TemporaryDirectory(prefix="microforum-build-") as tmp:
        copy = Path(tmp)
        for name, path in context_files(root).items():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy / name)
        yield copy


def project_root() -> Path:
    """The source checkout holding the Dockerfile (this package's checkout, else the cwd)."""
    for candidate in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (candidate / "Dockerfile").is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise MicroforumError(
        "build images: no Dockerfile found",
        hint="run from a microforum source checkout (the directory with Dockerfile)",
    )
