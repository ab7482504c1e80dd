"""A throw-away PostgreSQL server for scenario (d), started like the test suite does."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import procfs
from .procs import free_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Postgres:
    """initdb + pg_ctl start in a fresh directory; `stop()` removes it all.

    PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
    """

    def __init__(self, databases: list[str]) -> None:
        pg_ctl, initdb, createdb = _binary("pg_ctl"), _binary("initdb"), _binary("createdb")
        if not (pg_ctl and initdb and createdb):
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.pg_ctl = pg_ctl
        self.dir = Path(tempfile.mkdtemp(prefix="mfbench-pg-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"])
        opts = f"-k {self.dir} -h 127.0.0.1 -p {self.port}"
        self._run(
            [pg_ctl, "-D", str(self.dir / "data"), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"]
        )
        for db in databases:
            self._run([createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", db])

    def _run(self, argv: list[str]) -> None:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[-1]).name}: {(done.stderr or done.stdout).strip()[-300:]}")

    def pids(self) -> list[int]:
        """The server's processes now (postmaster and its children), for CPU and RSS."""
        try:
            postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return procfs.descendants(postmaster)

    def url(self, database: str) -> str:
        """The DATABASE_URL of one database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self._run([self.pg_ctl, "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
