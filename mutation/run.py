"""Mutation testing of the pure cores with mutmut (`make mutate`, `make mutate-sample`).

Each module of mutation/modules.toml is mutated alone, against its own unit tests only, in a
scratch copy of src/ and tests/ under .mutmut/ (the checkout is never touched). mutmut's results
are then sorted: killed (a test failed, or the mutant timed out), equivalent (a survivor that
mutation/equivalent.toml lists with the reason it cannot be told apart) and survived (a gap).

    python mutation/run.py                 # every mutant; writes docs/mutation-report.md
    python mutation/run.py --sample 40     # CI: 40 mutants per module, fixed seed; fails on
                                           # a survivor that the committed report does not list

Either exits 1 when a module is under --min-score, or the sample finds a new survivor, or an
equivalent.toml entry matches no mutant any more (the file must stay true). See docs/testing.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "mutation"
WORK = ROOT / ".mutmut"
REPORT = ROOT / "docs" / "mutation-report.md"
MUTMUT = Path(sys.executable).parent / "mutmut"
ALSO_COPY = ("stack.yaml", "infrastructure")  # files the tests read beside src/ and tests/
# CHECKOV set: tests/deploy/conftest.py then starts no checkov install (no unit test uses it).
ENV = os.environ | {"NO_COLOR": "1", "CHECKOV": os.environ.get("CHECKOV", "checkov")}
# mutmut's exit-code verdicts (mutmut/stats.py): these count as killed; 0, 5, 33 as survived.
KILLED = {1, 3, 24, -24, 36, 152, 255, -11, -9, 37}
NOT_RUN = {None, 2, 34}


@dataclass
class Mutant:
    name: str  # mutmut's key, e.g. microforum.lb.health.xǁHealthTrackerǁexpire__mutmut_7
    verdict: str  # killed | survived | equivalent | not run
    diff: str = ""  # the changed lines, "- old" then "+ new"
    reason: str = ""  # why it is equivalent

    @property
    def function(self) -> str:
        """`Class.method` or `function`, from mutmut's key."""
        body = self.name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[1]
        if body.startswith("xǁ"):
            return ".".join(part for part in body[2:].split("ǁ") if part)
        return body.removeprefix("x_")

    @property
    def number(self) -> str:
        return self.name.rsplit("__mutmut_", 1)[1]


@dataclass
class Result:
    path: str
    tests: list[str]
    mutants: list[Mutant] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(m.verdict == verdict for m in self.mutants)

    def counts(self) -> tuple[int, int, int, int]:
        """(mutants, killed, survived, equivalent)"""
        return len(self.mutants), self.count("killed"), self.count("survived"), self.count("equivalent")

    @property
    def score(self) -> float:
        """Killed over the non-equivalent mutants that ran (1.0 when there are none)."""
        judged = self.count("killed") + self.count("survived")
        return self.count("killed") / judged if judged else 1.0


def load_modules() -> list[dict[str, object]]:
    return tomllib.loads((HERE / "modules.toml").read_text())["module"]


def load_equivalents() -> list[dict[str, str]]:
    """Entries {module, function, diff, reason}; an entry without a reason is refused."""
    entries = tomllib.loads((HERE / "equivalent.toml").read_text()).get("equivalent", [])
    for entry in entries:
        if not entry.get("reason", "").strip():
            sys.exit(f"mutation/equivalent.toml: {entry.get('function')}: every entry needs a reason")
    return entries


def prepare(path: str, tests: list[str]) -> Path:
    """A fresh scratch copy holding src/, tests/ and a pyproject whose [tool.mutmut] names one module."""
    work = WORK / module_name(path)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info")
    for tree in ("src", "tests", *ALSO_COPY):
        if (ROOT / tree).is_dir():
            shutil.copytree(ROOT / tree, work / tree, ignore=ignore)
        else:
            shutil.copy2(ROOT / tree, work / tree)
    with (work / "tests" / "conftest.py").open("a") as conftest:
        conftest.write("\n\n" + (HERE / "plain_ids.py").read_text())
    settings = {
        "source_paths": ["src/microforum"],
        "only_mutate": [path],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x"],
        "also_copy": list(ALSO_COPY),
        "use_git_change_detection": False,
        "use_setproctitle": False,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    pyproject = (ROOT / "pyproject.toml").read_text() + "\n[tool.mutmut]\n" + "\n".join(lines) + "\n"
    (work / "pyproject.toml").write_text(pyproject)
    return work


def mutmut(work: Path, *args: str) -> str:
    """Run mutmut in the scratch copy (its output only shown when it fails)."""
    done = subprocess.run([str(MUTMUT), *args], cwd=work, capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        sys.exit(f"mutmut {' '.join(args[:2])} in {work} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def generate(work: Path, path: str, jobs: int) -> None:
    """Write every mutant without running one. mutmut has no such command: a run filtered to a
    name that matches no mutant generates them all (and maps tests to functions), then stops
    with an assertion; the mutants stay and the next run reuses the map."""
    command = [str(MUTMUT), "run", "--max-children", str(jobs), "no-mutant-is-called-this"]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, env=ENV)
    if not (work / "mutants" / (path + ".meta")).exists():
        sys.exit(
            f"mutmut could not generate the mutants of {path}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def verdicts(work: Path, path: str) -> dict[str, int | None]:
    meta = work / "mutants" / (path + ".meta")
    return json.loads(meta.read_text())["exit_code_by_key"]


# `mutmut show NAME` for many names in one process (mutmut's start-up is the cost of each call).
_SHOW = """
import sys
from mutmut.__main__ import show
for name in sys.argv[1:]:
    print("\\0" + name, flush=True)
    show.callback(name)
"""


def changed_lines(work: Path, names: list[str]) -> dict[str, str]:
    """Each mutant's diff reduced to its changed lines, stripped: stable when lines move."""
    if not names:
        return {}
    done = subprocess.run(
        [sys.executable, "-c", _SHOW, *names], cwd=work, capture_output=True, text=True, check=True
    )
    diffs: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        if line.startswith("\0"):
            current = diffs.setdefault(line[1:], [])
        elif line[:1] in "+-" and not line.startswith(("+++", "---")):
            current.append(f"{line[0]} {line[1:].strip()}")
    return {name: "\n".join(lines) for name, lines in diffs.items()}


def run_module(module: dict[str, object], sample: int, seed: int, jobs: int) -> Result:
    path, tests = str(module["path"]), [str(t) for t in module["tests"]]  # type: ignore[attr-defined]
    work = prepare(path, tests)
    names: list[str] = []
    if sample:
        generate(work, path, jobs)
        every = sorted(verdicts(work, path))
        names = sorted(random.Random(f"{seed}:{path}").sample(every, min(sample, len(every))))
    mutmut(work, "run", "--max-children", str(jobs), *names)
    result = Result(path, tests)
    for name, code in sorted(verdicts(work, path).items(), key=lambda kv: natural(kv[0])):
        if not names or name in names:
            verdict = "killed" if code in KILLED else "not run" if code in NOT_RUN else "survived"
            result.mutants.append(Mutant(name, verdict))
    diffs = changed_lines(work, [m.name for m in result.mutants if m.verdict == "survived"])
    for mutant in result.mutants:
        mutant.diff = diffs.get(mutant.name, "")
    return result


def natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("__mutmut_")
    return head, int(number)


def module_name(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def mark_equivalents(results: list[Result], entries: list[dict[str, str]]) -> list[str]:
    """Survivors listed in equivalent.toml become equivalent; returns the entries that matched none."""
    used: set[int] = set()
    for result in results:
        for mutant in result.mutants:
            for i, entry in enumerate(entries):
                if mutant.verdict != "survived" or entry["module"] != module_name(result.path):
                    continue
                if entry["function"] == mutant.function and entry["diff"].strip() == mutant.diff:
                    mutant.verdict, mutant.reason = "equivalent", entry["reason"].strip()
                    used.add(i)
    checked = {module_name(r.path) for r in results}
    return [
        f"{e['module']}: {e['function']}: {e['diff'].strip()!r}"
        for i, e in enumerate(entries)
        if i not in used and e["module"] in checked
    ]


def known_survivors() -> set[tuple[str, str, str]]:
    """(module, function, diff) of each survivor in the committed report."""
    if not REPORT.exists():
        return set()
    found = re.findall(r"<!-- survivor (\{.*?\}) -->", REPORT.read_text())
    return {tuple(json.loads(f)[k] for k in ("module", "function", "diff")) for f in found}  # type: ignore[misc]


def write_report(results: list[Result], min_score: float) -> None:
    lines = [
        "# Mutation testing of the pure cores",
        "",
        "Written by `make mutate` (mutation/run.py, mutmut); do not edit by hand. Each module is",
        "mutated alone and run against its own unit tests (`tests`). Killed includes timeouts;",
        "equivalent mutants are listed with their reason in mutation/equivalent.toml.",
        f"Score = killed / (killed + survived); the bar is {min_score:.0%} per module.",
        "",
        "| module | tests | mutants | killed | survived | equivalent | score |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        tests = ", ".join(f"`{t}`" for t in r.tests)
        figures = " | ".join(str(n) for n in r.counts())
        lines.append(f"| `{r.path.removeprefix('src/microforum/')}` | {tests} | {figures} | {r.score:.1%} |")
    for r in results:
        lines += ["", f"## `{r.path}`", ""]
        for verdict in ("survived", "equivalent"):
            listed = [m for m in r.mutants if m.verdict == verdict]
            lines.append(f"{verdict.capitalize()}: {len(listed) or 'none'}.")
            lines.append("")
            for m in listed:
                lines += mutant_entry(r.path, m)
    REPORT.write_text("\n".join(lines).rstrip() + "\n")


def mutant_entry(path: str, m: Mutant) -> list[str]:
    out = [f"- `{m.function}` (mutant {m.number})" + (f": {m.reason}" if m.reason else "")]
    if m.verdict == "survived":
        key = {"module": module_name(path), "function": m.function, "diff": m.diff}
        out.append(f"  <!-- survivor {json.dumps(key, ensure_ascii=False)} -->")
    out += ["", "  ```diff", *(f"  {line}" for line in m.diff.splitlines()), "  ```", ""]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=0, help="mutants per module (0: all)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--min-score", type=float, default=0.95)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATE_JOBS", os.cpu_count() or 1)))
    parser.add_argument("--only", help="run only the modules whose path contains this")
    args = parser.parse_args()
    every = load_modules()
    ran = {}
    for module in every:
        if not args.only or args.only in str(module["path"]):
            print(f"mutate: {module['path']}", flush=True)
            ran[str(module["path"])] = run_module(module, args.sample, args.seed, args.jobs)
            if not args.sample:
                save(module, ran[str(module["path"])])
    results = list(ran.values())
    missing: list[str] = []
    if not args.sample:  # the report covers every module: the others from their current results
        known = [ran.get(str(m["path"])) or cached(m) for m in every]
        missing = [str(m["path"]) for m, r in zip(every, known, strict=True) if r is None]
        results = [r for r in known if r is not None]
    stale = mark_equivalents(results, load_equivalents())
    return verdict(results, stale, args, missing)


def fingerprint(module: dict[str, object]) -> str:
    """What a module's result depends on: its source, its tests, the suite's conftest, mutmut."""
    digest = hashlib.sha256(importlib.metadata.version("mutmut").encode())
    for name in [module["path"], *module["tests"], "tests/conftest.py"]:  # type: ignore[misc]
        digest.update(str(name).encode() + b"\0" + (ROOT / str(name)).read_bytes())
    return digest.hexdigest()


def save(module: dict[str, object], result: Result) -> None:
    mutants = [[m.name, m.verdict, m.diff] for m in result.mutants]
    data = {"fingerprint": fingerprint(module), "tests": result.tests, "mutants": mutants}
    (WORK / f"{module_name(result.path)}.json").write_text(json.dumps(data))


def cached(module: dict[str, object]) -> Result | None:
    """The module's last full result, if its source and tests have not changed since."""
    path = WORK / f"{module_name(str(module['path']))}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if data.get("fingerprint") != fingerprint(module):
        return None
    return Result(str(module["path"]), data["tests"], [Mutant(*m) for m in data["mutants"]])


def verdict(results: list[Result], stale: list[str], args: argparse.Namespace, missing: list[str]) -> int:
    known = known_survivors()
    failed = False
    for r in results:
        total, killed, survived, equivalent = r.counts()
        print(
            f"{r.path}: {total} mutants, {killed} killed, {survived} survived, "
            f"{equivalent} equivalent: {r.score:.1%}"
        )
        for m in r.mutants:
            new = (module_name(r.path), m.function, m.diff) not in known
            if m.verdict == "survived" and (new or not args.sample):
                print(f"  survived: {m.function} (mutant {m.number})\n    " + m.diff.replace("\n", "\n    "))
                failed |= bool(args.sample)  # a sample fails on a survivor the report does not list
        if not args.sample and r.score < args.min_score:
            print(f"  under {args.min_score:.0%}")
            failed = True
    for entry in [] if args.sample else stale:  # a sample cannot tell: it sees few mutants
        print(f"mutation/equivalent.toml: no such surviving mutant any more: {entry}")
        failed = True
    if missing:
        print(f"{REPORT.relative_to(ROOT)} not written: no current result for {', '.join(missing)}")
    elif not args.sample:
        write_report(results, args.min_score)
        print(f"wrote {REPORT.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
