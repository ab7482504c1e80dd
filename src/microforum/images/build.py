"""Build one image per service from the project's Dockerfile.

The Dockerfile has a shared `runtime` stage and one small final stage per service
(`FROM runtime AS users`: a label and the CMD), so `docker build --target users .` works by
hand. Here the `runtime` stage is built once (tagged `microforum/runtime:TAG`) and each
service's stage, taken verbatim from the Dockerfile, is built on top of it: building
`--target SERVICE` four times would re-hash the shared stage's `COPY --from=build` layer each
time (about 7 s per image even when fully cached). The four images share every layer but
their last.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from microforum.errors import MicroforumError
from microforum.images.engine import Engine, detect_engine
from microforum.images.refs import check_services, check_tag, local_ref
from microforum.images.stream import run

Progress = Callable[[str], None]
# Tests (and users without Docker Hub) point the Dockerfile's `FROM ${BASE_IMAGE}` elsewhere.
BASE_IMAGE_ENV = "MICROFORUM_BASE_IMAGE"
# What the build needs: the files .dockerignore lets through, plus the Dockerfile itself.
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_DIRS = ("src",)
RUNTIME_STAGE = "runtime"  # the Dockerfile stage every service's stage starts FROM


def build(
    services: list[str],
    *,
    tag: str,
    engine: str | None = None,
    on_progress: Progress = print,
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
    with snapshot(context or project_root()) as root:
        runtime = local_ref(chosen.name, RUNTIME_STAGE, tag)
        on_progress(f"build the shared {RUNTIME_STAGE} stage: {runtime} with {chosen.name}")
        run(
            build_argv(chosen, runtime, root, target=RUNTIME_STAGE, base_image=base, platform=platform),
            doing=f"build the {RUNTIME_STAGE} stage of the Dockerfile",
            on_progress=on_progress,
            prefix=f"{RUNTIME_STAGE}: ",
        )
        dockerfile = (root / "Dockerfile").read_text()
        return {
            name: _build_service(
                chosen, name, tag, root, service_stage(dockerfile, name, runtime), on_progress, platform
            )
            for name in names
        }


def _build_service(
    engine: Engine,
    service: str,
    tag: str,
    root: Path,
    stage: str,
    on_progress: Progress,
    platform: str | None,
) -> str:
    ref = local_ref(engine.name, service, tag)
    stage_file = root / f"Dockerfile.{service}"
    stage_file.write_text(stage)
    on_progress(f"build {service}: {ref} with {engine.name}")
    run(
        build_argv(engine, ref, root, dockerfile=stage_file, platform=platform),
        doing=f"build image for service {service!r}",
        on_progress=on_progress,
        prefix=f"{service}: ",
    )
    return ref


def service_stage(dockerfile: str, service: str, runtime: str) -> str:
    """`service`'s final stage of `dockerfile` (from `FROM runtime AS service` to the next FROM),
    starting FROM the already built `runtime` image instead of the stage."""
    head = re.compile(rf"FROM\s+{RUNTIME_STAGE}\s+AS\s+{re.escape(service)}", re.IGNORECASE)
    lines = dockerfile.splitlines()
    start = next((i for i, line in enumerate(lines) if head.fullmatch(line.strip())), None)
    if start is None:
        raise MicroforumError(
            f"build image for service {service!r}: the Dockerfile has no stage "
            f"'FROM {RUNTIME_STAGE} AS {service}'"
        )
    body: list[str] = []
    for line in lines[start + 1 :]:
        if re.match(r"\s*FROM\s", line, re.IGNORECASE):
            break
        body.append(line)
    return "\n".join([f"FROM {runtime}", *body]).rstrip() + "\n"


def build_argv(
    engine: Engine,
    ref: str,
    root: Path,
    *,
    dockerfile: Path | None = None,
    target: str | None = None,
    base_image: str | None = None,
    platform: str | None = None,
) -> list[str]:
    """The engine command that builds `dockerfile` (default root/Dockerfile) as `ref`."""
    argv = [engine.binary, "build", "--file", str(dockerfile or root / "Dockerfile")]
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


@contextmanager
def snapshot(root: Path) -> Iterator[Path]:
    """A copy of the build context, so every image of one `build` has the same code.

    Built from the live tree, an edit made while the images build would give the services
    different code; the snapshot also holds the per-service stage files.
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


def project_root() -> Path:
    """The source checkout holding the Dockerfile (this package's checkout, else the cwd)."""
    for candidate in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (candidate / "Dockerfile").is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise MicroforumError(
        "build images: no Dockerfile found",
        hint="run from a microforum source checkout (the directory with Dockerfile)",
    )
