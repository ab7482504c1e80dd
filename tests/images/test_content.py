"""The content tag: the same build context gives the same tag, any change a new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from microforum.images.content import TAG_PREFIX, content_digest, content_tag, context_files
from microforum.images.refs import check_tag

ROOT = Path(__file__).resolve().parents[2]
FILES = {"Dockerfile": b"FROM x\n", "src/microforum/a.py": b"A = 1\n"}


def test_the_tag_is_a_valid_image_tag_named_by_content() -> None:
    tag = content_digest(FILES, None, None)
    assert tag.startswith(TAG_PREFIX) and len(tag) == len(TAG_PREFIX) + 16
    assert check_tag(tag) == tag
    assert content_digest(dict(reversed(FILES.items())), None, None) == tag  # order does not matter


@pytest.mark.parametrize(
    "change",
    [
        {"files": {**FILES, "src/microforum/a.py": b"A = 2\n"}},  # an edit
        {"files": {**FILES, "src/microforum/b.py": b""}},  # a new file, even empty
        {"files": {"Dockerfile": FILES["Dockerfile"], "src/microforum/b.py": FILES["src/microforum/a.py"]}},
        {"base": "localhost/python-base:bookworm"},
        {"platform": "linux/arm64"},
    ],
    ids=["edit", "new-file", "rename", "base-image", "platform"],
)
def test_any_change_gives_a_new_tag(change: dict[str, object]) -> None:
    files = change.get("files", FILES)
    assert isinstance(files, dict)
    base, platform = change.get("base"), change.get("platform")
    assert content_digest(files, base, platform) != content_digest(FILES, None, None)  # type: ignore[arg-type]


def test_the_context_is_the_checkout_without_caches(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / "src" / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "src" / "pkg.egg-info").mkdir()
    (tmp_path / "src" / "pkg.egg-info" / "PKG-INFO").write_text("x")
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("")
    assert list(context_files(tmp_path)) == ["Dockerfile", "src/pkg/m.py"]
    before = content_tag(tmp_path)
    (tmp_path / "tests" / "t.py").write_text("changed")  # outside the context: same tag
    (tmp_path / "src" / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"y")
    assert content_tag(tmp_path) == before
    (tmp_path / "src" / "pkg" / "m.py").write_text("x = 2\n")
    assert content_tag(tmp_path) != before


def test_the_project_context_has_the_lock_file() -> None:
    assert "requirements/images.txt" in context_files(ROOT)
