"""The lock files: every dependency pinned with its hashes, the images' lock derived from
pyproject.toml without the deployer-only dependencies, and both used where they should be."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """name (normalised) -> version of every requirement in a pip-compile lock file."""
    found: dict[str, str] = {}
    text = path.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{path.name}: {match.group(1)} has no hash"
            found[_norm(match.group(1))] = match.group(2)
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(spec: str) -> str:
    return _norm(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])


def test_the_images_lock_is_the_services_dependencies_and_the_build_backend() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deployer_only = {_norm(n) for n in meta["tool"]["microforum"]["deployer-only"]}
    wanted = {_name(s) for s in meta["project"]["dependencies"] + meta["build-system"]["requires"]}
    locked = pins(ROOT / "requirements" / "images.txt")
    assert wanted - deployer_only <= set(locked)
    assert "boto3" in deployer_only and not deployer_only & set(locked)
    assert "botocore" not in locked  # nothing pulls a deployer-only dependency back in


def test_the_dev_lock_has_everything_pip_install_e_test_brings() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {
        _name(s) for s in meta["project"]["dependencies"] + meta["project"]["optional-dependencies"]["test"]
    }
    assert wanted <= set(pins(ROOT / "requirements" / "dev.txt"))


def test_the_dockerfile_installs_the_lock_with_hashes_before_the_source() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements/images.txt" in text and "--require-hashes" in text
    assert text.index("--require-hashes") < text.index("COPY src")


def test_make_and_so_ci_install_the_dev_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --requirement requirements/dev.txt" in makefile
