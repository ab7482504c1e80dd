"""Build one image per service from the project's Dockerfile.

Each service's image is the Dockerfile's stage of that name (`--target users`), built from a
snapshot of the build context (`content.snapshot`). The stages share every layer; a service's
own stage adds only metadata, so the second and later services take a couple of seconds.

Every image carries the OCI labels (`labels.py`): where its source is, the commit, when it was
built, the version and the base image by digest. The base image is pinned by digest when the
engine has it locally (`FROM name@sha256:...`), so the build uses exactly the image recorded.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from microforum.errors import MicroforumError
from microforum.images.content import content_digest, context_files, project_root, snapshot
from microforum.images.engine import Engine, detect_engine
from microforum.images.labels import LABELLED, gather_labels, labelled_stage
from microforum.images.refs import check_services, check_tag, local_ref
from microforum.images.stream import run

Progress = Callable[[str], None]
# Users without Docker Hub (and the tests) point the Dockerfile's `FROM ${BASE_IMAGE}` elsewhere.
BASE_IMAGE_ENV = "MICROFORUM_BASE_IMAGE"
DEFAULT_BASE_IMAGE = "python:3.12-slim"  # the Dockerfile's own ARG BASE_IMAGE default
BASE_IMAGE_HINT = (
    "without Docker Hub, make a base image from Debian packages: scripts/make_base_image.sh, "
    "then pass --base-image localhost/python-base:bookworm (or set MICROFORUM_BASE_IMAGE); "
    "see docs/containers.md"
)
_INSPECT_TIMEOUT = 30.0


def build(
    services: list[str],
    *,
    tag: str | None = None,
    engine: str | None = None,
    on_progress: Progress = print,
    base_image: str | None = None,
    platform: str | None = None,
    context: Path | None = None,
) -> dict[str, str]:
    """Build the images of `services` (all when empty); return service -> local ref.

    `tag` defaults to the content tag of the build context (`content.content_tag`). `engine` is
    "docker" or "podman" (auto-detected when None). `base_image` overrides the Dockerfile's
    BASE_IMAGE (default: $MICROFORUM_BASE_IMAGE, else the Dockerfile's own); `platform` (e.g.
    linux/amd64 for ECS on x86 instances) is passed to the engine. Raises MicroforumError with
    one line when no engine is available or a build fails.
    """
    names = check_services(services)
    chosen = detect_engine(engine)
    base = base_image or os.environ.get(BASE_IMAGE_ENV) or None
    with snapshot(context or project_root()) as root:
        if tag is None:
            files = {name: path.read_bytes() for name, path in context_files(root).items()}
            tag = content_digest(files, base, platform)
        tag = check_tag(tag)
        pinned = pin_base(chosen, base or DEFAULT_BASE_IMAGE, platform, on_progress)
        labels = gather_labels(context or project_root(), base or DEFAULT_BASE_IMAGE, pinned)
        with (root / "Dockerfile").open("a") as dockerfile:  # the snapshot's copy
            dockerfile.writelines(labelled_stage(name, labels) for name in names)
        built = {}
        for name in names:
            ref = local_ref(chosen.name, name, tag)
            on_progress(f"build {name}: {ref} with {chosen.name}")
            argv = build_argv(
                chosen, ref, root, target=name + LABELLED, base_image=pinned or base, platform=platform
            )
            run(argv, doing=f"build image for service {name!r}", on_progress=on_progress, prefix=f"{name}: ")
            built[name] = ref
        return built


def pin_base(engine: Engine, base_image: str, platform: str | None, on_progress: Progress) -> str | None:
    """`base_image` by digest (`name@sha256:...`): pulled first when the engine lacks it, so the
    build starts from exactly the image its labels record. A failed pull says what to do."""
    pinned = base_digest(engine, base_image)
    if pinned is None and "@" not in base_image:
        argv = [engine.binary, "pull", *(["--platform", platform] if platform else []), base_image]
        try:
            run(argv, doing=f"pull the base image {base_image}", on_progress=on_progress, prefix="base: ")
        except MicroforumError as exc:
            raise MicroforumError(exc.message, hint=BASE_IMAGE_HINT) from exc
        pinned = base_digest(engine, base_image)
    return pinned


def base_digest(engine: Engine, base_image: str) -> str | None:
    """`base_image` as `name@sha256:...` when the engine holds it locally, else None.

    A reference already pinned by digest is kept as it is.
    """
    if "@" in base_image:
        return base_image
    argv = [engine.binary, "image", "inspect", "--format", "{{index .RepoDigests 0}}", base_image]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=_INSPECT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    pinned = out.stdout.strip()
    return pinned if out.returncode == 0 and "@sha256:" in pinned else None


def build_argv(
    engine: Engine,
    ref: str,
    root: Path,
    *,
    target: str | None = None,
    base_image: str | None = None,
    platform: str | None = None,
) -> list[str]:
    """The engine command that builds stage `target` of root/Dockerfile as `ref`."""
    argv = [engine.binary, "build", "--file", str(root / "Dockerfile")]
    if target:
        argv += ["--target", target]
    argv += ["--tag", ref, "--network", "host"]  # RUN pip steps reach the index like the host
    if engine.name == "podman":
        argv += ["--format", "docker"]  # OCI format drops HEALTHCHECK and STOPSIGNAL
    if base_image:
        argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if platform:
        argv += ["--platform", platform]
    return [*argv, str(root)]


def image_exists(engine: Engine, ref: str) -> bool:
    """Whether the engine holds the image `ref` locally."""
    argv = [engine.binary, "image", "inspect", "--format", "{{.Id}}", ref]
    try:
        out = subprocess.run(argv, capture_output=True, timeout=_INSPECT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0
