"""Which compiled (mypyc) build of the load balancer to use, and using it: only an exact match.

Theory of operation. `python -m microforum.lb.native` (run by `make run`) compiles the load
balancer's hot modules into the build cache, `<cache>/<key>/`, where `cache` is
`$XDG_CACHE_HOME/microforum/native` (default `~/.cache/...`) and `key` is a hash of every
source file (`.py`, `.c`) of the `microforum` package, the Python build and mypy's version. A
build directory holds only extension modules: the group's shared library
(`<group>__mypyc.*.so`, imported by name from each module), `microforum/lb/<module>.*.so`
(mypyc's, and `_speedups`: helpers written in C), plus `build.json` (what it was made
from). It appears by one rename, so a half-written build is never seen.

`microforum up` calls `use_compiled_build()` before any `microforum.lb` module is imported. It
hashes the package it is running from; only a build with exactly that key is used, so an
edited `.py` file is never shadowed by an older `.so`. Using a build means loading the shared
library, putting the build's `microforum/lb` first on `microforum.lb.__path__` while every
compiled module is imported (then taking it off again), and checking that each one came from
the build. The other load-balancer modules, and everything else, stay the package's own `.py`
files; child processes (replicas) are not affected. Anything unexpected: back to interpreted.

`MICROFORUM_NATIVE=0` turns it off (debugging with tracebacks into the `.py` files). Either
way, `up` says in one line which runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import microforum

SWITCH = "MICROFORUM_NATIVE"  # "0": never use a compiled build
PACKAGE = Path(microforum.__file__).parent
INFO_FILE = "build.json"
LB_PACKAGE = "microforum.lb"


# --- pure core ---------------------------------------------------------------------------


def cache_root(environ: Mapping[str, str], home: Path) -> Path:
    """Where builds live: `$XDG_CACHE_HOME/microforum/native`, else `~/.cache/microforum/native`.

    The XDG Base Directory spec ignores a relative XDG_CACHE_HOME, so do we.
    """
    base = environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else home / ".cache"
    return root / "microforum" / "native"


def source_key(files: Iterable[tuple[str, bytes]], python: str, mypy: str | None) -> str:
    """The build key of a package whose source files are `files` (relative path, content)."""
    digest = hashlib.sha256(f"python {python}\nmypy {mypy}\n".encode())
    for name, content in sorted(files):
        # Length-prefixed, so no two different file sets can hash the same bytes.
        digest.update(f"{len(name)}:{name}{len(content)}:".encode())
        digest.update(content)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Choice:
    """The build to use (a key, or None: interpreted) and whether an out-of-date one exists."""

    build: str | None
    stale: bool


def choose(key: str, builds: Mapping[str, str], source: str) -> Choice:
    """Pick the build for `key` among `builds` (key -> the source directory it was made from).

    Only the exact key is ever chosen. `stale` says that this source directory has a build,
    but for other contents (or another Python or mypy): worth one line to the user.
    """
    if key in builds:
        return Choice(key, stale=False)
    return Choice(None, stale=any(made_from == source for made_from in builds.values()))


# --- reading the package, the cache and the tools ----------------------------------------


SOURCE_SUFFIXES = (".py", ".c")  # what a build is made from (lb/_speedups.c is C)


def package_files(package: Path) -> Iterator[tuple[str, bytes]]:
    """(path relative to `package`, content) of every source file (`.py`, `.c`) under `package`."""
    for path in package.rglob("*"):
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            yield path.relative_to(package).as_posix(), path.read_bytes()


def python_identity() -> str:
    """The running Python build, as far as a compiled extension depends on it."""
    return f"{sys.version} {sysconfig.get_config_var('EXT_SUFFIX')}"


def mypy_version() -> str | None:
    """The installed mypy's version (mypyc ships with it), or None without mypy.

    Read from mypy/version.py without importing mypy: importing it, or asking
    importlib.metadata, costs 70-100 ms on every `up`.
    """
    spec = importlib.util.find_spec("mypy")
    if spec is None or spec.origin is None:
        return None
    try:
        text = Path(spec.origin).with_name("version.py").read_text()
    except OSError:
        return None
    match = re.search(r"""__version__\s*=\s*["']([^"']+)""", text)
    return match.group(1) if match else None


def current_key(package: Path = PACKAGE) -> str:
    """The build key of `package` with the running Python and the installed mypy."""
    return source_key(package_files(package), python_identity(), mypy_version())


def default_root() -> Path:
    """The build cache of this user (see `cache_root`)."""
    return cache_root(os.environ, Path.home())


def read_info(build: Path) -> dict[str, str]:
    """A build's `build.json` ({} when unreadable: such a build is nobody's)."""
    try:
        info = json.loads((build / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def builds_in(root: Path) -> dict[str, str]:
    """key -> source directory of every finished build under `root`."""
    try:
        entries = [entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")]
    except OSError:
        return {}
    return {entry.name: str(read_info(entry).get("source", "")) for entry in entries}


# --- using a build -----------------------------------------------------------------------


def use_compiled_build(environ: Mapping[str, str] = os.environ, err: TextIO | None = None) -> bool:
    """Import the load balancer's compiled modules from the build matching this source, if any.

    Call before any `microforum.lb` module is imported. Returns whether they are in use; says
    so in one line on `err` (stderr), or why an existing build was not used.
    """
    err = err or sys.stderr
    if _lb_imported():
        return False
    if environ.get(SWITCH, "1") == "0":
        print(f"microforum: load balancer interpreted ({SWITCH}=0)", file=err)
        return False
    root = cache_root(environ, Path.home())
    key = current_key()
    choice = choose(key, builds_in(root), str(PACKAGE))
    if choice.build is None:
        why = "the compiled load balancer does not match the source" if choice.stale else (
            "no compiled build of this source yet")  # fmt: skip
        print(f"microforum: load balancer interpreted ({why}; `make run` builds one in the "
              "background for the next start)", file=err)  # fmt: skip
        return False
    try:
        modules = _import_build(root / choice.build)
    except (ImportError, OSError) as exc:
        print(f"microforum: compiled load balancer unusable ({exc}); running it interpreted", file=err)
        return False
    print(f"microforum: load balancer compiled with mypyc ({len(modules)} modules, build {key[:12]})",
          file=err)  # fmt: skip
    return True


def _lb_imported() -> bool:
    """Whether a load-balancer module (other than this one) is imported: too late to switch."""
    return any(name.startswith(f"{LB_PACKAGE}.") and name != __name__ for name in sys.modules)


def _import_build(build: Path) -> list[str]:
    """Import every module of `build`; undo everything and raise ImportError if one fails."""
    lb_dir = build / "microforum" / "lb"
    names = sorted(f"{LB_PACKAGE}.{so.name.split('.')[0]}" for so in lb_dir.glob("*.so"))
    if not names or any(name in sys.modules for name in names):
        raise ImportError("no modules, or the load balancer was imported already")
    before = set(sys.modules)
    package = importlib.import_module(LB_PACKAGE)
    package.__path__.insert(0, str(lb_dir))
    try:
        for library in build.glob("*__mypyc.*.so"):
            _load_library(library)
        for name in names:
            origin = Path(importlib.import_module(name).__file__ or "")
            if origin.parent != lb_dir:
                raise ImportError(f"{name} came from {origin}")
    except BaseException:
        # Forget whatever this attempt imported (half-compiled mixes must never run).
        for name in set(sys.modules) - before:
            if name.startswith(f"{LB_PACKAGE}.") or name.endswith("__mypyc"):
                del sys.modules[name]
        raise
    finally:
        package.__path__.remove(str(lb_dir))
    return names


def _load_library(path: Path) -> None:
    """Load the group's shared library under its module name (each module imports it so)."""
    name = path.name.split(".")[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
