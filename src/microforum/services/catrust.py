"""The database server's CA certificates, as deploy passes them: `DATABASE_CA_BUNDLE` (PEM text
in the task's environment, from stack.yaml's `database.ca_bundle`) becomes a private file that
libpq's `PGSSLROOTCERT` names, so that `PGSSLMODE=verify-full` checks the server's certificate
and name against it (docs/deploying.md#database). A PGSSLROOTCERT already set wins.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping

BUNDLE_VARIABLE = "DATABASE_CA_BUNDLE"


def install_ca_bundle(env: MutableMapping[str, str]) -> None:
    """Write `env[DATABASE_CA_BUNDLE]` to a new private file; point PGSSLROOTCERT at it (the
    process's workers inherit the variable). A file of its own: none another user could swap."""
    pem = env.get(BUNDLE_VARIABLE)
    if not pem or env.get("PGSSLROOTCERT"):
        return
    fd, path = tempfile.mkstemp(prefix="microforum-ca-", suffix=".pem")  # mode 0600
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(pem)
    env["PGSSLROOTCERT"] = path
