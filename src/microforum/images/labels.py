"""The OCI labels every image carries: what it was built from, when, and from which base.

Keys from the OCI image spec's annotations
(https://github.com/opencontainers/image-spec/blob/main/annotations.md):
`org.opencontainers.image.source` (where the source is: the checkout's `origin` remote),
`revision` (the commit; `-dirty` appended when the build context differs from it), `created`
(RFC 3339; `SOURCE_DATE_EPOCH` is honoured for reproducible builds), `version` (the package's)
and `base.name` / `base.digest` (the image the build started FROM). `oci_labels` decides from
facts; `gather_labels` collects them (git, the clock); `labelled_stage` writes them as a last
Dockerfile stage of literal LABELs. Literal, because podman 4.3 (buildah 1.28) keys its layer
cache on the instruction's text: a LABEL reading build args, or a `--label`, was served from the
cache with an earlier build's values when the sources had not changed (docs/containers.md).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from microforum import __version__
from microforum.images.content import CONTEXT_DIRS, CONTEXT_FILES

PREFIX = "org.opencontainers.image."
_GIT_TIMEOUT = 10.0


def oci_labels(
    *,
    version: str,
    created: float,
    revision: str | None,
    source: str | None,
    base_name: str,
    base_digest: str | None,
) -> dict[str, str]:
    """The labels for these facts; a fact that is unknown (None) gives no label."""
    labels = {
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "revision": revision,
        "source": source,
        "base.name": base_name.split("@", 1)[0],
        "base.digest": base_digest.split("@", 1)[1] if base_digest and "@" in base_digest else None,
    }
    return {PREFIX + key: value for key, value in labels.items() if value}


LABELLED = "-labelled"  # the suffix of the stage `labelled_stage` adds after a service's


def labelled_stage(target: str, labels: Mapping[str, str]) -> str:
    """Dockerfile text for a stage FROM `target` that only adds `labels`, named target+LABELLED.

    Values are quoted with `$` and quotes escaped, so nothing in them is read as a variable.
    """
    pairs = " \\\n      ".join(f"{_quoted(key)}={_quoted(value)}" for key, value in sorted(labels.items()))
    return f"\nFROM {target} AS {target}{LABELLED}\n" + (f"LABEL {pairs}\n" if labels else "")


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", " ")
    return f'"{escaped}"'


def gather_labels(root: Path, base_image: str, pinned_base: str | None) -> dict[str, str]:
    """The labels of an image built now from the checkout at `root`."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    commit = _git(root, "rev-parse", "HEAD")
    dirty = commit and _git(root, "status", "--porcelain", "--", *CONTEXT_FILES, *CONTEXT_DIRS)
    return oci_labels(
        version=__version__,
        created=float(epoch) if epoch.isdigit() else time.time(),
        revision=f"{commit}-dirty" if dirty else commit,
        source=_git(root, "config", "--get", "remote.origin.url"),
        base_name=base_image,
        base_digest=pinned_base,
    )


def _git(root: Path, *args: str) -> str | None:
    """git's output in `root` (stripped), or None where git or the repository is missing."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
