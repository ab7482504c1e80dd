"""Compile the load balancer's hot modules to C with mypyc, into the build cache.

    python -m microforum.lb.native                # build for the current source (`make run` does)
    python -m microforum.lb.native --if-possible  # the same; exit 0 with one line if it cannot
    python -m microforum.lb.native --background   # start it detached, return at once (`make run`)
    python -m microforum.lb.native --dest DIR     # a whole package copy for PYTHONPATH=DIR

Why: the proxy's per-request cost is mostly CPython's interpreter (perf: about half of the
CPU per proxied request). mypyc compiles these fully type-hinted modules, unchanged, to C
extensions; that halves the Python part of a request (measured: 36 -> 18 us in the
fake-transport loop; CPU per proxied request vs HAProxy 2.8-3.7x -> 2.0-2.2x, same run).

The build never happens in place: an extension module next to its .py file would be imported
instead of it, so later edits would be silently hidden. `microforum up` uses a cached build
only when its key matches the source exactly (lb/compiled.py). Needs a C compiler and Python
headers (Debian: gcc, python3-dev) and mypy (the `native` extra).

`make run` serves at once: `--background` starts the build in a detached, niced process (its
output in `<cache>/build.log`; Ctrl-C on `make run` does not stop it) unless the build exists
or one is under way (`<cache>/.building-<key>` holds its pid), and `up` runs interpreted until
a later start finds the build (docs/operations.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from microforum.lb.compiled import (
    INFO_FILE,
    PACKAGE,
    SWITCH,
    builds_in,
    current_key,
    default_root,
    mypy_version,
    package_files,
    python_identity,
    read_info,
    source_key,
)

# The modules a proxied request runs through; the rest of the LB (balancer, health) stays
# interpreted: it runs a few times a second, not per request.
HOT_MODULES = (
    "accesslog", "context", "decide", "desync", "exchange", "forward", "groups", "headers",
    "lifecycle", "metrics", "pool", "proxy", "reader", "responses", "rules", "targets",
)  # fmt: skip
SPEEDUPS = "_speedups.c"  # per-request helpers written in C (used when built; see the file)
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")


class BuildError(Exception):
    """The compiled build cannot be made; the message says why in one line (plus details)."""


def missing_tool() -> str | None:
    """What is missing to compile (a C compiler, Python headers, mypyc), or None."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}; Debian: apt install gcc)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "no Python headers (Python.h; Debian: apt install python3-dev)"
    if importlib.util.find_spec("mypyc") is None:
        return "no mypyc (pip install -e '.[native]')"
    return None


def compile_hot_modules(tree: Path) -> None:
    """Run mypyc on `HOT_MODULES` of the package copy under `tree` (in place, in the copy), and
    compile the C helpers (`SPEEDUPS`) beside them."""
    files = [f"microforum/lb/{name}.py" for name in HOT_MODULES]
    done = subprocess.run([sys.executable, "-m", "mypyc", *files], cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        errors = [line for line in output.splitlines() if ": error:" in line] or output.splitlines()[-5:]
        raise BuildError("mypyc failed:\n  " + "\n  ".join(errors))
    compile_speedups(tree / "microforum" / "lb" / SPEEDUPS)


def compile_speedups(source: Path) -> Path:
    """Compile the C helpers' `source` into an extension module beside it; return its path."""
    target = source.with_name(source.stem + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    argv = [*compiler, "-O2", "-fPIC", "-shared", "-Wall", f"-I{include}", str(source), "-o", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"compiling {source.name} failed:\n  " + "\n  ".join(done.stderr.splitlines()[-5:]))
    return target


def build_cache(root: Path, package: Path = PACKAGE) -> tuple[str, bool]:
    """Make sure `root` has the build of `package`; (its key, whether it was built now)."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        work = Path(tmp)
        shutil.copytree(package, work / "microforum", ignore=COPY_IGNORE)
        # The key of the copy, not of the source: the build matches what was compiled even
        # when a file is saved during the build.
        key = source_key(package_files(work / "microforum"), python_identity(), mypy_version())
        if (root / key).is_dir():
            return key, False
        print("compiled load balancer: compiling with mypyc (about a minute, once per source change)",
              file=sys.stderr, flush=True)  # fmt: skip
        compile_hot_modules(work)
        out = _collect(work, package)
        try:
            out.rename(root / key)  # one rename: `up` never sees a half-made build
        except OSError:
            if not (root / key).is_dir():
                raise
    _prune(root, key, str(package))
    return key, True


def _collect(work: Path, package: Path) -> Path:
    """Gather the extension modules mypyc made under `work` into `work/out`, with build.json."""
    out = work / "out"
    (out / "microforum" / "lb").mkdir(parents=True)
    for library in work.glob("*__mypyc.*.so"):
        library.rename(out / library.name)
    for module in (work / "microforum" / "lb").glob("*.so"):
        module.rename(out / "microforum" / "lb" / module.name)
    info = {"source": str(package), "python": python_identity(), "mypy": mypy_version() or ""}
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out


def _prune(root: Path, key: str, source: str) -> None:
    """Remove the older builds of the same source directory and Python (one per checkout)."""
    for other, made_from in builds_in(root).items():
        same_python = read_info(root / other).get("python") == python_identity()
        if other != key and made_from == source and same_python:
            shutil.rmtree(root / other, ignore_errors=True)


def build_dest(dest: Path) -> Path:
    """Copy the package source to `dest` and compile `HOT_MODULES` there; return `dest`."""
    target = dest / "microforum"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE, target, ignore=COPY_IGNORE)
    compile_hot_modules(dest)
    return dest


BUILD_LOG = "build.log"
NICENESS = 10  # the background build yields the CPU to the stack it runs beside


def lock_path(root: Path, key: str) -> Path:
    """The file that says a build of `key` is under way (it holds the builder's pid)."""
    return root / f".building-{key}"


def building_pid(lock: Path) -> int | None:
    """The pid of the process building under `lock`, if it is still running."""
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_background(root: Path) -> str:
    """Start building the current source in a detached process unless that build exists or
    is under way; the one line to show."""
    key = current_key()
    if key in builds_in(root):
        return f"compiled load balancer: up to date ({root / key})"
    lock = lock_path(root, key)
    pid = building_pid(lock)
    if pid is not None:
        return f"compiled load balancer: being built in the background (pid {pid}); this start is interpreted"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / BUILD_LOG, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "microforum.lb.native", "--if-possible", "--lock", str(lock)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            preexec_fn=lambda: os.nice(NICENESS),  # in the child: nothing else runs there
        )  # fmt: skip
    lock.write_text(str(child.pid))
    return (f"compiled load balancer: building in the background for the next start (log: "
            f"{root / BUILD_LOG}); this start is interpreted")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m microforum.lb.native",
        description="Compile the load balancer's hot modules with mypyc into the build cache.",
    )
    parser.add_argument("--if-possible", action="store_true",
                        help="exit 0 with one line when there is no compiler or the build fails")  # fmt: skip
    parser.add_argument("--dest", type=Path, help="instead, build a whole package copy in DIR")
    parser.add_argument("--background", action="store_true",
                        help="start the build in a detached process and return at once")  # fmt: skip
    parser.add_argument("--lock", type=Path, help=argparse.SUPPRESS)  # removed when done
    return parser


def main(argv: list[str]) -> int:
    """Build; 0 when built or up to date, 1 (0 with --if-possible) when it cannot."""
    args = _parser().parse_args(argv)
    outcome = "interpreted" if args.if_possible or args.background else "not built"
    missing = missing_tool()
    if (args.if_possible or args.background) and os.environ.get(SWITCH) == "0":
        missing = f"{SWITCH}=0"
    if missing:
        print(f"compiled load balancer: {missing}; {outcome}", file=sys.stderr)
        return 0 if args.if_possible or args.background else 1
    try:
        if args.dest:
            print(f"built; run with PYTHONPATH={build_dest(args.dest.resolve())}")
            return 0
        root = default_root()
        if args.background:
            print(start_background(root))
            return 0
        key, built = build_cache(root)
    except (BuildError, OSError) as exc:
        print(f"compiled load balancer: {exc}\ncompiled load balancer: {outcome}", file=sys.stderr)
        return 0 if args.if_possible or args.background else 1
    finally:
        if args.lock is not None:
            args.lock.unlink(missing_ok=True)
    print(f"compiled load balancer: {'built' if built else 'up to date'} ({root / key})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
