"""Build one image per service from the project's Dockerfile.

The Dockerfile has one final stage per service (`--target users`, ...): the four images share
every layer but the last, so after the first build the others take a second or two.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from microforum.errors import MicroforumError
from microforum.images.engine import Engine, detect_engine
from microforum.images.refs import check_services, check_tag, local_ref
from microforum.images.stream import run

# Tests (and users without Docker Hub) point the Dockerfile's `FROM ${BASE_IMAGE}` elsewhere.
BASE_IMAGE_ENV = "MICROFORUM_BASE_IMAGE"
# What the build needs: the files .dockerignore lets through, plus the Dockerfile itself.
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_DIRS = ("src",)


def build(
    services: list[str],
    *,
    tag: str,
    engine: str | None = None,
    on_progress: Callable[[str], None] = print,
    base_image: str | None = None,
    platform: str | None = None,
    context: Path | None = None,
) -> dict[str, str]:
    """Build the images of `services` (all when empty) tagged `tag`; return service -> local ref.

    `engine` is "docker" or "podman" (auto-detected when None). `base_image` overrides the
    Dockerfile's BASE_IMAGE (default: $MICROFORUM_BASE_IMAGE, else the Dockerfile's own);
    `platform` (e.g. linux/amd64 for ECS on x86 instances) is passed to the engine. Raises
    MicroforumError with one line when no engine is available or a build fails.
    """
    names, tag = check_services(services), check_tag(tag)
    chosen = detect_engine(engine)
    base = base_image or os.environ.get(BASE_IMAGE_ENV) or None
    built: dict[str, str] = {}
    with snapshot(context or project_root()) as root:
        for service in names:
            ref = local_ref(chosen.name, service, tag)
            on_progress(f"build {service}: {ref} with {chosen.name}")
            run(
                build_argv(chosen, service, ref, root, base_image=base, platform=platform),
                doing=f"build image for service {service!r}",
                on_progress=on_progress,
                prefix=f"{service}: ",
            )
            built[service] = ref
    return built


@contextmanager
def snapshot(root: Path) -> Iterator[Path]:
    """A copy of the build context, so every image of one `build` has the same code.

    Built from the live tree, an edit between two services' builds would give them different
    code and make every build after it miss the layer cache; from one snapshot the second and
    later services reuse all layers but their last stage.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    with tempfile.TemporaryDirectory(prefix="microforum-build-") as tmp:
        copy = Path(tmp)
        for name in CONTEXT_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, copy / name)
        for name in CONTEXT_DIRS:
            shutil.copytree(root / name, copy / name, ignore=ignore)
        yield copy


def build_argv(
    engine: Engine,
    service: str,
    ref: str,
    root: Path,
    *,
    base_image: str | None = None,
    platform: str | None = None,
) -> list[str]:
    """The engine command that builds `service`'s stage of the Dockerfile as `ref`."""
    argv = [engine.binary, "build", "--file", str(root / "Dockerfile"), "--target", service]
    argv += ["--tag", ref, "--network", "host"]  # RUN pip steps reach the index like the host
    if engine.name == "podman":
        argv += ["--format", "docker"]  # OCI format drops HEALTHCHECK and STOPSIGNAL
    if base_image:
        argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if platform:
        argv += ["--platform", platform]
    return [*argv, str(root)]


def project_root() -> Path:
    """The source checkout holding the Dockerfile (this package's checkout, else the cwd)."""
    for candidate in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (candidate / "Dockerfile").is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise MicroforumError(
        "build images: no Dockerfile found",
        hint="run from a microforum source checkout (the directory with Dockerfile)",
    )
