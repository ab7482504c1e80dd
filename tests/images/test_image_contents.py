"""What is inside the images and around them: the locked dependencies (and nothing of the
deployer's), the OCI labels, the size, the layers an edit changes; and the two mistakes a new
user meets first (no base image, pushing a tag never built)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LAYER_SIZES, ROOT, Built, podman
from microforum import __version__, images
from microforum.images.content import context_files
from microforum.images.labels import PREFIX

pytestmark = pytest.mark.containers

MAX_IMAGE_BYTES = 200_000_000  # on the Debian-packages base (issue 18)
BUILD_TOOLS = {"setuptools", "wheel", "packaging"}  # in the lock to build the project; removed after


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    text = (ROOT / "requirements" / "images.txt").read_text()
    return {_norm(m.group(1)): m.group(2) for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}


def in_image(ref: str, code: str) -> str:
    proc = podman("run", "--rm", "--network", "none", ref, "python3", "-c", code, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_image_holds_exactly_the_locked_dependencies(built: Built) -> None:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    installed = {_norm(k): v for k, v in json.loads(in_image(built.images["users"], code)).items()}
    expected = {name: v for name, v in locked().items() if name not in BUILD_TOOLS}
    assert installed == {**expected, "microforum": __version__}  # no boto3, no pip, nothing else


def test_labels_and_size(built: Built, base_image: str) -> None:
    for ref in built.images.values():
        image = json.loads(podman("image", "inspect", ref).stdout)[0]
        labels = image["Config"]["Labels"]
        assert labels[PREFIX + "version"] == __version__
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels[PREFIX + "created"])
        if built.commit:
            assert labels[PREFIX + "revision"] in (built.commit, built.commit + "-dirty")
        assert labels[PREFIX + "base.name"] == base_image
        assert labels[PREFIX + "base.digest"].startswith("sha256:")
        assert image["Size"] <= MAX_IMAGE_BYTES, f"{ref}: {image['Size'] / 1e6:.0f} MB"


def test_a_rebuild_from_unchanged_sources_carries_its_own_labels(built: Built, base_image: str) -> None:
    """Every layer comes from the cache, yet the labels are this build's: podman kept a LABEL
    step built from args in its cache, and the image said it was created by the first build."""
    ref = f"localhost/microforum/users:{built.tag}-again"
    argv = [sys.executable, "-m", "microforum", "images", "build", "users", "--engine", "podman"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "86400"}
    try:
        proc = subprocess.run(
            [*argv, "--base-image", base_image, "--tag", f"{built.tag}-again"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        labels = json.loads(podman("image", "inspect", ref).stdout)[0]["Config"]["Labels"]
        assert labels[PREFIX + "created"] == "1970-01-02T00:00:00Z"
    finally:
        podman("rmi", "--force", ref, check=False)


def layers(ref: str) -> list[str]:
    return json.loads(podman("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).stdout)


def test_an_edit_to_a_source_file_changes_only_the_last_layer(
    built: Built, base_image: str, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    for name, path in context_files(ROOT).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, context / name)

    def build(tag: str) -> str:
        refs = images.build(
            ["users"],
            tag=tag,
            engine="podman",
            base_image=base_image,
            context=context,
            on_progress=lambda _: None,
        )
        return refs["users"]

    before = build(f"{built.tag}-a")
    source = context / "src" / "microforum" / "services" / "app.py"
    source.write_text(source.read_text() + "# a one-line edit\n")
    after = build(f"{built.tag}-b")
    try:
        old, new = layers(before), layers(after)
        assert len(old) == len(new) and old[:-1] == new[:-1] and old[-1] != new[-1]
        history = json.loads(podman("history", "--format", "json", after).stdout)
        LAYER_SIZES[after] = [int(step["size"]) for step in history if step["size"] > 0]
        assert LAYER_SIZES[after][0] < 5_000_000  # the last layer: the project's code alone
    finally:
        podman("rmi", "--force", before, after, check=False)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "microforum", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_pushing_a_tag_never_built_says_how_to_build_it(podman_env: None) -> None:
    proc = cli(
        "images", "push", "users", "--engine", "podman", "--registry", "localhost:1", "--tag", "never-built-1"
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "microforum: push images: localhost/microforum/users:never-built-1 was never built here "
        "(podman has no such image)",
        "hint: build it first: microforum images build users --tag never-built-1, then push again",
    ]


def test_a_base_image_that_cannot_be_pulled_says_how_to_make_one(podman_env: None) -> None:
    proc = cli("images", "build", "users", "--engine", "podman", "--base-image", "localhost:1/no-such-base:0")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith(("microforum:", "hint:"))]
    assert errors[0].startswith("microforum: pull the base image localhost:1/no-such-base:0: ")
    assert errors[1].startswith(
        "hint: without Docker Hub, make a base image from Debian packages: scripts/make_base_image.sh"
    )


def test_the_stack_images_are_rebuilt_when_the_source_changed(base_image: str, tmp_path: Path) -> None:
    """What `restart` in container mode relies on: a replica started after an edit runs it."""
    import asyncio

    from microforum.images.engine import Engine
    from microforum.images.runner import StackImages

    context = tmp_path / "context"
    for name, path in context_files(ROOT).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, context / name)
    said: list[str] = []
    stack_images = StackImages(Engine("podman", "podman"), ["users"], base_image, said.append, context)
    first = stack_images.ensure()["users"]
    try:
        assert asyncio.run(stack_images.current("users")) == first  # unchanged: not rebuilt
        assert asyncio.run(stack_images.current("monolith")) is None  # not one of its images
        source = context / "src" / "microforum" / "services" / "app.py"
        source.write_text(source.read_text() + "# an edit\n")
        second = asyncio.run(stack_images.current("users"))
        assert second != first and second.startswith("localhost/microforum/users:src-")
        assert any(line.startswith("the source changed since src-") for line in said)
    finally:
        podman("rmi", "--force", first, *([second] if "second" in locals() else []), check=False)
